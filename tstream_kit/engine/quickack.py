"""Acknowledge peers' data at once after a new demand, and send our requests at once (Linux).

A seeder's reply that is smaller than one TCP segment (a reject, the last
block of a request burst) waits in its send queue until our ACK of what it
sent before, when the seeder leaves Nagle's algorithm on, as libtorrent
does. Linux delays that ACK by up to 40 ms once it judges the connection
interactive (we send requests as we receive blocks: its "pingpong" mode).
Right after a reader's new demand (a first read, a seek), libtorrent
cancels the requests in flight and the connection restarts from a few
requests, so the stall hits exactly the pieces a viewer waits for:
nothing arrived for 41-43 ms, twice, in session 4's block trace of a seek.

``TCP_QUICKACK`` makes the kernel send pending ACKs now and leaves pingpong
mode, but it does not stick (the kernel re-enters it), and libtorrent owns
the sockets and offers no hook. So for ``SPAN_S`` after a demand a
``QuickAck`` sets it again every ``INTERVAL_S`` on duplicates of the
process's sockets connected to the torrent's peers (found through
``/proc/self/fd``). Measured (bench/stream_bench.py --only seek, 9 runs
each way, alternating, seek bridge off), with the torrent's trigger
(``QUICKACK_TRIGGER = "cold"``): 1 MiB at an unseen offset in 38 ms against
68 ms on a 32 MB/s seeder, 29 (24-34) against 66 ms unlimited; the seek's
first byte 14-33 ms against 57-71 ms in the slow runs. Finding the sockets
costs ~8 us per open fd (2.5 ms with 307 open, 200 of them sockets), once
per burst.

Our own requests meet the same stall the other way: libtorrent leaves Nagle's
algorithm on for its outgoing connections too (``TCP_NODELAY`` read back as
0), so after a seek the requests for its pieces (a small segment) waited in
our send queue until the seeder's delayed ACK of the requests before them:
a block trace of a seek on an unlimited seeder showed the seek's requests
picked 3 ms after its deadlines and sent 44 ms later, nothing in flight
between. So the first burst on a socket also sets ``TCP_NODELAY``
(``SET_NODELAY``), which, unlike ``TCP_QUICKACK``, stays. Measured (12 runs
each way, alternating): 21.6 ms against 29.0 on the 32 MB/s seeder, 18.5
(14-35) against 35.9 (16-60) unlimited; a single forced ACK with Nagle off
(no burst) gave 64.8 and 23.5 ms, so both are needed. Cold throughput did
not drop (1 GB: 401 against 387 MB/s, 3 runs each): libtorrent writes its
requests in batches anyway.

A duplicate keeps a socket open while it is held, so a burst holds them
for at most ``SPAN_S`` after its last demand (a demand during a burst
extends it), and the next burst gathers them afresh. Elsewhere than Linux
(no ``/proc/self/fd`` or no ``TCP_QUICKACK``) it does nothing.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Iterable

__all__ = ["QuickAck", "supported"]

TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
FD_DIR = "/proc/self/fd"
#: how long after a demand ACKs are forced, and how often
SPAN_S = 0.15
INTERVAL_S = 0.002
#: at most this many peer sockets per burst (the ones with most requests queued)
MAX_SOCKETS = 16
#: also switch Nagle's algorithm off on those sockets, for our requests (it stays off)
SET_NODELAY = True


def supported() -> bool:
    return TCP_QUICKACK is not None and os.path.isdir(FD_DIR)


def peer_sockets(endpoints: Iterable[tuple[str, int]]) -> list[socket.socket]:
    """Duplicates of this process's TCP sockets whose remote end is one of
    ``endpoints`` (host, port). The caller closes them."""
    wanted = {(_plain(str(h)), int(p)) for h, p in endpoints}
    if not wanted or not supported():
        return []
    try:
        names = os.listdir(FD_DIR)
    except OSError:
        return []
    found: list[socket.socket] = []
    ours: set[int] = set()  # a duplicate may take the number the listing's own fd had
    for name in names:
        try:
            if int(name) in ours or not os.readlink(f"{FD_DIR}/{name}").startswith("socket:"):
                continue
            dup = os.dup(int(name))
        except (OSError, ValueError):
            continue        # closed meanwhile, or the listing's own fd
        ours.add(dup)
        try:
            s = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.family in (socket.AF_INET, socket.AF_INET6) \
                    and _endpoint(s.getpeername()) in wanted:
                found.append(s)
                continue
        except OSError:
            pass            # not connected
        s.close()
    return found


def _plain(host: str) -> str:
    return host[7:] if host.startswith("::ffff:") else host     # IPv4-mapped IPv6


def _endpoint(addr: tuple) -> tuple[str, int]:
    return _plain(addr[0]), int(addr[1])


class QuickAck:
    """One torrent's bursts of ``TCP_QUICKACK`` (see the module's text)."""

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []
        self._until = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self.bursts = 0
        self.acks = 0
        self.nodelay_set = 0

    @property
    def active(self) -> bool:
        return self._handle is not None

    def sockets(self) -> list[socket.socket]:
        return list(self._socks)

    def demand(self, endpoints: Iterable[tuple[str, int]]) -> None:
        """A reader needs pieces now: force ACKs to these peers for ``SPAN_S``."""
        if not supported():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._handle is not None:        # a burst is on: make it last
            self._until = time.monotonic() + SPAN_S
            return
        self._release()
        self._socks = peer_sockets(list(endpoints)[:MAX_SOCKETS])
        if not self._socks:
            return
        if SET_NODELAY:
            self._nodelay()
        self.bursts += 1
        self._until = time.monotonic() + SPAN_S
        self._tick(loop)

    def _nodelay(self) -> None:
        for s in self._socks:
            try:
                if not s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.nodelay_set += 1
            except OSError:
                pass        # the connection went away

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        for s in self._socks:
            try:
                s.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)
                self.acks += 1
            except OSError:
                pass        # the connection went away
        if time.monotonic() < self._until:
            self._handle = loop.call_later(INTERVAL_S, self._tick, loop)
        else:
            self._release()

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        socks, self._socks = self._socks, []
        for s in socks:
            s.close()

    def close(self) -> None:
        self._release()
