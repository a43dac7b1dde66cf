"""Limits that keep a server on a network up and within its disk.

* :class:`RateLimiter` - a token bucket per client: ``TSTREAM_RATE_LIMIT``
  requests per minute, bursts up to a sixth of that (at least 10); beyond it
  429 with ``Retry-After``. Range requests on a torrent the client is
  streaming, or streamed in the last ``STREAM_GRACE`` seconds, are *not*
  counted (:func:`is_active_stream_request`): a player sends one per seek and
  re-requests after a stall, and a 429 there stops a video someone is
  watching; streams are capped by ``TSTREAM_MAX_STREAMS`` instead. Loopback
  clients are not limited either (the machine's own user; behind a reverse
  proxy set ``TSTREAM_TRUST_PROXY`` so clients are told apart).
* :func:`check_stream_slot` - ``TSTREAM_MAX_STREAMS``; the torrent count is
  checked in the engine (``TorrentLimitReached``).
* :func:`enforce_disk_quota` - ``TSTREAM_DISK_QUOTA``: while the downloads use
  more, remove the least recently watched torrent that nobody streams, with
  its files.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .settings import format_size

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import Torrent
    from ..kit import Kit

log = logging.getLogger("tstream.limits")

__all__ = ["LimitExceeded", "RateLimiter", "check_stream_slot", "enforce_disk_quota", "disk_usage",
           "is_active_stream_request"]


class LimitExceeded(Exception):
    """A limit was reached: ``status`` 429 (this client) or 503 (the server)."""

    def __init__(self, status: int, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    at: float


#: seconds after a client's last stream start during which its Range requests
#: on that torrent are still not counted (a paused player resuming, a seek)
STREAM_GRACE = 120.0


class RateLimiter:
    """Token buckets keyed by client address."""

    def __init__(self, per_minute: int, *, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(10, per_minute // 6))
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._streams: dict[tuple[str, str], float] = {}   # (client, infohash) -> last stream start

    def note_stream(self, client: str, infohash: str) -> None:
        now = self.clock()
        if len(self._streams) > 10000:
            self._streams = {k: t for k, t in self._streams.items() if now - t < STREAM_GRACE}
        self._streams[(client, infohash)] = now

    def streamed_recently(self, client: str, infohash: str) -> bool:
        at = self._streams.get((client, infohash))
        return at is not None and self.clock() - at < STREAM_GRACE

    def take(self, key: str) -> float:
        """Spend one token; returns 0, or the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) > 10000:
                self._prune(now)
            b = self._buckets[key] = _Bucket(self.capacity, now)
        b.tokens = min(self.capacity, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate

    def check(self, key: str) -> None:
        wait = self.take(key)
        if wait:
            retry = max(1, math.ceil(wait))
            raise LimitExceeded(429, f"too many requests from {key}: at most "
                                f"{round(self.rate * 60)} a minute (TSTREAM_RATE_LIMIT); retry in {retry} s",
                                retry)

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.at) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]


def is_active_stream_request(kit: "Kit", method: str, path: str, headers: Any, magnet: str | None,
                             client: str) -> bool:
    """A GET/HEAD with a Range header on a torrent this client is streaming now."""
    if method not in ("GET", "HEAD") or not path.rstrip("/").endswith("/stream"):
        return False
    if not headers.get("Range") or not magnet:
        return False
    from ..magnets import MagnetError, normalise_infohash, parse_magnet
    try:
        infohash = (parse_magnet(magnet).infohash if magnet.lower().startswith("magnet:")
                    else normalise_infohash(magnet))
    except MagnetError:
        return False
    torrent = kit.engine.get(infohash)
    if torrent is None:
        return False
    return (any(r.label.get("client") == client for r in torrent.readers)
            or kit.limiter.streamed_recently(client, infohash))


def check_stream_slot(kit: "Kit", torrent: "Torrent", file_index: int, client: str | None) -> None:
    """503 when ``TSTREAM_MAX_STREAMS`` streams are open - unless this client
    is already streaming this file (a seek replaces its own stream)."""
    if client:
        kit.limiter.note_stream(client, torrent.infohash)
    limit = kit.settings.max_streams
    if not limit:
        return
    readers = kit.readers()
    if len(readers) < limit:
        return
    if client and any(r.label.get("client") == client and r.file.index == file_index
                      for r in torrent.readers):
        return
    raise LimitExceeded(503, f"{len(readers)} streams are open, the most this server allows "
                        "(TSTREAM_MAX_STREAMS); try again when one ends", 5)


# ------------------------------------------------------------------ disk quota
def disk_usage(path: Path) -> int:
    """Bytes a file or folder takes on disk (allocated blocks: sparse files of
    partial downloads count what they hold, not their length)."""
    total = 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not os.path.isdir(path):
        return st.st_blocks * 512
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def torrent_paths(torrent: "Torrent") -> list[Path]:
    """Where a torrent's bytes are: its top folder (or single file) and part file."""
    base = Path(torrent.engine.download_dir)
    out = [base / f".{torrent.infohash}.parts"]
    if torrent.has_metadata and torrent.files:
        top = torrent.files[0].path.split("/", 1)[0]
        out.append(base / top)
    return out


def torrent_disk_usage(torrent: "Torrent") -> int:
    return sum(disk_usage(p) for p in torrent_paths(torrent))


def last_watched(torrent: "Torrent") -> float:
    return torrent.last_read_at or torrent.added_at


async def enforce_disk_quota(kit: "Kit") -> list[str]:
    """Evict idle torrents, least recently watched first, until the downloads
    fit ``TSTREAM_DISK_QUOTA``. Returns the evicted infohashes."""
    quota = kit.settings.disk_quota
    if not quota:
        return []
    used = disk_usage(kit.engine.download_dir)
    if used <= quota:
        return []
    evicted: list[str] = []
    idle = sorted((t for t in kit.engine.torrents() if not t.readers), key=last_watched)
    for t in idle:
        if used <= quota:
            break
        size = torrent_disk_usage(t)
        log.warning("disk quota: %s used of %s; evicting %s (%s, last watched %s)",
                    format_size(used), format_size(quota), t.infohash, t.name,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_watched(t))),
                    extra={"event": "evict", "infohash": t.infohash, "bytes": size})
        await kit.engine.remove(t.infohash, delete_files=True)
        evicted.append(t.infohash)
        used -= size
    if used > quota:
        streaming = sum(1 for t in kit.engine.torrents() if t.readers)
        log.warning("disk quota: still %s used of %s; %d torrents are being streamed and stay",
                    format_size(used), format_size(quota), streaming)
    return evicted
