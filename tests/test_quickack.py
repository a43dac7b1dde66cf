"""Forced ACKs after a new demand (issue 11; tstream_kit/engine/quickack.py).

The kernel state is read back with ``getsockopt(TCP_QUICKACK)``, which is 0 while a
connection is in delayed-ACK ("pingpong") mode and 1 once ``TCP_QUICKACK`` took it out.
Real sockets on 127.0.0.1, and a real loopback swarm for the engine; the timing effect is
measured by bench/stream_bench.py, not here.
"""
from __future__ import annotations

import asyncio
import os
import socket

import pytest

from conftest import PIECE, wait_until
from tstream_kit.engine import Engine, FileReader
from tstream_kit.engine import quickack
from tstream_kit.engine import torrent as torrent_mod

pytestmark = pytest.mark.skipif(not quickack.supported(), reason="TCP_QUICKACK and /proc/self/fd are Linux's")


def _pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    return client, server


def _quickack(s: socket.socket) -> int:
    return s.getsockopt(socket.IPPROTO_TCP, quickack.TCP_QUICKACK)


def _delayed(s: socket.socket) -> None:
    """Put a connection in delayed-ACK mode, as an interactive one ends up."""
    s.setsockopt(socket.IPPROTO_TCP, quickack.TCP_QUICKACK, 0)
    assert _quickack(s) == 0


def _nodelay(s: socket.socket) -> int:
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    yield s
    s.close()


async def test_a_demand_forces_acks_on_the_peers_sockets_only_and_lets_them_go(listener, monkeypatch) -> None:
    monkeypatch.setattr(quickack, "SPAN_S", 0.2)
    peer_a, server_a = _pair(listener)
    peer_b, server_b = _pair(listener)
    try:
        for s in (peer_a, server_a, peer_b, server_b):
            _delayed(s)
        fds = _fds()
        qa = quickack.QuickAck()
        qa.demand([server_a.getpeername()])     # server_a is the one socket connected to there
        assert qa.active and qa.bursts == 1
        assert [s.getsockname() for s in qa.sockets()] == [server_a.getsockname()]
        assert _quickack(server_a) == 1, "the burst's first ACK is forced at once"
        assert [_quickack(s) for s in (peer_a, peer_b, server_b)] == [0, 0, 0], "other sockets untouched"
        assert _nodelay(server_a) == 1 and qa.nodelay_set == 1, "Nagle off on the peer's socket"
        assert [_nodelay(s) for s in (peer_a, peer_b, server_b)] == [0, 0, 0]
        assert _fds() == fds + 1, "one duplicate held during the burst"
        await wait_until(lambda: not qa.active, 5, "the burst to end", step=0.02)
        assert qa.acks >= 2, "forced again during the span, not once"
        assert _fds() == fds, "the duplicate is closed when the burst ends"
        assert server_a.fileno() >= 0 and server_a.send(b"x") == 1, "the original socket still works"
        assert _nodelay(server_a) == 1, "Nagle stays off after the burst"
        qa.demand([server_a.getpeername()])
        assert qa.bursts == 2 and qa.nodelay_set == 1, "switched off once per socket"
        qa.close()
    finally:
        for s in (peer_a, server_a, peer_b, server_b):
            s.close()


async def test_a_demand_during_a_burst_extends_it(listener, monkeypatch) -> None:
    monkeypatch.setattr(quickack, "SPAN_S", 0.3)
    client, server = _pair(listener)
    try:
        qa = quickack.QuickAck()
        loop = asyncio.get_running_loop()
        began = loop.time()
        qa.demand([server.getpeername()])
        await asyncio.sleep(0.2)
        qa.demand([server.getpeername()])
        assert qa.bursts == 1, "one burst, extended"
        await wait_until(lambda: not qa.active, 5, "the burst to end", step=0.01)
        assert loop.time() - began >= 0.45
        qa.demand([server.getpeername()])
        assert qa.bursts == 2
        qa.close()
        assert not qa.active and qa.sockets() == []
    finally:
        client.close()
        server.close()


