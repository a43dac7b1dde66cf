"""What a seek leaves libtorrent to do (issue 11): the seek bridge, and ends fetched once.

A seek is a reader opening after every other reader closed (a player drops its request and asks
for another range). libtorrent cancels every request in flight when a torrent's first
time-critical piece is set. When the last claim on a missing piece is released, the torrent sets
time-critical pieces of its own first (the bridge: ``PIPELINE_ANCHOR`` and ``BRIDGE_PIECES`` in
tstream_kit/engine/torrent.py), so the next reader's claim cancels nothing unless the requests in
flight would take long to drain; the bridge goes when that reader's claims hold libtorrent's list,
or after ``BRIDGE_GRACE_S``. Real loopback swarms; the timing effect is measured by
bench/stream_bench.py, not here.
"""
from __future__ import annotations

import asyncio

import pytest

from conftest import PIECE, wait_until
from tstream_kit.engine import Engine, FileReader
from tstream_kit.engine import torrent as torrent_mod


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


@pytest.fixture(autouse=True)
def bridge_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bridge is off by default (PIPELINE_ANCHOR): these tests keep its mechanism working."""
    monkeypatch.setattr(torrent_mod, "PIPELINE_ANCHOR", True)


def _bridge(torrent) -> list[int]:
    return torrent.summary()["pipeline"]["bridge_pieces"]


def _last_missing(torrent, n: int) -> list[int]:
    """The last ``n`` missing pieces no reader claims (one wanted file here)."""
    claimed = torrent.deadline_pieces()
    return sorted((p for p in range(torrent.num_pieces) if not torrent.have[p] and p not in claimed),
                  reverse=True)[:n]


async def test_the_bridge_spans_the_gap_between_readers_only(
        engine: Engine, make_file, make_swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torrent_mod, "BRIDGE_GRACE_S", 0.5)
    # 2 MB/s: ~6 s, still downloading throughout
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "bridge.mp4", 48 * PIECE + 999,
                                        51, upload_rate=2_000_000)
    reader = FileReader(torrent, f, piece_timeout=30)
    assert await reader.read(0, 10) == data[:10]
    assert _bridge(torrent) == [], "a reader's own claims hold the list: no bridge"
    reader.close()
    bridge = _bridge(torrent)
    assert len(bridge) == torrent_mod.BRIDGE_PIECES, "the last claim on a missing piece went"
    assert bridge == _last_missing(torrent, torrent_mod.BRIDGE_PIECES)
    assert torrent.summary()["pipeline"]["bridges"] == 1
    # after the grace, with no reader, it goes, and the pieces are back at the files' priority
    await wait_until(lambda: not _bridge(torrent), 5, "the grace to end", step=0.02)
    for piece in bridge:
        assert torrent.have[piece] or torrent.handle.piece_priority(piece) == 4


async def test_a_finished_bridge_piece_is_replaced_while_the_other_holds(
        engine: Engine, make_file, make_swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torrent_mod, "BRIDGE_GRACE_S", 30)
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "chain.mp4", 48 * PIECE,
                                        56, upload_rate=2_000_000)
    await _first_byte_then_close(torrent, f, data)
    first = _bridge(torrent)[0]
    # only the head of libtorrent's list is requested: the first piece comes, the second waits
    await wait_until(lambda: torrent.have[first], 10, "the bridge's first piece", step=0.02)
    bridge = _bridge(torrent)
    assert first not in bridge and len(bridge) == torrent_mod.BRIDGE_PIECES
    assert torrent.summary()["pipeline"]["bridges"] == 1, "the same bridge, one piece replaced"


async def test_a_seek_on_a_fast_pipeline_keeps_it(engine: Engine, make_file, make_swarm,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The drain estimate of a torrent this young is noisy: 1-60 ms over 12 runs here (a queue of
    # 16-194 blocks over 1-6 pieces finished in 2-27 ms), and over KEEP_PIPELINE_S (0.1 s) once in
    # a clean-clone CI run under load. Which way it decides is the slow test's matter (1 s there);
    # this one checks what the bridge does when it keeps the pipeline.
    monkeypatch.setattr(torrent_mod, "KEEP_PIPELINE_S", 10.0)
    # 32 MB/s, the bench's seek seeder: the first reader's claims are still in flight at its close
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "fast.mp4", 160 * PIECE, 52,
                                        upload_rate=32_000_000)
    await _first_byte_then_close(torrent, f, data)
    assert _bridge(torrent), "the bridge is up between the two readers"
    off = 100 * PIECE + 3
    seek = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await seek.read_exact(off, PIECE) == data[off:off + PIECE]
        assert _bridge(torrent) == [], "the seek's claims hold the list: the bridge is down"
    finally:
        seek.close()
    assert torrent.summary()["pipeline"]["cancels"] == 0
    # once everything is in, there is nothing to bridge
    await wait_until(lambda: all(torrent.have), 30, "the whole download", step=0.02)
    assert _bridge(torrent) == []


async def test_a_seek_on_a_slow_pipeline_lets_libtorrent_cancel(engine: Engine, make_file, make_swarm) -> None:
    # 1 MB/s: a 64-block queue is ~1 s, ten times KEEP_PIPELINE_S
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "slow.mp4", 64 * PIECE, 53,
                                        upload_rate=1_000_000)
    await _first_byte_then_close(torrent, f, data)
    assert _bridge(torrent)
    await asyncio.sleep(0.3)    # the peer's rate settles
    assert torrent._pipeline_drain_s() > torrent_mod.KEEP_PIPELINE_S
    off = 40 * PIECE + 11
    seek = FileReader(torrent, f, piece_timeout=30)
    try:
        assert await seek.read_exact(off, 1000) == data[off:off + 1000]
        assert _bridge(torrent) == []
    finally:
        seek.close()
    assert torrent.summary()["pipeline"]["cancels"] == 1


async def test_the_bridge_can_be_turned_off(engine: Engine, make_file, make_swarm,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torrent_mod, "PIPELINE_ANCHOR", False)
    torrent, f, data = await _streaming(engine, make_file, make_swarm, "off.mp4", 48 * PIECE, 55,
                                        upload_rate=2_000_000)
    await _first_byte_then_close(torrent, f, data)
    assert _bridge(torrent) == [] and torrent.summary()["pipeline"]["bridges"] == 0


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
