"""What a seek leaves libtorrent to do (issue 11): the pipeline anchor, and ends fetched once.

A seek is a reader opening after every other reader closed (a player drops its request and asks
for another range). libtorrent cancels every request in flight when a torrent's first
time-critical piece is set; the torrent's anchor (off by default for now, see
``PIPELINE_ANCHOR``) (one time-critical piece of its own, see
``ANCHOR_DEADLINE_MS`` in tstream_kit/engine/torrent.py) keeps the requests flowing unless they
would take long to drain. Real loopback swarms; the timing effect is measured by
bench/stream_bench.py, not here.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from conftest import PIECE
from tstream_kit.engine import Engine, FileReader
from tstream_kit.engine import torrent as torrent_mod


async def _wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def anchor_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The anchor is off by default (PIPELINE_ANCHOR): these tests keep its mechanism working."""
    monkeypatch.setattr(torrent_mod, "PIPELINE_ANCHOR", True)


async def _streaming(engine: Engine, make_file, make_swarm, name: str, size: int, seed: int,
                     upload_rate: int = 0):
    """A torrent of one random file on a loopback seeder: (torrent, its file, the bytes)."""
    src = make_file(name, size, seed=seed)
    swarm = make_swarm([src], upload_rate=upload_rate)
    torrent = engine.add_magnet(swarm.magnet)
    await torrent.wait_metadata(10)
    return torrent, torrent.file(0), src.read_bytes()


async def _first_byte_then_close(torrent, f, data: bytes) -> None:
    """A player's first request, dropped after its first byte: every reader is closed after."""
    first = FileReader(torrent, f, piece_timeout=30)
    assert await first.read(0, 1) == data[:1]
    first.close()


def _expected_anchor(torrent) -> int:
    """The last missing piece no reader claims (one wanted file here)."""
    claimed = torrent.deadline_pieces()
    return max(p for p in range(torrent.num_pieces) if not torrent.have[p] and p not in claimed)


async def test_anchor_is_the_last_unclaimed_missing_piece_at_lowest_priority(
        engine: Engine, make_file, make_swarm, anchor_on) -> None:
    # 2 MB/s: ~6 s, still downloading throughout
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "anchor.mp4", 48 * PIECE + 999,
                                        51, upload_rate=2_000_000)
    assert torrent.summary()["pipeline"]["anchor_piece"] is None, "no anchor before any reader"

    reader = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await reader.read(0, 10) == data[:10]
        anchor = torrent.summary()["pipeline"]["anchor_piece"]
        assert anchor is not None
        tail = torrent.pieces_claimed_by(("ends", f.index))
        assert tail and anchor not in tail, "the anchor must not be a piece a reader claims"
        assert anchor == _expected_anchor(torrent)
        # lowest priority: sequential picking leaves it for last
        await _wait_for(lambda: torrent.handle.piece_priority(anchor) == torrent_mod.ANCHOR_PRIORITY,
                        5, "the anchor's priority")
        # while the pieces before it download, it stays missing
        have_then = sum(torrent.have)
        await _wait_for(lambda: sum(torrent.have) >= have_then + 4, 20, "4 more pieces")
        assert not torrent.have[anchor]
        # a reader that claims the anchor's piece moves the anchor below it
        assert await reader.read(anchor * PIECE, 5) == data[anchor * PIECE:anchor * PIECE + 5]
        moved = torrent.summary()["pipeline"]["anchor_piece"]
        assert moved is not None and moved != anchor
        assert moved == _expected_anchor(torrent)
    finally:
        reader.close()


async def test_a_seek_on_a_fast_pipeline_keeps_it(engine: Engine, make_file, make_swarm, anchor_on) -> None:
    # unlimited loopback seeder
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "fast.mp4", 160 * PIECE, 52)
    await _first_byte_then_close(torrent, f, data)
    off = 100 * PIECE + 3
    seek = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await seek.read_exact(off, PIECE) == data[off:off + PIECE]
    finally:
        seek.close()
    assert torrent.summary()["pipeline"]["cancels"] == 0
    # once everything is in, there is nothing to anchor
    await _wait_for(lambda: all(torrent.have), 30, "the whole download")
    assert torrent.summary()["pipeline"]["anchor_piece"] is None


async def test_a_seek_on_a_slow_pipeline_lets_libtorrent_cancel(
        engine: Engine, make_file, make_swarm, anchor_on) -> None:
    # 1 MB/s: a 64-block queue is ~1 s
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "slow.mp4", 64 * PIECE, 53,
                                        upload_rate=1_000_000)
    await _first_byte_then_close(torrent, f, data)
    # let requests pile up at the peer and pieces finish, so that the drain can be estimated
    await asyncio.sleep(0.6)
    assert torrent._pipeline_drain_s() > torrent_mod.KEEP_PIPELINE_S
    off = 40 * PIECE + 11
    seek = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await seek.read_exact(off, 1000) == data[off:off + 1000]
    finally:
        seek.close()
    summary = torrent.summary()["pipeline"]
    assert summary["cancels"] == 1
    assert summary["anchor_piece"] is not None, "the anchor is back after the cancel"


async def test_the_ends_are_fetched_by_the_first_reader_only(engine: Engine, make_file, make_swarm) -> None:
    size = 64 * PIECE
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "ends.mp4", size, 54,
                                        upload_rate=1_000_000)
    ends = ("ends", f.index)
    a = FileReader(torrent, f, piece_timeout=30)
    assert await a.read(0, 1) == data[:1]
    assert torrent.num_pieces - 1 in torrent.pieces_claimed_by(ends)
    a.close()
    assert not torrent.pieces_claimed_by(ends)
    # the next reader is a seek: its player has the index already
    b = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await b.read(size // 2, 1) == data[size // 2:size // 2 + 1]
        assert not torrent.pieces_claimed_by(ends)
        assert max(torrent.pieces_claimed_by(b)) < torrent.num_pieces - 4
    finally:
        b.close()


async def test_the_anchor_is_off_by_default(engine: Engine, make_file, make_swarm) -> None:
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "off.mp4", 48 * PIECE, 55,
                                        upload_rate=2_000_000)
    reader = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await reader.read(0, 10) == data[:10]
        assert torrent.summary()["pipeline"]["anchor_piece"] is None
    finally:
        reader.close()