async def test_nagle_can_be_left_on(listener, monkeypatch) -> None:
    monkeypatch.setattr(quickack, "SET_NODELAY", False)
    client, server = _pair(listener)
    try:
        qa = quickack.QuickAck()
        qa.demand([server.getpeername()])
        assert qa.bursts == 1 and qa.nodelay_set == 0 and _nodelay(server) == 0
        qa.close()
    finally:
        client.close()
        server.close()


async def test_no_socket_no_burst(listener) -> None:
    qa = quickack.QuickAck()
    qa.demand([("127.0.0.1", 9)])        # nothing of ours is connected there
    qa.demand([])
    assert not qa.active and qa.bursts == 0


async def test_a_cold_demand_on_a_torrent_forces_acks_to_its_seeder(
        engine: Engine, make_file, make_swarm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quickack, "SPAN_S", 0.5)
    src = make_file("ack.mp4", 40 * PIECE + 77, seed=61)
    swarm = make_swarm([src], upload_rate=500_000)      # ~20 s: still downloading throughout
    torrent = engine.add_magnet(swarm.magnet)
    await torrent.wait_metadata(10)
    await torrent.wait_checked(10)
    await wait_until(lambda: torrent.peers(), 10, "the seeder to connect")
    reader = FileReader(torrent, torrent.file(0), piece_timeout=30)
    read = asyncio.ensure_future(reader.read(20 * PIECE, 10))
    await wait_until(lambda: torrent.quickack.bursts, 10, "the first read's burst", step=0.005)
    held = {s.getpeername()[:2] for s in torrent.quickack.sockets()}
    assert held == {swarm.peer}, "the engine's socket to the seeder"
    assert await read == src.read_bytes()[20 * PIECE:20 * PIECE + 10]
    pipeline = torrent.summary()["pipeline"]
    assert pipeline["quickack_bursts"] == 1 and pipeline["quickacks"] >= 1
    assert pipeline["nodelay_sockets"] == 1
    socks = quickack.peer_sockets([swarm.peer])
    try:
        assert [_nodelay(s) for s in socks] == [1], "libtorrent's socket to the seeder: Nagle off"
    finally:
        for s in socks:
            s.close()
    # the reader advancing sets new deadlines while its claims hold the list: no new burst
    await wait_until(lambda: not torrent.quickack.active, 5, "the burst to end", step=0.02)
    assert torrent.deadline_pieces() - {p for p in range(torrent.num_pieces) if torrent.have[p]}
    assert await reader.read(24 * PIECE, 10) == src.read_bytes()[24 * PIECE:24 * PIECE + 10]
    assert torrent.quickack.bursts == 1
    # a seek after every reader closed (libtorrent cancels and restarts), to pieces it lacks
    # (the file's last 1 MiB, 36-40, was fetched early for the first reader): a burst
    reader.close()
    seek = FileReader(torrent, torrent.file(0), piece_timeout=30)
    assert not torrent.have[31], "still downloading: the seek needs pieces"
    assert await seek.read(31 * PIECE, 10) == src.read_bytes()[31 * PIECE:31 * PIECE + 10]
    assert torrent.quickack.bursts == 2
    seek.close()


async def test_the_trigger_can_be_switched_off(engine: Engine, make_file, make_swarm,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torrent_mod, "QUICKACK_TRIGGER", "off")
    src = make_file("noack.mp4", 12 * PIECE, seed=62)
    swarm = make_swarm([src], upload_rate=1_000_000)
    torrent = engine.add_magnet(swarm.magnet)
    await torrent.wait_metadata(10)
    async with FileReader(torrent, torrent.file(0), piece_timeout=30) as reader:
        assert await reader.read(5 * PIECE, 10) == src.read_bytes()[5 * PIECE:5 * PIECE + 10]
    assert torrent.summary()["pipeline"]["quickack_bursts"] == 0
