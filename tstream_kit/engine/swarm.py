"""LocalSwarm: make a torrent from files and seed it on 127.0.0.1.

Used by the tests, the demo and the benchmarks: a real BitTorrent peer on
loopback, reached through a magnet with ``x.pe=127.0.0.1:PORT``. It is
synchronous (libtorrent seeds on its own threads), so it works from a test
fixture, a benchmark script or a subprocess (``python -m
tstream_kit.engine.swarm FILE...`` prints one JSON line and seeds until
killed).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ..magnets import make_magnet
from .lt import lt

__all__ = ["LocalSwarm", "make_torrent"]

DEFAULT_PIECE_SIZE = 256 * 1024


def make_torrent(root: Path, rel_paths: Sequence[str], *, name: str,
                 piece_size: int = DEFAULT_PIECE_SIZE) -> bytes:
    """A v1 .torrent of the files ``root/name/<rel>`` (or ``root/name`` for a
    single file whose rel path equals ``name``). v1 only: hybrid torrents
    carry pad files, which test the filtering but not the streaming."""
    single = len(rel_paths) == 1 and rel_paths[0] == name
    entries = []
    for rel in rel_paths:
        path = root / name if single else root / name / rel
        entries.append(lt.create_file_entry(name if single else f"{name}/{rel}", path.stat().st_size))
    ct = lt.create_torrent(entries, piece_size, lt.create_torrent.v1_only)
    ct.set_creator("tstream LocalSwarm")
    lt.set_piece_hashes(ct, str(root))
    return lt.bencode(ct.generate())


class LocalSwarm:
    """Seed files from a libtorrent session listening on 127.0.0.1.

    ``LocalSwarm.from_files([a.mp4])`` seeds one file as a single-file
    torrent; several files (or ``name=``) make a multi-file torrent whose
    files keep their order. The seeding copy lives in a temp directory (or
    ``workdir``) so the sources are never touched.
    """

    def __init__(self, torrent: bytes, save_path: Path, *, upload_rate: int = 0,
                 utp: bool = False, port: int = 0, owns: Path | None = None) -> None:
        self.torrent_bytes = torrent
        self.info = lt.torrent_info(torrent)
        self.infohash = str(self.info.info_hashes().v1)
        self.name = self.info.name()
        self.save_path = Path(save_path)
        self._owns = owns
        settings = {
            "listen_interfaces": f"127.0.0.1:{port}",
            "enable_dht": False, "enable_lsd": False,
            "enable_upnp": False, "enable_natpmp": False,
            # TCP on loopback: uTP between two sessions here is ~20 MB/s
            "enable_outgoing_utp": utp, "enable_incoming_utp": utp,
            "allow_multiple_connections_per_ip": True,
            "alert_mask": int(lt.alert_category.error),
            # a seeder serving one fast local client: no upload slots limit
            "unchoke_slots_limit": -1,
            "upload_rate_limit": upload_rate,
        }
        if not upload_rate:
            # a deep send buffer keeps a fast loopback link full; with a rate
            # limit it would only queue seconds of data ahead of a seek
            settings["send_buffer_watermark"] = 8 * 1024 * 1024
            settings["send_buffer_watermark_factor"] = 150
        self.session = lt.session(settings)
        if upload_rate:
            # loopback peers are in the "local" class, unlimited by default
            self._limit_local_peers(upload_rate)
        params = lt.add_torrent_params()
        params.ti = self.info
        params.save_path = str(self.save_path)
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        self.handle = self.session.add_torrent(params)
        self._wait_seeding()

    def _limit_local_peers(self, rate: int) -> None:
        cls = self.session.get_peer_class(self.session.local_peer_class_id)
        cls["upload_limit"] = rate
        self.session.set_peer_class(self.session.local_peer_class_id, cls)

    @classmethod
    def from_files(cls, files: Sequence[os.PathLike | str], *, name: str | None = None,
                   piece_size: int = DEFAULT_PIECE_SIZE, workdir: Path | None = None,
                   **kw: Any) -> "LocalSwarm":
        files = [Path(f) for f in files]
        owns = None
        if workdir is None:
            workdir = owns = Path(tempfile.mkdtemp(prefix="tstream-swarm-"))
        if len(files) == 1 and name is None:
            name = files[0].name
            rels = [name]
            _link_or_copy(files[0], workdir / name)
        else:
            name = name or "tstream-test"
            rels = []
            for f in files:
                rel = f.name
                _link_or_copy(f, workdir / name / rel)
                rels.append(rel)
        data = make_torrent(workdir, rels, name=name, piece_size=piece_size)
        return cls(data, workdir, owns=owns, **kw)

    def _wait_seeding(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.handle.status()
            if st.is_seeding:
                return
            if st.errc and st.errc.value() != 0:
                raise RuntimeError(f"seeder failed: {st.errc.message()}")
            time.sleep(0.02)  # start-up only, not a hot path
        raise TimeoutError("seeder did not finish checking its files")

    @property
    def port(self) -> int:
        return int(self.session.listen_port())

    @property
    def peer(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def magnet(self) -> str:
        return make_magnet(self.infohash, name=self.name, peers=[self.peer])

    def file_path(self, rel: str | None = None) -> Path:
        return self.save_path / self.name / rel if rel else self.save_path / self.name

    def set_upload_rate(self, rate: int) -> None:
        self._limit_local_peers(rate)

    def close(self) -> None:
        if self.session is not None:
            self.session.pause()
            self.session = None  # type: ignore[assignment]
            self.handle = None
        if self._owns is not None:
            shutil.rmtree(self._owns, ignore_errors=True)
            self._owns = None

    def __enter__(self) -> "LocalSwarm":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tstream_kit.engine.swarm",
                                 description="Seed files on 127.0.0.1 until killed.")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--name")
    ap.add_argument("--piece-size", type=int, default=DEFAULT_PIECE_SIZE)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--upload-rate", type=int, default=0, help="bytes/s, 0 = unlimited")
    ap.add_argument("--torrent-out", help="also write the .torrent here")
    args = ap.parse_args(argv)
    swarm = LocalSwarm.from_files(args.files, name=args.name, piece_size=args.piece_size,
                                  port=args.port, upload_rate=args.upload_rate)
    if args.torrent_out:
        Path(args.torrent_out).write_bytes(swarm.torrent_bytes)
    print(json.dumps({"magnet": swarm.magnet, "infohash": swarm.infohash, "port": swarm.port,
                      "name": swarm.name, "pid": os.getpid()}), flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    swarm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
