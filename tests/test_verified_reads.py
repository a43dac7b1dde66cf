"""The third road for piece data (engine/torrent.py): pieces that finished a while ago are
read with pread and checked against their SHA-1, on a real loopback swarm."""
from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from conftest import PIECE
from tstream_kit.engine import Engine, FileReader
from tstream_kit.engine import torrent as torrent_mod
from tstream_kit.engine.torrent import _pread_verified


async def _wait_have(t, pieces, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not all(t.have[p] for p in pieces):
        assert time.monotonic() < deadline, f"pieces {list(pieces)} did not arrive"
        await asyncio.sleep(0.02)


@pytest.fixture
def no_fences(monkeypatch):
    """The verified road alone: no flush fence proves pieces on disk behind the test's back
    (a fence during the first read would send the later reads to pread instead)."""
    monkeypatch.setattr(torrent_mod, "FENCE_INTERVAL_S", float("inf"))


async def test_old_pieces_are_read_verified_then_from_disk(engine: Engine, make_file, make_swarm,
                                                           no_fences) -> None:
    size = 48 * PIECE + 777
    src = make_file("slow.mp4", size, seed=31)
    data = src.read_bytes()
    # slow enough that the torrent is not finished (no flush fence) while we read
    swarm = make_swarm([src], upload_rate=1_500_000)
    t = engine.add_magnet(swarm.magnet)
    await t.wait_metadata(10)
    first = FileReader(t, t.file(0), piece_timeout=20)
    assert await first.read_exact(0, 4 * PIECE) == data[:4 * PIECE]
    first.close()
    await _wait_have(t, range(4, 8))
    await asyncio.sleep(torrent_mod.VERIFIED_READ_AGE_S + 0.05)
    before = t.verified_reads
    # a new reader (cache dropped, as after other reads) asks for pieces 4-7
    t._cache.clear()
    t._cache_bytes = 0
    r = FileReader(t, t.file(0), piece_timeout=20)
    try:
        assert await r.read_exact(4 * PIECE + 5, 3 * PIECE) == data[4 * PIECE + 5:7 * PIECE + 5]
        assert t.verified_reads > before
        assert all(t.on_disk[p] for p in range(4, 7))
        # now on disk: the next read of them is a direct pread/sendfile span
        assert r.disk_span(4 * PIECE, 2 * PIECE) is not None
        assert await r.read_exact(4 * PIECE, 2 * PIECE) == data[4 * PIECE:6 * PIECE]
        assert t.verified_misses == 0
    finally:
        r.close()


async def test_a_piece_whose_bytes_differ_is_not_trusted(engine: Engine, make_file, make_swarm,
                                                        no_fences) -> None:
    size = 40 * PIECE
    src = make_file("bad.mp4", size, seed=32)
    swarm = make_swarm([src], upload_rate=1_500_000)
    t = engine.add_magnet(swarm.magnet)
    await t.wait_metadata(10)
    first = FileReader(t, t.file(0), piece_timeout=20)
    await first.read_exact(0, 3 * PIECE)
    first.close()
    await _wait_have(t, range(3, 5))
    await asyncio.sleep(torrent_mod.VERIFIED_READ_AGE_S + 0.05)
    # what a write still in flight looks like: the file does not hold the piece yet
    path = t.file_path(0)
    with open(path, "r+b") as fh:
        fh.seek(4 * PIECE + 100)
        fh.write(b"\0" * 1000)
    t._cache.clear()
    t._cache_bytes = 0
    assert await t._verified_pread(4) is None
    assert t.verified_misses == 1 and not t.on_disk[4]
    # the other road still answers (libtorrent reads what is on disk)
    assert len(await t.piece_data(4)) == PIECE


def test_pread_verified_checks_length_and_hash(tmp_path) -> None:
    p = tmp_path / "f.bin"
    blob = os.urandom(3000)
    p.write_bytes(blob)
    good = hashlib.sha1(blob[1000:2000]).digest()
    assert _pread_verified(p, 1000, 1000, good) == blob[1000:2000]
    assert _pread_verified(p, 1001, 1000, good) is None          # wrong bytes
    assert _pread_verified(p, 2500, 1000, good) is None          # short read
    assert _pread_verified(tmp_path / "missing", 0, 10, good) is None


@pytest.fixture(autouse=True)
def _short_age(monkeypatch):
    monkeypatch.setattr(torrent_mod, "VERIFIED_READ_AGE_S", 0.05)



async def test_verified_reads_find_the_file_of_a_piece_in_a_pack(engine: Engine, make_file, make_swarm) -> None:
    """Several files: a piece inside the second or third file is read from that file (the
    file is found by bisection on file offsets); a piece across two files is left to
    read_piece."""
    sizes = [5 * PIECE + 1000, 7 * PIECE + 3000, 6 * PIECE]
    srcs = [make_file(f"pack{i}.mp4", n, seed=40 + i) for i, n in enumerate(sizes)]
    blob = b"".join(p.read_bytes() for p in srcs)
    swarm = make_swarm(srcs)
    t = engine.add_magnet(swarm.magnet)
    await t.wait_metadata(10)
    offsets = [f.offset for f in t.files]
    assert offsets == sorted(offsets) and len(t.files) == 3
    readers = [FileReader(t, f, piece_timeout=20) for f in t.files]
    try:
        for r, f in zip(readers, t.files):
            assert await r.read_exact(0, f.size) == blob[f.offset:f.offset + f.size]
        await asyncio.sleep(torrent_mod.VERIFIED_READ_AGE_S + 0.05)
        inside = [p for p in range(t.num_pieces)
                  if any(f.offset <= p * PIECE and (p + 1) * PIECE <= f.offset + f.size for f in t.files)]
        across = [p for p in range(t.num_pieces - 1) if p not in inside]
        assert across and any(p * PIECE > t.files[1].offset for p in inside)
        for p in inside:
            got = await t._verified_pread(p)
            assert got == blob[p * PIECE:(p + 1) * PIECE], p
        for p in across:
            assert await t._verified_pread(p) is None, p
        assert t.verified_misses == 0
    finally:
        for r in readers:
            r.close()


async def test_a_reader_behind_the_download_gets_fenced_pieces_from_disk(engine: Engine, make_file,
                                                                        make_swarm) -> None:
    """While the torrent still downloads, a reader that lags behind it gets flush_cache fences:
    the pieces finished before a completed fence count as on disk, so the reader's next span is
    a pread/sendfile run (disk_span) instead of read_piece or a second SHA-1."""
    size = 64 * PIECE + 4321
    src = make_file("lag.mp4", size, seed=51)
    data = src.read_bytes()
    swarm = make_swarm([src], upload_rate=4_000_000)     # ~16 s for the file: never done here
    t = engine.add_magnet(swarm.magnet)
    await t.wait_metadata(10)
    r = FileReader(t, t.file(0), piece_timeout=20)
    try:
        assert await r.read_exact(0, PIECE) == data[:PIECE]
        # the reader pauses; the download goes on ahead of it
        deadline = time.monotonic() + 20
        while sum(t.have[1:torrent_mod.FENCE_LOOKAHEAD]) < torrent_mod.FENCE_MIN_PIECES + 4:
            assert time.monotonic() < deadline, "the download did not get ahead of the reader"
            await asyncio.sleep(0.05)
        # a fence is issued on a piece finishing, and proves what was in when it was issued
        while not t.on_disk[1]:
            assert time.monotonic() < deadline, f"no fence made piece 1 on disk ({t.fences} fences)"
            await asyncio.sleep(0.02)
        assert t.fences >= 1 and sum(t.have) < t.num_pieces
        span = r.disk_span(PIECE, 32 * PIECE)
        assert span is not None
        fd, n = span
        run = t.on_disk.find(0, 1)
        assert n == run * PIECE - PIECE and n >= PIECE      # the run on disk, not all or nothing
        assert os.pread(fd, n, PIECE) == data[PIECE:PIECE + n]
        # and the read path preads a partial run too
        rest = await r.read_exact(PIECE + n, size - PIECE - n)
        assert rest == data[PIECE + n:]
        assert t.verified_misses == 0
    finally:
        r.close()
