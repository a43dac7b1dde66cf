"""Streaming benchmark (issues 2 and 11): tstream against peerflix, plain libtorrent and nginx.

Everything runs on one loopback swarm (libtorrent seeders on 127.0.0.1, TCP). Each figure is the
median (and min/max) of ``--runs`` runs::

    first byte   fresh ``tstream serve`` process and data dir, GET /api/stream?magnet=... with
                 ``Range: bytes=0-``: time from connect to the first body byte (magnet -> metadata
                 -> first piece -> HTTP). Against peerflix 0.39.0 (bench/peers.py), timed from the
                 magnet handed to its engine. Targets: <= 0.5x peerflix, <= 250 ms.
    seek         fresh server, same request against a rate-limited (and an unlimited) seeder; as
                 soon as the first byte arrives that request is dropped (as a player does on a
                 seek) and ``Range: bytes=X-(X+1MiB-1)`` is asked at an offset X in the second half
                 of the file that holds no downloaded byte yet (checked on the server's partial
                 file with SEEK_DATA right before the request). Time until the 1 MiB is in; the
                 same for peerflix. Targets: <= 1x peerflix, <= 100 ms.
    cold         the first-byte request read to the end: whole-file MB/s from a fresh torrent,
                 against a fresh default libtorrent session downloading the same swarm
                 (``bench.baselines.plain_libtorrent_download``, TCP). Target >= 0.9x.
    warm         once the torrent is complete, the whole file again, against nginx serving the
                 same bytes (``bench.baselines.Nginx``). Target >= 0.5x.
    memory       the server's RSS / USS / anonymous RSS (psutil, /proc) after cold and after warm,
                 for a file of ``--mb`` (120 MB) and one of ``--big-mb`` (1 GB). Targets: RSS
                 < 100 MiB, and big / small <= 1.1x.
    concurrent   ``--streams`` (10) Range requests at once on a fresh torrent at offsets k/N, each
                 reading its 1/N of the file: file size / wall time, against the plain libtorrent
                 download (from magnet). Target >= 0.8x. peerflix alongside.
    browser      headless Chromium (bench/browser_bench.py): a fresh magnet of an MP4 with moov at
                 the end in a ``<video muted>``: src -> ``playing``, then currentTime = 80 % ->
                 ``seeked``; tstream and peerflix. Shown beside the HTTP figures (no target).

Every HTTP figure uses the same client (``bench.baselines.http_get_throughput``; the two reads
that stop early pass it ``want``). Seeders are separate processes
(``python -m tstream_kit.engine.swarm FILE [--upload-rate N]``); the server is a separate
process (``python -m tstream_kit.cli serve --offline --port 0 --data-dir DIR``). Everything runs on
127.0.0.1, every wait has a timeout, and every process started here is stopped, by pid, in
``finally``.

Run from the repository root::

    bash scripts/tstream.sh bench                           # = the next line, after set-up
    /work/venv/bin/python bench/stream_bench.py             # 120 MB + 1 GB, 9 runs, ~4 min
    /work/venv/bin/python bench/stream_bench.py --quick     # small files, 2 runs (the test)

The table goes to stdout; the raw runs and summaries to bench/results/stream_bench-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.baselines import Nginx, http_get_throughput, plain_libtorrent_download  # noqa: E402
from bench.browser_bench import Browser, chromium_unavailable, play_and_seek  # noqa: E402
from bench.peers import Peerflix, PeerUnavailable, ensure_peerflix  # noqa: E402

MB = 1e6          # throughput in decimal MB/s, like bench.baselines
MiB = 1 << 20     # memory in MiB
SEEK_BYTES = MiB
PIECE_SIZE = 256 * 1024
RESULTS_DIR = ROOT / "bench" / "results"

# (op, bound, unit): unit "x" for ratios. Issue 2's absolute ones, then issue 11's.
TARGETS = {
    "first_byte_ms": ("<=", 250.0, "ms"),
    "seek_ms": ("<=", 100.0, "ms"),
    "cold_vs_libtorrent": (">=", 0.9, "x"),
    "warm_vs_nginx": (">=", 0.5, "x"),
    "first_byte_vs_peerflix": ("<=", 0.5, "x"),
    "seek_vs_peerflix": ("<=", 1.0, "x"),
    "concurrent_vs_libtorrent": (">=", 0.8, "x"),
    "rss_mib": ("<", 100.0, "MiB"),
    # "flat from a 100 MB to a 1 GB file": at most 10 % more for ten times the bytes
    "rss_flat": ("<=", 1.1, "x"),
}

START_TIMEOUT_S = 60.0      # a seeder hashing a big file, or a server starting
COMPLETE_TIMEOUT_S = 60.0   # a finished download until the server reports it complete
STOP_TIMEOUT_S = 15.0

_SERVING_RE = re.compile(r"tstream serving on (http://[0-9.]+:\d+)")


# ------------------------------------------------------------------------------- processes


def _child_env() -> dict[str, str]:
    """This checkout's code, and no TSTREAM_* settings from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(proc: Optional[subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> Optional[float]:
    """SIGTERM the child we started (by pid), SIGKILL it if it lingers; returns seconds taken."""
    if proc is None or proc.poll() is not None:
        return None
    t0 = time.monotonic()
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)
    return time.monotonic() - t0


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Seeder:
    """``python -m tstream_kit.engine.swarm FILE [--upload-rate N]`` in a child process."""

    def __init__(self, file: Path, log: Path, *, upload_rate: int = 0) -> None:
        self.file = file
        self.upload_rate = upload_rate
        self.log = log
        cmd = [sys.executable, "-m", "tstream_kit.engine.swarm", str(file),
               "--piece-size", str(PIECE_SIZE)]
        if upload_rate:
            cmd += ["--upload-rate", str(int(upload_rate))]
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, cwd=ROOT, env=_child_env())
        self.info: dict[str, Any] = {}

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> "Seeder":
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            raise RuntimeError(f"seeder of {self.file.name} printed nothing in {timeout:.0f} s "
                               f"(exit {self.proc.poll()}):\n{_tail(self.log)}")
        self.info = json.loads(line[0])
        return self

    @property
    def magnet(self) -> str:
        return self.info["magnet"]

    @property
    def peer(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.info["port"]))

    def stop(self) -> None:
        _stop(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


class Server:
    """A fresh ``tstream serve --offline --port 0 --data-dir DIR`` process."""

    def __init__(self, data_dir: Path, log: Path, *, timeout: float = START_TIMEOUT_S,
                 prefix: Optional[Sequence[str]] = None) -> None:
        self.data_dir = data_dir
        self.log = log
        prefix = list(prefix or [sys.executable, "-m", "tstream_kit.cli"])
        cmd = prefix + ["serve", "--offline", "--port", "0", "--data-dir", str(data_dir)]
        t0 = time.monotonic()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, cwd=ROOT, env=_child_env())
        self.url = ""
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            m = _SERVING_RE.search(_tail(log, 20000))
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"tstream serve exited with {self.proc.returncode}:\n"
                                   f"{_tail(log)}")
            time.sleep(0.01)
        else:
            _stop(self.proc)
            raise TimeoutError(f"tstream serve did not log its URL in {timeout:.0f} s:\n"
                               f"{_tail(log)}")
        self.start_s = time.monotonic() - t0
        self.stop_s: Optional[float] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stream_url(self, magnet: str) -> str:
        return f"{self.url}/api/stream?magnet={urllib.parse.quote(magnet, safe='')}"

    def api(self, path: str, timeout: float = 10.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def torrent(self, infohash: str) -> Optional[dict]:
        for t in self.api("/api/torrents")["torrents"]:
            if t["infohash"] == infohash:
                return t
        return None

    def wait_complete(self, infohash: str, timeout: float = COMPLETE_TIMEOUT_S) -> float:
        """Until every piece is in and the torrent reports finished/seeding (after which the
        server reads from disk). Returns the seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            t = self.torrent(infohash)
            if (t and t.get("num_pieces") and t.get("pieces_have") == t["num_pieces"]
                    and t.get("state") in ("finished", "seeding")):
                time.sleep(0.1)  # torrent_finished -> flush_cache -> cache_flushed
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TimeoutError(f"torrent {infohash} not complete on the server after {timeout:.0f} s: "
                           f"{self.torrent(infohash)}")

    def download_path(self, name: str) -> Path:
        return self.data_dir / "downloads" / name

    def stop(self) -> None:
        self.stop_s = _stop(self.proc)


def process_memory(pid: int) -> dict[str, float]:
    """RSS, USS, PSS (psutil) and anonymous / file-backed RSS and peak RSS (/proc), in MiB."""
    import psutil

    p = psutil.Process(pid)
    out: dict[str, float] = {}
    try:
        full = p.memory_full_info()
        out.update(rss_mib=full.rss / MiB, uss_mib=full.uss / MiB, pss_mib=full.pss / MiB)
    except (psutil.AccessDenied, AttributeError):
        out["rss_mib"] = p.memory_info().rss / MiB
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[{"RssAnon": "anon_mib", "RssFile": "file_mib", "RssShmem": "shmem_mib",
                     "VmHWM": "peak_rss_mib"}[key]] = int(value.split()[0]) * 1024 / MiB
    except OSError:
        pass
    return out


# ------------------------------------------------------------------------------ HTTP pieces


def http_read_prefix(url: str, *, range_header: str, want: int, timeout: float,
                     keep: bool = False) -> dict[str, Any]:
    """GET and read until ``want`` body bytes are in (or the body ends), then close:
    ``http_get_throughput`` with an early stop, for the two measurements that stop early (the
    first byte of a request that a seeking player abandons, and the 1 MiB after a seek).
    ``keep`` returns the body bytes as ``data`` (to check them against the source file).
    """
    body = bytearray()
    r = http_get_throughput(url, range_header=range_header, timeout=timeout, want=want,
                            body_sink=body.extend if keep else None)
    received = min(r["bytes"], want)
    out = {"status": r["status"], "headers": r["headers"], "bytes": received,
           "complete": r["complete"], "first_body_byte_s": r["first_body_byte_s"],
           "seconds": r["seconds"]}
    if keep:
        out["data"] = bytes(body[:want])
    return out


def data_in_range(path: Path, start: int, end: int) -> Optional[bool]:
    """Does the (sparse, partly downloaded) file hold any written byte in [start, end)?
    ``False`` also when the file does not exist yet; ``None`` if SEEK_DATA is unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            pos = os.lseek(fd, start, os.SEEK_DATA)
        except OSError as e:
            if e.errno == 6:  # ENXIO: no data at or after start
                return False
            return None
        return pos < end
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ measurements


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self.peer_install: Optional[dict] = None   # bench.peers.ensure_peerflix()

    def _fresh_dir(self, what: str) -> Path:
        self._n += 1
        d = self.workdir / f"{self._n:03d}-{what}"
        d.mkdir()
        return d

    def _server(self, what: str) -> Server:
        d = self._fresh_dir(what)
        prefix = shlex.split(self.args.server_cmd) if self.args.server_cmd else None
        return Server(d / "data", self.logs / f"{d.name}-server.log", prefix=prefix)

    def cold_warm(self, seeder: Seeder, size: int) -> dict[str, Any]:
        """Fresh server: magnet -> first byte -> whole file (cold); then the whole file again."""
        srv = self._server("tstream")
        try:
            url = srv.stream_url(seeder.magnet)
            mem_idle = process_memory(srv.pid)
            cold = http_get_throughput(url, range_header="bytes=0-", timeout=self.args.timeout)
            _check_full(cold, size, "cold")
            mem_cold = process_memory(srv.pid)
            wait_s = srv.wait_complete(seeder.info["infohash"])
            warm = http_get_throughput(url, range_header="bytes=0-", timeout=self.args.timeout)
            _check_full(warm, size, "warm")
            mem_warm = process_memory(srv.pid)
            torrent = srv.torrent(seeder.info["infohash"])
        finally:
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        return {
            "server_start_s": srv.start_s,
            "server_stop_s": srv.stop_s,
            "first_byte_s": cold["first_body_byte_s"],
            "cold_ttfb_s": cold["ttfb_s"],
            "cold_seconds": cold["seconds"],
            "cold_mb_per_s": cold["mb_per_s"],
            "cold_body_mb_per_s": cold["body_mb_per_s"],
            "complete_wait_s": wait_s,
            "warm_seconds": warm["seconds"],
            "warm_mb_per_s": warm["mb_per_s"],
            "warm_first_byte_s": warm["first_body_byte_s"],
            "memory_idle": mem_idle,
            "memory_after_cold": mem_cold,
            "memory_after_warm": mem_warm,
            "torrent": torrent,
        }

    def seek(self, seeder: Seeder, source: Path, size: int) -> dict[str, Any]:
        """Fresh server, rate-limited seeder: first byte at 0, drop it, 1 MiB at an unseen X."""
        srv = self._server("seek")
        try:
            url = srv.stream_url(seeder.magnet)
            first = http_read_prefix(url, range_header="bytes=0-", want=1,
                                     timeout=self.args.timeout)
            if first["status"] != 206 or not first["bytes"]:
                raise RuntimeError(f"seek run: first request answered {first['status']}")
            partial = srv.download_path(seeder.info["name"])
            offset, seen = self._unseen_offset(partial, size)
            r = http_read_prefix(url, range_header=f"bytes={offset}-{offset + SEEK_BYTES - 1}",
                                 want=SEEK_BYTES, timeout=self.args.timeout, keep=True)
            if r["status"] != 206 or r["bytes"] != SEEK_BYTES:
                raise RuntimeError(f"seek to {offset}: status {r['status']}, {r['bytes']} bytes")
            with open(source, "rb") as f:
                f.seek(offset)
                matches = f.read(SEEK_BYTES) == r["data"]
            if not matches:
                raise RuntimeError(f"seek to {offset}: the bytes differ from the source file")
            torrent = srv.torrent(seeder.info["infohash"]) or {}
        finally:
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        return {
            "server_start_s": srv.start_s,
            "first_byte_s": first["first_body_byte_s"],
            "offset": offset,
            "offset_fraction": offset / size,
            "unseen": seen is False,
            "unseen_check": {False: "no byte on disk", True: "data on disk",
                             None: "SEEK_DATA unsupported"}[seen],
            "seek_s": r["seconds"],
            "seek_first_byte_s": r["first_body_byte_s"],
            "bytes_match": matches,
            "pieces_have_after_seek": torrent.get("pieces_have"),
            "num_pieces": torrent.get("num_pieces"),
        }

    def _unseen_offset(self, partial: Path, size: int) -> tuple[int, Optional[bool]]:
        """The first offset from ~60 % of the file on (mid-piece, as a player's seek lands) whose
        1 MiB holds no downloaded byte; steps 1 MiB at a time up to 90 %."""
        start = int(size * 0.6) // PIECE_SIZE * PIECE_SIZE + 100_003
        stop = int(size * 0.9)
        off = start
        while off + SEEK_BYTES <= stop:
            seen = data_in_range(partial, off, off + SEEK_BYTES)
            if seen is not True:
                return off, seen
            off += SEEK_BYTES
        return start, True

    def plain_libtorrent(self, seeder: Seeder) -> dict[str, Any]:
        d = self._fresh_dir("libtorrent")
        try:
            return plain_libtorrent_download(seeder.magnet, save_dir=d, peers=[seeder.peer],
                                             timeout=self.args.timeout)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    # ---------------------------------------------------------------- peerflix (bench/peers.py)

    def _peerflix(self, seeder: Seeder, what: str) -> Peerflix:
        d = self._fresh_dir(what)
        return Peerflix(self.peer_install, seeder.magnet, seeder.info["infohash"], seeder.peer, d)

    def peerflix_cold_warm(self, seeder: Seeder, size: int) -> dict[str, Any]:
        """Fresh peerflix: magnet -> first byte -> whole file (cold); then the whole file again.
        peerflix's HTTP server listens only once it has the metadata, so the clock starts when
        torrent-stream is handed the magnet (``engine_epoch``, see bench/peers.py)."""
        with self._peerflix(seeder, "peerflix") as pf:
            mem_idle = process_memory(pf.pid)
            t_req = time.time()
            cold = http_get_throughput(pf.stream_url, range_header="bytes=0-",
                                       timeout=self.args.timeout)
            _check_full(cold, size, "peerflix cold")
            mem_cold = process_memory(pf.pid)
            # A whole-file read through peerflix means every piece was verified and written.
            warm = http_get_throughput(pf.stream_url, range_header="bytes=0-",
                                       timeout=self.args.timeout)
            _check_full(warm, size, "peerflix warm")
            mem_warm = process_memory(pf.pid)
        first_epoch = t_req + cold["first_body_byte_s"]
        last_epoch = t_req + cold["seconds"]
        return {
            "node_start_s": pf.engine_epoch - pf.launch_epoch,
            "metadata_listen_s": pf.listening_epoch - pf.engine_epoch,
            "first_byte_s": first_epoch - pf.engine_epoch,
            "first_byte_from_launch_s": first_epoch - pf.launch_epoch,
            "request_first_byte_s": cold["first_body_byte_s"],
            "cold_mb_per_s": size / MB / (last_epoch - pf.engine_epoch),
            "cold_body_mb_per_s": cold["body_mb_per_s"],
            "cold_seconds": cold["seconds"],
            "warm_seconds": warm["seconds"],
            "warm_mb_per_s": warm["mb_per_s"],
            "memory_idle": mem_idle,
            "memory_after_cold": mem_cold,
            "memory_after_warm": mem_warm,
        }

    def peerflix_seek(self, seeder: Seeder, source: Path, size: int) -> dict[str, Any]:
        """As ``seek``, against a fresh peerflix (its partial file is checked the same way)."""
        with self._peerflix(seeder, "peerflix-seek") as pf:
            first = http_read_prefix(pf.stream_url, range_header="bytes=0-", want=1,
                                     timeout=self.args.timeout)
            if first["status"] != 206 or not first["bytes"]:
                raise RuntimeError(f"peerflix seek run: first request answered {first['status']}")
            offset, seen = self._unseen_offset(pf.download_path(seeder.info["name"]), size)
            r = http_read_prefix(pf.stream_url,
                                 range_header=f"bytes={offset}-{offset + SEEK_BYTES - 1}",
                                 want=SEEK_BYTES, timeout=self.args.timeout, keep=True)
        if r["status"] != 206 or r["bytes"] != SEEK_BYTES:
            raise RuntimeError(f"peerflix seek to {offset}: status {r['status']}, {r['bytes']} bytes")
        with open(source, "rb") as f:
            f.seek(offset)
            matches = f.read(SEEK_BYTES) == r["data"]
        if not matches:
            raise RuntimeError(f"peerflix seek to {offset}: the bytes differ from the source file")
        return {"first_byte_s": first["first_body_byte_s"], "offset": offset,
                "offset_fraction": offset / size, "unseen": seen is False,
                "unseen_check": {False: "no byte on disk", True: "data on disk",
                                 None: "SEEK_DATA unsupported"}[seen],
                "seek_s": r["seconds"], "seek_first_byte_s": r["first_body_byte_s"],
                "bytes_match": matches}

    # ------------------------------------------------------------------ concurrent streams

    def concurrent(self, seeder: Seeder, size: int, who: str) -> dict[str, Any]:
        """``--streams`` simultaneous ``Range: bytes=a-b`` requests on a fresh torrent, at evenly
        spread offsets, each reading its 1/N of the file (together: the whole file once), so the
        aggregate (file size / wall time) compares directly with a whole-file download.
        tstream: the clock starts at the first connect (the server learns the magnet there);
        peerflix: at the magnet handed to its engine (its server listens only after metadata)."""
        n = self.args.streams
        bounds = [size * k // n for k in range(n + 1)]
        if who == "tstream":
            srv: Any = self._server("concurrent")
            url = srv.stream_url(seeder.magnet)
        else:
            srv = self._peerflix(seeder, "peerflix-concurrent")
            url = srv.stream_url
        results: list[Optional[dict]] = [None] * n
        errors: list[BaseException] = []
        starts: list[float] = [0.0] * n
        ends: list[float] = [0.0] * n
        gate = threading.Barrier(n, timeout=30)

        def one(k: int) -> None:
            try:
                gate.wait()
                starts[k] = time.time()
                results[k] = http_get_throughput(
                    url, range_header=f"bytes={bounds[k]}-{bounds[k + 1] - 1}",
                    timeout=self.args.timeout)
                ends[k] = time.time()
            except BaseException as e:  # reported below
                errors.append(e)

        try:
            threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(self.args.timeout + 30)
            mem = process_memory(srv.pid)
        finally:
            if who == "tstream":
                srv.stop()
                shutil.rmtree(srv.data_dir, ignore_errors=True)
            else:
                srv.close()
        if errors or any(r is None for r in results):
            raise RuntimeError(f"{who} concurrent streams failed: {errors[:1] or 'timeout'}")
        for k, r in enumerate(results):
            if r["status"] != 206 or r["bytes"] != bounds[k + 1] - bounds[k]:
                raise RuntimeError(f"{who} concurrent stream {k}: status {r['status']}, "
                                   f"{r['bytes']} of {bounds[k + 1] - bounds[k]} bytes")
        t0 = min(starts) if who == "tstream" else srv.engine_epoch
        wall = max(ends) - t0
        return {"streams": n, "offsets": bounds[:-1], "wall_s": wall,
                "aggregate_mb_per_s": size / MB / wall,
                "per_stream_first_byte_ms": [r["first_body_byte_s"] * 1000 for r in results],
                "per_stream_mb_per_s": [r["mb_per_s"] for r in results],
                "memory_after": mem}

    # ------------------------------------------------------------------ browser (first frame)

    def browser_tstream(self, browser: Any, seeder: Seeder) -> dict[str, Any]:
        """Fresh server and page; src = /api/stream?magnet=... of the moov-at-end MP4."""
        srv = self._server("browser")
        page = browser.page()
        try:
            r = play_and_seek(page, srv.stream_url(seeder.magnet))
        finally:
            page.close()
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        r["first_frame_s"] = r["src_to_playing_s"]
        return r

    def browser_peerflix(self, browser: Any, seeder: Seeder) -> dict[str, Any]:
        """Page ready first; then a fresh peerflix; src set as soon as it listens. The figure
        runs from the magnet handed to its engine (as tstream's runs from src = magnet)."""
        page = browser.page()
        try:
            with self._peerflix(seeder, "peerflix-browser") as pf:
                r = play_and_seek(page, pf.stream_url)
                r["engine_to_src_s"] = r["src_epoch"] - pf.engine_epoch
        finally:
            page.close()
        r["first_frame_s"] = r["playing_epoch"] - (r["src_epoch"] - r["engine_to_src_s"])
        return r


def _check_full(r: dict, size: int, what: str) -> None:
    if r["status"] != 206 or not r["complete"] or r["bytes"] != size:
        raise RuntimeError(f"{what} GET: status {r['status']}, {r['bytes']} of {size} bytes, "
                           f"complete={r['complete']}")


# ------------------------------------------------------------------------------ summarising


def summary(values: Sequence[Optional[float]], scale: float = 1.0) -> dict[str, Any]:
    vals = [v * scale for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    return num / den if num is not None and den else None


def _meets(value: Optional[float], target: Optional[Sequence]) -> Optional[bool]:
    if value is None or target is None:
        return None
    op, bound = target[0], target[1]
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[op]


def summarise(raw: dict[str, Any], seek_rate: int) -> tuple[dict, dict]:
    figures: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}

    def fig(name: str, unit: str, values: Sequence, scale: float = 1.0, **extra: Any) -> dict:
        figures[name] = {"unit": unit, **summary(values, scale), **extra}
        return figures[name]

    def med(name: str) -> Optional[float]:
        f = figures.get(name)
        return f["median"] if f else None

    def ratio(name: str, num: str, den: str, target: Optional[str] = None) -> None:
        if num in figures and den in figures:
            ratios[name] = {"value": _ratio(med(num), med(den)), "of": f"{num} / {den}",
                            "target": TARGETS[target] if target else None}

    def memory(prefix: str, runs: Sequence[dict], whens: Sequence[str]) -> None:
        for when in whens:
            for key in ("rss", "uss", "anon", "peak_rss"):
                vals = [r[f"memory_{when}"].get(f"{key}_mib") for r in runs]
                if any(v is not None for v in vals):
                    fig(f"{prefix}.{key}_{when}_mib", "MiB", vals)

    for label in ("small", "big"):
        if label not in raw:
            continue
        runs = raw[label]
        tst, lt, ng = runs["tstream"], runs["libtorrent"], runs["nginx"]
        fig(f"{label}.first_byte_ms", "ms", [r["first_byte_s"] for r in tst], 1000)
        fig(f"{label}.cold_mb_s", "MB/s", [r["cold_mb_per_s"] for r in tst])
        fig(f"{label}.cold_body_mb_s", "MB/s", [r["cold_body_mb_per_s"] for r in tst])
        fig(f"{label}.warm_mb_s", "MB/s", [r["warm_mb_per_s"] for r in tst])
        fig(f"{label}.libtorrent_first_piece_ms", "ms",
            [r["seconds_to_first_piece"] for r in lt], 1000)
        fig(f"{label}.libtorrent_mb_s", "MB/s", [r["mb_per_s_total"] for r in lt])
        fig(f"{label}.libtorrent_body_mb_s", "MB/s", [r["mb_per_s_after_first_piece"] for r in lt])
        fig(f"{label}.nginx_mb_s", "MB/s", [r["mb_per_s"] for r in ng])
        memory(label, tst, ("after_cold", "after_warm"))
        ratio(f"{label}.cold_vs_libtorrent", f"{label}.cold_body_mb_s",
              f"{label}.libtorrent_body_mb_s", "cold_vs_libtorrent")
        ratio(f"{label}.cold_total_vs_libtorrent", f"{label}.cold_mb_s", f"{label}.libtorrent_mb_s")
        ratio(f"{label}.warm_vs_nginx", f"{label}.warm_mb_s", f"{label}.nginx_mb_s",
              "warm_vs_nginx")
        ratio(f"{label}.first_byte_vs_libtorrent", f"{label}.first_byte_ms",
              f"{label}.libtorrent_first_piece_ms")
        if runs.get("peerflix"):
            pf = runs["peerflix"]
            p = f"peerflix.{label}"
            fig(f"{p}.first_byte_ms", "ms", [r["first_byte_s"] for r in pf], 1000)
            fig(f"{p}.first_byte_from_launch_ms", "ms",
                [r["first_byte_from_launch_s"] for r in pf], 1000)
            fig(f"{p}.node_start_ms", "ms", [r["node_start_s"] for r in pf], 1000)
            fig(f"{p}.cold_mb_s", "MB/s", [r["cold_mb_per_s"] for r in pf])
            fig(f"{p}.cold_body_mb_s", "MB/s", [r["cold_body_mb_per_s"] for r in pf])
            fig(f"{p}.warm_mb_s", "MB/s", [r["warm_mb_per_s"] for r in pf])
            memory(p, pf, ("after_cold", "after_warm"))
            ratio(f"{label}.first_byte_vs_peerflix", f"{label}.first_byte_ms",
                  f"{p}.first_byte_ms", "first_byte_vs_peerflix")
            ratio(f"{label}.cold_vs_peerflix", f"{label}.cold_body_mb_s", f"{p}.cold_body_mb_s")
            ratio(f"{label}.warm_vs_peerflix", f"{label}.warm_mb_s", f"{p}.warm_mb_s")
            ratio(f"{label}.rss_vs_peerflix", f"{label}.rss_after_warm_mib",
                  f"{p}.rss_after_warm_mib")

    for kind, rate in (("limited", seek_rate), ("unlimited", 0)):
        seek = raw.get(f"seek_{kind}")
        if not seek:
            continue
        fig(f"seek_{kind}.seek_ms", "ms", [r["seek_s"] for r in seek], 1000,
            unseen_runs=sum(1 for r in seek if r["unseen"]), upload_rate=rate,
            bandwidth_floor_ms=SEEK_BYTES / rate * 1000 if rate else 0.0)
        fig(f"seek_{kind}.seek_first_byte_ms", "ms", [r["seek_first_byte_s"] for r in seek], 1000)
        fig(f"seek_{kind}.first_byte_ms", "ms", [r["first_byte_s"] for r in seek], 1000)
        pf = raw.get(f"seek_{kind}_peerflix")
        if pf:
            fig(f"seek_{kind}.peerflix_seek_ms", "ms", [r["seek_s"] for r in pf], 1000,
                unseen_runs=sum(1 for r in pf if r["unseen"]), upload_rate=rate)
            ratio(f"seek_{kind}.seek_vs_peerflix", f"seek_{kind}.seek_ms",
                  f"seek_{kind}.peerflix_seek_ms", "seek_vs_peerflix")

    conc = raw.get("concurrent")
    if conc:
        for who in ("tstream", "peerflix"):
            if conc.get(who):
                fig(f"concurrent.{who}_mb_s", "MB/s", [r["aggregate_mb_per_s"] for r in conc[who]],
                    streams=conc[who][0]["streams"])
                fig(f"concurrent.{who}_rss_mib", "MiB",
                    [r["memory_after"].get("rss_mib") for r in conc[who]])
        ratio("concurrent.tstream_vs_libtorrent", "concurrent.tstream_mb_s", "small.libtorrent_mb_s",
              "concurrent_vs_libtorrent")
        ratio("concurrent.tstream_vs_peerflix", "concurrent.tstream_mb_s", "concurrent.peerflix_mb_s")

    br = raw.get("browser")
    if br:
        for who in ("tstream", "peerflix"):
            if br.get(who):
                fig(f"browser.{who}_first_frame_ms", "ms", [r["first_frame_s"] for r in br[who]],
                    1000)
                fig(f"browser.{who}_seeked_ms", "ms", [r["seek_to_seeked_s"] for r in br[who]], 1000)
                fig(f"browser.{who}_src_to_playing_ms", "ms",
                    [r["src_to_playing_s"] for r in br[who]], 1000)
        ratio("browser.first_frame_vs_peerflix", "browser.tstream_first_frame_ms",
              "browser.peerflix_first_frame_ms")
        ratio("browser.seeked_vs_peerflix", "browser.tstream_seeked_ms", "browser.peerflix_seeked_ms")

    for key in ("rss", "uss", "anon", "peak_rss"):
        for when in ("after_cold", "after_warm"):
            ratio(f"memory.{key}_{when}_big_vs_small", f"big.{key}_{when}_mib",
                  f"small.{key}_{when}_mib", "rss_flat" if key == "rss" else None)
    for name, r in ratios.items():
        r["meets_target"] = _meets(r["value"], r["target"])
    for name, target_key in (("small.first_byte_ms", "first_byte_ms"),
                             ("seek_limited.seek_ms", "seek_ms"),
                             ("seek_unlimited.seek_ms", "seek_ms"),
                             ("small.rss_after_cold_mib", "rss_mib"),
                             ("small.rss_after_warm_mib", "rss_mib"),
                             ("big.rss_after_cold_mib", "rss_mib"),
                             ("big.rss_after_warm_mib", "rss_mib"),
                             ("big.peak_rss_after_warm_mib", "rss_mib")):
        if name in figures:
            figures[name]["target"] = TARGETS[target_key]
            figures[name]["meets_target"] = _meets(figures[name]["median"], TARGETS[target_key])
    return figures, ratios


def _fmt(v: Optional[float], digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def render_table(result: dict[str, Any]) -> str:
    f, r = result["figures"], result["ratios"]
    files = result["files"]
    rows: list[tuple[str, ...]] = []

    def tgt(t: Optional[Sequence]) -> str:
        if not t:
            return ""
        unit = {"ms": " ms", "MiB": " MiB"}.get(t[2] if len(t) > 2 else "", "x")
        return f"{t[0]} {t[1]:g}{unit}"

    def row(label: str, name: str, ref: str = "", ratio: str = "", section: str = "") -> None:
        if name not in f or (ratio and ratio not in r):
            return
        s = f[name]
        ref_txt = _fmt(f[ref]["median"]) if ref and ref in f else ""
        if ratio:
            rv = r[ratio]
            t, ok = rv["target"], rv["meets_target"]
            ratio_txt = _fmt(rv["value"], 2) + "x"
        else:
            t, ok = s.get("target"), s.get("meets_target")
            ratio_txt = ""
        ok_txt = "" if ok is None else ("yes" if ok else "NO")
        rows.append((label, f"{_fmt(s['median'])} {s['unit']}", _fmt(s["min"]), _fmt(s["max"]),
                     ref_txt, ratio_txt, tgt(t), ok_txt))

    def sep(title: str) -> None:
        rows.append((f"-- {title}", "", "", "", "", "", "", ""))

    sm = files["small"]["mb"]
    bg = files["big"]["mb"] if "big" in files else None
    sep(f"tstream vs peerflix {result['env'].get('peerflix') or '(not run)'}, {sm:.0f} MB MP4")
    row("first byte from magnet (vs peerflix)", "small.first_byte_ms", "peerflix.small.first_byte_ms",
        "small.first_byte_vs_peerflix")
    row("first byte from magnet (absolute)", "small.first_byte_ms")
    for kind in ("limited", "unlimited"):
        if f"seek_{kind}.seek_ms" not in f:
            continue
        s = f[f"seek_{kind}.seek_ms"]
        rate = f"{s['upload_rate'] / MB:g} MB/s" if s["upload_rate"] else "unlimited"
        lab = f"seek 1 MiB @60%, seeder {rate} ({s['unseen_runs']}/{s['n']} unseen)"
        if f"seek_{kind}.seek_vs_peerflix" in r:
            row(lab + " vs peerflix", f"seek_{kind}.seek_ms", f"seek_{kind}.peerflix_seek_ms",
                f"seek_{kind}.seek_vs_peerflix")
        row(lab, f"seek_{kind}.seek_ms")
    row("cold, steady (vs peerflix)", "small.cold_body_mb_s", "peerflix.small.cold_body_mb_s",
        "small.cold_vs_peerflix")
    row("warm (vs peerflix)", "small.warm_mb_s", "peerflix.small.warm_mb_s", "small.warm_vs_peerflix")
    row("RSS after warm (vs peerflix)", "small.rss_after_warm_mib", "peerflix.small.rss_after_warm_mib",
        "small.rss_vs_peerflix")
    row(f"{result['config']['streams']} streams, aggregate (vs peerflix)", "concurrent.tstream_mb_s",
        "concurrent.peerflix_mb_s", "concurrent.tstream_vs_peerflix")
    sep("peerflix itself")
    row("peerflix first byte from magnet", "peerflix.small.first_byte_ms")
    row("peerflix first byte from process launch", "peerflix.small.first_byte_from_launch_ms")
    row("peerflix cold, steady", "peerflix.small.cold_body_mb_s")
    row("peerflix cold, from magnet", "peerflix.small.cold_mb_s")
    row("peerflix warm", "peerflix.small.warm_mb_s")
    row("peerflix RSS after cold", "peerflix.small.rss_after_cold_mib")
    row("peerflix RSS after warm", "peerflix.small.rss_after_warm_mib")
    sep("tstream vs plain libtorrent (TCP) and nginx")
    for label, mb in (("small", sm), ("big", bg)):
        if mb is None:
            continue
        row(f"cold {mb:.0f} MB, steady (vs lt after 1st piece)", f"{label}.cold_body_mb_s",
            f"{label}.libtorrent_body_mb_s", f"{label}.cold_vs_libtorrent")
        row(f"cold {mb:.0f} MB, from magnet (vs lt total)", f"{label}.cold_mb_s",
            f"{label}.libtorrent_mb_s", f"{label}.cold_total_vs_libtorrent")
        row(f"warm {mb:.0f} MB (vs nginx)", f"{label}.warm_mb_s", f"{label}.nginx_mb_s",
            f"{label}.warm_vs_nginx")
    row(f"{result['config']['streams']} concurrent streams, fresh torrent (vs lt total)",
        "concurrent.tstream_mb_s", "small.libtorrent_mb_s", "concurrent.tstream_vs_libtorrent")
    row(f"first byte, {sm:.0f} MB (vs lt first piece)", "small.first_byte_ms",
        "small.libtorrent_first_piece_ms", "small.first_byte_vs_libtorrent")
    sep("tstream memory (server process)")
    for key, what, whens in (("rss", "RSS", ("after_cold", "after_warm")),
                             ("uss", "USS", ("after_cold", "after_warm")),
                             ("peak_rss", "peak RSS", ("after_warm",))):
        for when in whens:
            row(f"{what} {when.replace('_', ' ')}, {sm:.0f} MB", f"small.{key}_{when}_mib")
            if bg is not None:
                row(f"{what} {when.replace('_', ' ')}, {bg:.0f} MB", f"big.{key}_{when}_mib")
                row(f"{what} {when.replace('_', ' ')}, {bg:.0f} MB vs {sm:.0f} MB",
                    f"big.{key}_{when}_mib", f"small.{key}_{when}_mib",
                    f"memory.{key}_{when}_big_vs_small")
    row(f"RSS after {result['config']['streams']} concurrent streams", "concurrent.tstream_rss_mib")
    if "browser" in files:
        sep(f"headless Chromium {result['env'].get('chromium') or ''}, "
            f"{files['browser']['mb']:.0f} MB MP4 with moov at the end")
        row("first frame: src -> playing (vs peerflix)", "browser.tstream_first_frame_ms",
            "browser.peerflix_first_frame_ms", "browser.first_frame_vs_peerflix")
        row("seek to 80%: currentTime -> seeked (vs peerflix)", "browser.tstream_seeked_ms",
            "browser.peerflix_seeked_ms", "browser.seeked_vs_peerflix")
        row("peerflix first frame (from magnet)", "browser.peerflix_first_frame_ms")
        row("peerflix seek to 80% -> seeked", "browser.peerflix_seeked_ms")

    header = ("figure", "median", "min", "max", "baseline", "ratio", "target", "met")
    widths = [max(len(x[i]) for x in [header, *rows] if not x[0].startswith("--") or i)
              for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                     enumerate(zip(header, widths))), line]
    for x in rows:
        if x[0].startswith("--"):
            out.append(x[0])
            continue
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(x, widths))))
    skipped = result.get("skipped") or {}
    notes = [
        f"runs={result['config']['runs']} (medians; min/max); files: "
        + ", ".join(f"{k} {v['mb']:.0f} MB ({v['bytes']:,} B)" for k, v in files.items())
        + f"; {PIECE_SIZE // 1024} KiB pieces; TCP on 127.0.0.1.",
        "first byte: tstream from connect to an already running server (the request carries the "
        "magnet); peerflix from the magnet handed to its engine (its server listens only after "
        "metadata; Node's own start-up excluded, see 'from process launch').",
    ]
    if "seek_limited.seek_ms" in f:
        notes.append(
            f"seek: after the first byte at 0 (request then dropped); seeder limited to "
            f"{f['seek_limited.seek_ms']['upload_rate'] / MB:g} MB/s (1 MiB = "
            f"{f['seek_limited.seek_ms']['bandwidth_floor_ms']:.0f} ms at that rate, but "
            "libtorrent's limiter banks up to 3 s of unused quota, so a client that did not draw "
            "the full rate gets a burst); 'unseen' = no byte of the 1 MiB in the streamer's file "
            "at request time (SEEK_DATA; blocks still in its memory are not seen).")
    notes.append(
        "lt = fresh default libtorrent session (bench.baselines, TCP) on the same seeder; "
        "nginx serves the same file from page cache. Memory in MiB.")
    if "concurrent.tstream_mb_s" in f:
        notes.append(f"concurrent: {result['config']['streams']} Range requests at once on a fresh "
                     "torrent, offsets k/N of the file, each reading its 1/N: file size / wall time.")
    for what, why in skipped.items():
        notes.append(f"not measured: {what}: {why}")
    return "\n".join(out + [""] + notes)


