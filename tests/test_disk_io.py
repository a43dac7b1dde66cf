"""libtorrent's disk back-ends (``TSTREAM_DISK_IO``): each one streams every byte right on a
loopback swarm, and the one asked for is the one libtorrent runs (read back from its counters:
the binding's attribute is write-only)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import PIECE, offline_engine_config, sha256
from tstream_kit.config import ConfigError, Settings
from tstream_kit.engine import Engine, EngineError, FileReader
from tstream_kit.engine.lt import LT_VERSION
from tstream_kit.engine.session import disk_io_constructor, resolve_disk_io

BACKENDS = ["posix", "mmap"] + (["pread"] if LT_VERSION >= (2, 1) else [])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_each_backend_streams_every_byte_and_is_the_one_running(
        backend: str, tmp_path: Path, make_file, make_swarm) -> None:
    # a video, a small file nobody streams (its pieces straddle both videos: libtorrent
    # keeps their bytes of it in the part file), and a second video streamed after the first
    specs = [("a.mp4", 12 * PIECE + 1000), ("b.nfo", PIECE + 7), ("c.mkv", 6 * PIECE - 3)]
    paths = [make_file(n, s, seed=40 + i) for i, (n, s) in enumerate(specs)]
    swarm = make_swarm(paths, name="Pack", upload_rate=3_000_000)
    cfg = offline_engine_config(tmp_path / "data")
    cfg.disk_io = backend
    engine = Engine(cfg)
    await engine.start()
    try:
        assert engine.stats()["disk_io"] == backend
        torrent = engine.add_magnet(swarm.magnet)
        await torrent.wait_metadata(10)
        a, b, c = torrent.files
        data_a = paths[0].read_bytes()
        reader = FileReader(torrent, a, piece_timeout=30)
        rng = random.Random(5)
        while_downloading = 0
        try:
            for _ in range(25):
                start = rng.randrange(a.size)
                n = rng.randrange(1, 2 * PIECE)
                while_downloading += sum(torrent.have) < torrent.num_pieces
                assert await reader.read_exact(start, n) == data_a[start:start + n], (start, n)
            assert while_downloading >= 3, "the download finished first: not a streaming test"
            assert sha256(await reader.read_exact(0, a.size)) == sha256(data_a)

            ctr = await engine.session_counters()
            disk = {k: v for k, v in ctr.items() if k.startswith("disk.") and v}
            assert ctr["disk.num_blocks_written"] >= 12 * PIECE // 16384, disk
            if backend == "posix":      # disk I/O in libtorrent's network thread
                assert ctr["disk.num_running_threads"] == 0, disk
            else:                        # disk threads
                assert ctr["disk.num_running_threads"] > 0, disk
            if backend == "pread":      # its store buffer writes whole runs of blocks
                assert ctr["disk.num_write_ops"] < ctr["disk.num_blocks_written"] / 4, disk
            else:                        # one write per 16 KiB block
                assert ctr["disk.num_write_ops"] == ctr["disk.num_blocks_written"], disk
        finally:
            reader.close()

        reader = FileReader(torrent, c, piece_timeout=30)
        try:
            assert sha256(await reader.read_exact(0, c.size)) == sha256(paths[2].read_bytes())
        finally:
            reader.close()
        inside_b = [p for p in torrent.file_pieces(b)
                    if p not in torrent.file_pieces(a) and p not in torrent.file_pieces(c)]
        assert not any(torrent.have[p] for p in inside_b), "the unwanted file was downloaded"
    finally:
        await engine.stop()


async def test_an_unknown_backend_is_refused_by_the_engine_and_the_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of auto, pread, posix, mmap"):
        disk_io_constructor("zfs")
    assert disk_io_constructor("posix") == "posix_disk_io_constructor"
    assert resolve_disk_io("auto") == ("pread" if LT_VERSION >= (2, 1) else "mmap")
    cfg = offline_engine_config(tmp_path / "data")
    cfg.disk_io = "zfs"
    with pytest.raises(EngineError, match="zfs"):
        await Engine(cfg).start()
    with pytest.raises(ConfigError, match="TSTREAM_DISK_IO"):
        Settings.from_env({"TSTREAM_DISK_IO": "zfs"})
    assert Settings.from_env({"TSTREAM_DISK_IO": "posix"}).disk_io == "posix"


async def test_the_health_endpoint_names_the_backend_libtorrent_runs(tmp_path: Path) -> None:
    from tornado.httpclient import AsyncHTTPClient

    from tstream_kit.server.app import start_server
    for asked, runs in (("auto", resolve_disk_io("auto")), ("posix", "posix")):
        settings = Settings.from_env({"TSTREAM_DISK_IO": asked}, data_dir=tmp_path / asked,
                                     port=0).offline()
        running = await start_server(settings)
        try:
            r = await AsyncHTTPClient().fetch(running.url + "/api/health", request_timeout=10)
            assert json.loads(r.body)["disk_io"] == runs
        finally:
            await running.stop()