# ------------------------------------------------------------------------------------- main


def _make_file(mb: float, faststart: bool = True) -> Path:
    from tstream_kit.mediagen import make_mp4_of_size
    return make_mp4_of_size(min_bytes=int(mb * MB), faststart=faststart)


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.time()
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="tstream-stream-bench-"))
    seeders: list[Seeder] = []
    skipped: dict[str, str] = {}
    peer_install: Optional[dict] = None
    if args.peerflix != "off":
        try:
            peer_install = ensure_peerflix(install=True, log=log)
        except PeerUnavailable as e:
            if args.peerflix == "require":
                raise
            skipped["peerflix"] = str(e)
            log(f"peerflix row skipped: {e}")
    else:
        skipped["peerflix"] = "--peerflix off"
    browser_ok = False
    if args.browser != "off" and args.only is None:
        reason = chromium_unavailable()
        if reason and args.browser == "require":
            raise RuntimeError(reason)
        if reason:
            skipped["browser"] = reason
            log(f"browser figure skipped: {reason}")
        browser_ok = reason is None
    elif args.browser == "off":
        skipped["browser"] = "--browser off"
    browser_version = None
    try:
        log(f"generating media ({args.mb:g} MB and {args.big_mb:g} MB H.264 MP4s"
            + (f", {args.browser_mb:g} MB with moov at the end" if browser_ok else "")
            + ", cached)...")
        sources = {"small": _make_file(args.mb), "big": _make_file(args.big_mb)}
        if browser_ok:
            sources["browser"] = _make_file(args.browser_mb, faststart=False)
        sizes = {k: p.stat().st_size for k, p in sources.items()}
        www = workdir / "www"
        www.mkdir()
        for label in ("small", "big"):
            p = sources[label]
            try:
                os.link(p, www / f"{label}.mp4")
            except OSError:
                shutil.copyfile(p, www / f"{label}.mp4")

        log("starting seeders...")
        seed = {"small": Seeder(sources["small"], workdir / "logs-seed-small.log"),
                "big": Seeder(sources["big"], workdir / "logs-seed-big.log"),
                "seek": Seeder(sources["small"], workdir / "logs-seed-seek.log",
                               upload_rate=args.seek_rate)}
        if browser_ok:
            seed["browser"] = Seeder(sources["browser"], workdir / "logs-seed-browser.log")
        seeders.extend(seed.values())
        for s in seeders:
            s.wait_ready()
        bench = Bench(args, workdir)
        bench.peer_install = peer_install
        raw: dict[str, Any] = {}

        with Nginx(www) as ng:
            for label in ("small", "big"):
                if args.only == "seek":
                    continue
                nginx_url = ng.url_for(f"{label}.mp4")
                http_get_throughput(nginx_url, timeout=args.timeout)  # page cache, first connect
                runs: dict[str, list] = {"tstream": [], "libtorrent": [], "nginx": []}
                with_peer = peer_install is not None and label == "small"
                if with_peer:
                    runs["peerflix"] = []
                for i in range(args.runs):
                    t = bench.cold_warm(seed[label], sizes[label])
                    lt = bench.plain_libtorrent(seed[label])
                    n = http_get_throughput(nginx_url, timeout=args.timeout)
                    if n["status"] != 200 or n["bytes"] != sizes[label]:
                        raise RuntimeError(f"nginx: status {n['status']}, {n['bytes']} bytes")
                    n.pop("headers", None)
                    runs["tstream"].append(t)
                    runs["libtorrent"].append(lt)
                    runs["nginx"].append(n)
                    msg = (f"  {label} run {i + 1}/{args.runs}: first byte "
                           f"{t['first_byte_s'] * 1000:.0f} ms, cold {t['cold_mb_per_s']:.0f} MB/s "
                           f"(lt {lt['mb_per_s_total']:.0f}), warm {t['warm_mb_per_s']:.0f} MB/s "
                           f"(nginx {n['mb_per_s']:.0f}), RSS "
                           f"{t['memory_after_cold']['rss_mib']:.0f}/"
                           f"{t['memory_after_warm']['rss_mib']:.0f} MiB")
                    if with_peer:
                        p = bench.peerflix_cold_warm(seed[label], sizes[label])
                        runs["peerflix"].append(p)
                        msg += (f"; peerflix first byte {p['first_byte_s'] * 1000:.0f} ms, cold "
                                f"{p['cold_mb_per_s']:.0f}, warm {p['warm_mb_per_s']:.0f} MB/s, "
                                f"RSS {p['memory_after_warm']['rss_mib']:.0f} MiB")
                    log(msg)
                raw[label] = runs

        for kind, seeder in (("seek_limited", seed["seek"]), ("seek_unlimited", seed["small"])):
            if args.only == "throughput":
                break
            # The first client of a rate-limited seeder waits ~1 s longer than the next ones
            # (libtorrent's bandwidth manager starting up): one untimed run absorbs that.
            raw[f"{kind}_warmup"] = bench.seek(seeder, sources["small"], sizes["small"])
            raw[kind] = []
            if peer_install:
                raw[f"{kind}_peerflix"] = []
            for i in range(args.runs):
                s = bench.seek(seeder, sources["small"], sizes["small"])
                raw[kind].append(s)
                msg = (f"  {kind} run {i + 1}/{args.runs}: 1 MiB at {s['offset_fraction']:.0%} in "
                       f"{s['seek_s'] * 1000:.0f} ms ({s['unseen_check']}; first byte "
                       f"{s['first_byte_s'] * 1000:.0f} ms, {s['pieces_have_after_seek']}/"
                       f"{s['num_pieces']} pieces in after the seek)")
                if peer_install:
                    p = bench.peerflix_seek(seeder, sources["small"], sizes["small"])
                    raw[f"{kind}_peerflix"].append(p)
                    msg += f"; peerflix {p['seek_s'] * 1000:.0f} ms ({p['unseen_check']})"
                log(msg)

        if args.streams and args.only is None:
            raw["concurrent"] = {"tstream": [], "peerflix": []}
            for i in range(args.runs):
                c = bench.concurrent(seed["small"], sizes["small"], "tstream")
                raw["concurrent"]["tstream"].append(c)
                msg = (f"  {args.streams} concurrent streams run {i + 1}/{args.runs}: tstream "
                       f"{c['aggregate_mb_per_s']:.0f} MB/s")
                if peer_install:
                    p = bench.concurrent(seed["small"], sizes["small"], "peerflix")
                    raw["concurrent"]["peerflix"].append(p)
                    msg += f", peerflix {p['aggregate_mb_per_s']:.0f} MB/s"
                log(msg)

        if browser_ok:
            raw["browser"] = {"tstream": [], "peerflix": []}
            with Browser(timeout=args.timeout) as browser:
                browser_version = browser.version
                for i in range(args.runs):
                    b = bench.browser_tstream(browser, seed["browser"])
                    raw["browser"]["tstream"].append(b)
                    msg = (f"  browser run {i + 1}/{args.runs}: tstream first frame "
                           f"{b['first_frame_s'] * 1000:.0f} ms, seek to 80% "
                           f"{b['seek_to_seeked_s'] * 1000:.0f} ms")
                    if peer_install:
                        p = bench.browser_peerflix(browser, seed["browser"])
                        raw["browser"]["peerflix"].append(p)
                        msg += (f"; peerflix {p['first_frame_s'] * 1000:.0f} ms, "
                                f"{p['seek_to_seeked_s'] * 1000:.0f} ms")
                    log(msg)
    finally:
        for s in seeders:
            s.stop()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    if args.only:
        return {"duration_s": time.monotonic() - t_start, "only": args.only, "runs": raw}
    figures, ratios = summarise(raw, args.seek_rate)
    lt_version = raw["small"]["libtorrent"][0].get("libtorrent")
    import tornado
    return {
        "schema": 2,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": time.monotonic() - t_start,
        "config": {"mb": args.mb, "big_mb": args.big_mb, "browser_mb": args.browser_mb,
                   "runs": args.runs, "quick": args.quick, "streams": args.streams,
                   "seek_rate": args.seek_rate, "seek_bytes": SEEK_BYTES,
                   "piece_size": PIECE_SIZE, "timeout": args.timeout,
                   "peerflix": args.peerflix, "browser": args.browser},
        "env": {"python": platform.python_version(), "libtorrent": lt_version,
                "tornado": tornado.version, "cpus": os.cpu_count(),
                "mem_total_mib": _mem_total_mib(), "platform": platform.platform(),
                "peerflix": peer_install["version"] if peer_install else None,
                "node": peer_install["node_version"] if peer_install else None,
                "chromium": browser_version},
        "skipped": skipped,
        "files": {k: {"path": str(sources[k]), "bytes": sizes[k], "mb": sizes[k] / MB,
                      "pieces": -(-sizes[k] // PIECE_SIZE)} for k in sources},
        "targets": {k: list(v) for k, v in TARGETS.items()},
        "figures": figures,
        "ratios": ratios,
        "runs": raw,
    }


def _mem_total_mib() -> Optional[float]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/stream_bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=120,
                    help="size of the main file in MB (>= 100 for the issue's figures)")
    ap.add_argument("--big-mb", type=float, default=1000,
                    help="size of the second file (memory vs file size; default ~1 GB)")
    ap.add_argument("--browser-mb", type=float,
                    help="size of the moov-at-end MP4 for the browser figure (default: --mb)")
    ap.add_argument("--runs", type=int, default=9,
                    help="runs per figure (median reported; 9: seeks spread 15-100 ms here)")
    ap.add_argument("--seek-rate", type=int, default=32_000_000,
                    help="upload limit of the seek run's seeder, bytes/s (default 32 MB/s)")
    ap.add_argument("--streams", type=int, default=10,
                    help="concurrent streams at spread offsets (0: skip that figure)")
    ap.add_argument("--peerflix", choices=("auto", "require", "off"), default="auto",
                    help="the peerflix row: auto = install with npm if missing, skip (with the "
                         "reason) if node/npm are missing; require = fail instead")
    ap.add_argument("--browser", choices=("auto", "require", "off"), default="auto",
                    help="time to first frame in headless Chromium (auto: skip if no chromium)")
    ap.add_argument("--quick", action="store_true",
                    help="20 MB and 60 MB files, 2 runs, 8 MB/s seek seeder, 4 streams (the test)")
    ap.add_argument("--timeout", type=float, default=120.0, help="limit of each transfer, s")
    ap.add_argument("--json", type=Path, help="write the JSON here instead of bench/results/")
    ap.add_argument("--server-cmd",
                    help="command that stands for `tstream` (default: this Python -m "
                         "tstream_kit.cli); the bench appends `serve --offline --port 0 "
                         "--data-dir DIR`. For experiments: memory is measured on its pid")
    ap.add_argument("--only", choices=("seek", "throughput"),
                    help="run one part only (prints the raw runs, no table)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep logs and temp files")
    args = ap.parse_args(argv)
    if args.quick:
        args.mb, args.big_mb, args.runs, args.seek_rate = 20, 60, 2, 8_000_000
        args.streams = min(args.streams, 4)
    if args.browser_mb is None:
        args.browser_mb = args.mb
    if args.seek_rate <= 0:
        ap.error("--seek-rate must be > 0 (the unlimited seek is measured as well)")
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.streams < 0:
        ap.error("--streams must be >= 0")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run(args, log)
    if args.only:
        print(json.dumps(result, indent=2, default=str))
        return 0
    out = args.json
    if out is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"stream_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render_table(result))
    print(f"\nJSON: {out}  ({result['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
