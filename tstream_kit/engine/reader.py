"""FileReader: read any byte range of one file while its torrent downloads.

Scheduling
----------
The pieces under the read head and a read-ahead window after it get
deadlines: the time at which a player moving at the file's bitrate will need
them. The window is sized from that bitrate (``READAHEAD_SECONDS`` of video)
and doubles, up to ``MAX_GROWTH``, each time the reader consumes a whole
window without waiting: a viewer who keeps up, or a download, gets more
pieces in flight. When the reader seeks, pieces it no longer needs lose their
deadline (unless another reader claims them); when it closes, all of them.

The first and last pieces of a file are fetched early, by the first reader
that opens the file (once per torrent): an MP4 whose ``moov`` is at the end, or
an MKV's cues, is read from the end before playback starts.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import TYPE_CHECKING, Any

from ..media import FileEntry, estimate_bitrate, mp4_duration
from .torrent import PieceError

if TYPE_CHECKING:  # pragma: no cover
    from .torrent import Torrent

__all__ = ["FileReader", "ReaderClosed", "ReadTimeout"]

#: seconds of video to keep scheduled ahead of the read head; it doubles
#: while the reader keeps up (see _schedule for why it starts this short)
READAHEAD_SECONDS = 0.5
#: the window never has fewer pieces than this (tiny or unknown bitrates)
MIN_WINDOW_PIECES = 4
#: ... nor more bytes than this (memory is not the limit, libtorrent's
#: time-critical list is: every entry is re-sorted on each tick)
MAX_WINDOW_BYTES = 32 * 1024 * 1024
#: the window may grow to this multiple of its bitrate-based size
MAX_GROWTH = 16
#: pieces right under the read head with near-zero deadlines
CRITICAL_PIECES = 4
#: how many already-downloaded pieces to ask libtorrent for ahead of use
PREFETCH_PIECES = 4
#: largest single read from a file on disk (pread in a worker thread)
DIRECT_CHUNK = 4 * 1024 * 1024
#: deadline of the file's first/last pieces when the file is opened
ENDS_HEAD_BYTES = 1024 * 1024
ENDS_TAIL_BYTES = 1024 * 1024
#: a reader that read at least this much asks for a malloc_trim when it closes
TRIM_AFTER_BYTES = 32 * 1024 * 1024

_ids = itertools.count(1)


class ReaderClosed(Exception):
    """The reader was closed (stream stopped, torrent removed)."""


class ReadTimeout(TimeoutError):
    """A piece did not arrive in time: no peer has it, or all peers left."""


class FileReader:
    def __init__(self, torrent: "Torrent", file: FileEntry, *,
                 piece_timeout: float = 60.0, label: dict[str, Any] | None = None) -> None:
        self.id = next(_ids)
        self.torrent = torrent
        self.file = file
        self.piece_timeout = piece_timeout
        self.label = dict(label or {})
        self.started_at = time.time()
        self.position = 0            # next byte the reader will ask for
        self.bytes_read = 0
        self.stalls = 0              # reads that had to wait for a download
        self.wait_seconds = 0.0
        self.error: str | None = None
        self.closed = False
        self._closed_fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._fd: int | None = None
        self._head_piece: int | None = None
        self._growth = 1
        self._run_bytes = 0          # bytes read since the last wait
        plen = torrent.piece_length
        self._first_piece = file.offset // plen if plen else 0
        self._last_piece = (file.offset + max(file.size, 1) - 1) // plen if plen else 0
        # The first reader of a file fetches its ends, once per torrent: a later
        # reader is a seek (or another viewer) whose player has read the index already.
        # Fetched again at every seek, the tail's pieces were requested together with
        # the seek's, in no useful order: its first piece came 12th of 16 (trace of the
        # bench's seek, 1 MiB at 60 %: first byte 31 ms, against ~3 ms for one piece).
        self._first_on_file = (file.index not in torrent.ends_fetched
                               and not any(r.file.index == file.index for r in torrent.readers))
        torrent.readers.add(self)
        torrent.want_file(file.index)

    # --------------------------------------------------------------- reading
    async def read(self, offset: int, max_size: int) -> bytes:
        """Up to ``max_size`` bytes at ``offset`` (fewer at a piece or chunk
        boundary; ``b""`` at end of file). Waits for pieces to download."""
        if self.closed:
            raise ReaderClosed(self.error or "reader closed")
        size = self.file.size
        if offset >= size or max_size <= 0:
            return b""
        t = self.torrent
        if not t.checked:
            # libtorrent silently drops deadlines set before its piece
            # picker exists, i.e. while the torrent is still being checked
            await self._wait(t.wait_checked(self.piece_timeout))
        if self._first_on_file and self.file.index not in t.ends_fetched:
            t.ends_fetched.add(self.file.index)
            self._fetch_ends()
        plen = t.piece_length
        abs_off = self.file.offset + offset
        piece = abs_off // plen
        self.position = offset
        self._schedule(piece, abs_off)
        t.last_read_at = time.time()

        n = min(max_size, size - offset)
        last_needed = (abs_off + min(n, DIRECT_CHUNK) - 1) // plen
        run_end = t.disk_run_end(self.file.index, piece, last_needed)
        if run_end > piece:
            data = await self._pread(offset, min(n, DIRECT_CHUNK, run_end * plen - abs_off))
        else:
            data = t.cached_piece(piece)
            if data is None:
                if not t.have[piece]:
                    self.stalls += 1
                    self._run_bytes = 0
                    began = time.monotonic()
                    data = await self._wait(t.piece_data(piece))
                    self.wait_seconds += time.monotonic() - began
                else:
                    data = await self._wait(t.piece_data(piece))
            start = abs_off - piece * plen
            end = min(len(data), start + n)
            data = data if (start == 0 and end == len(data)) else data[start:end]
            self._prefetch(piece)
        self.bytes_read += len(data)
        self._run_bytes += len(data)
        self.position = offset + len(data)
        self._learn_duration(offset, data)
        return data

    @property
    def head_piece(self) -> int | None:
        """The piece under the read head (``None`` before the first read)."""
        return self._head_piece

    @property
    def closed_future(self) -> asyncio.Future:
        """Done when the reader is closed (for callers that wait on I/O of their own)."""
        return self._closed_fut

    def disk_span(self, offset: int, size: int) -> tuple[int, int] | None:
        """``(fd, n)`` when the next ``n`` (<= ``size``) bytes at ``offset``
        are known to be written to this file on disk, so the caller may
        ``sendfile`` them itself; ``None`` otherwise (use :meth:`read`). The
        reader's position and counters move as if the bytes were read."""
        t = self.torrent
        if self.closed or offset >= self.file.size or size <= 0 or not t.checked:
            return None
        n = min(size, self.file.size - offset)
        abs_off = self.file.offset + offset
        plen = t.piece_length
        first = abs_off // plen
        run_end = t.disk_run_end(self.file.index, first, (abs_off + n - 1) // plen)
        if run_end == first:
            return None
        n = min(n, run_end * plen - abs_off)
        if self._fd is None:
            try:
                self._fd = os.open(t.file_path(self.file.index), os.O_RDONLY)
            except OSError:
                return None
        t.last_read_at = time.time()
        self.position = offset + n
        self.bytes_read += n
        self._run_bytes += n
        return self._fd, n

    async def read_exact(self, offset: int, size: int) -> bytes:
        parts = []
        end = min(offset + size, self.file.size)
        while offset < end:
            chunk = await self.read(offset, end - offset)
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
        return b"".join(parts)

    async def _wait(self, coro: Any) -> Any:
        task = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({task, self._closed_fut}, timeout=self.piece_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        if self.closed:
            raise ReaderClosed(self.error or "reader closed")
        self.error = (f"no data for {self.piece_timeout:g} s at byte {self.position} "
                      f"of {self.file.path}: no connected peer has it")
        raise ReadTimeout(self.error)

    async def _pread(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            path = self.torrent.file_path(self.file.index)
            self._fd = os.open(path, os.O_RDONLY)
        fd = self._fd
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, os.pread, fd, size, offset)
        if len(data) != size:
            raise PieceError(f"short read of {self.file.path} at {offset}: file truncated on disk?")
        return data

    def _prefetch(self, piece: int) -> None:
        t = self.torrent
        for p in range(piece + 1, min(piece + 1 + PREFETCH_PIECES, self._last_piece + 1)):
            if t.have[p] and not t.on_disk[p]:
                t.prefetch_piece(p)

    def _learn_duration(self, offset: int, data: bytes) -> None:
        t, idx = self.torrent, self.file.index
        if idx in t.durations or not self.file.path.lower().endswith((".mp4", ".m4v", ".mov")):
            return
        near_head = offset < 2 * t.piece_length
        near_tail = offset + len(data) > self.file.size - 8 * 1024 * 1024
        if near_head or near_tail:
            d = mp4_duration(data)
            if d:
                t.durations[idx] = d

    # ------------------------------------------------------------ scheduling
    @property
    def bitrate(self) -> float:
        """Bytes per second of the file (guessed until the duration is known)."""
        return estimate_bitrate(self.file.size, self.torrent.durations.get(self.file.index))

    def window_bytes(self) -> int:
        plen = self.torrent.piece_length
        base = max(self.bitrate * READAHEAD_SECONDS, MIN_WINDOW_PIECES * plen)
        return int(min(base * self._growth, max(MAX_WINDOW_BYTES, MIN_WINDOW_PIECES * plen)))

    def _schedule(self, piece: int, abs_off: int) -> None:
        if piece == self._head_piece:
            return
        t = self.torrent
        window = self.window_bytes()
        if self._run_bytes >= window and self._growth < MAX_GROWTH:
            self._growth *= 2   # the reader keeps up: give it more in flight
            self._run_bytes = 0
            window = self.window_bytes()
        self._head_piece = piece
        plen = t.piece_length
        last = min(self._last_piece, piece + max(1, window // plen))
        rate = self.bitrate
        pieces = range(piece, last + 1)
        # libtorrent requests every deadline within its horizon (about a
        # second plus the average piece time) at once, in no useful order,
        # so a long window delays the pieces under the head behind the rest.
        # Measured, seek of 1 MiB to an unseen offset (bench/stream_bench.py,
        # medians of 5): 4 s of window 130-150 ms on an unlimited loopback
        # peer and 0.5 s at 32 MB/s; 0.5 s of window 16 ms and 53 ms.
        # Session 8, 0.5 s against 0.1 s (40 Mbit/s file: 10 pieces against
        # the 4-piece minimum), 4 rounds alternating, 16 runs each: the 1 MiB
        # seek 23.6 against 17.0 ms at 32 MB/s, 21.3 against 15.0 ms
        # unlimited, cold throughput unchanged; but in headless Chromium
        # (2 rounds, 6 runs each) first frame 299 against 346 ms and seek to
        # 80 % 434 against 501 ms: after a seek every piece waits, so the
        # window never grows, and a player needs megabytes, not one. What a
        # viewer sees wins: half a second stays. (A new reader with the short
        # window only until it had read it: 24.3 / 22.3 ms, no gain.) So
        # the window starts at half a second of video (at least 4 pieces)
        # and doubles only while the reader keeps up, when what it covers
        # is mostly downloaded already; the CRITICAL_PIECES under the head
        # are moved up each time it advances; sequential picking fetches
        # everything else.
        critical = pieces[:CRITICAL_PIECES]
        later = pieces[CRITICAL_PIECES:]
        urgent = [(p, i * 20) for i, p in reversed(list(enumerate(critical)))]
        deadlines = [(p, max(0, p * plen - abs_off) * 1000 / rate) for p in reversed(later)]
        t.release_deadlines(self, keep=set(pieces))
        t.set_deadlines(self, deadlines, urgent=urgent)

    def _fetch_ends(self) -> None:
        t, f = self.torrent, self.file
        plen = t.piece_length
        head_last = min(self._last_piece, (f.offset + ENDS_HEAD_BYTES - 1) // plen)
        tail_first = max(self._first_piece, (f.offset + f.size - ENDS_TAIL_BYTES) // plen)
        # the tail after the head: a player reads the head first, and an
        # index at the end (moov, cues) right after it
        tail = [(p, 500) for p in range(self._last_piece, tail_first - 1, -1)]
        head = [(p, (p - self._first_piece) * 50) for p in range(head_last, self._first_piece - 1, -1)]
        t.set_deadlines(("ends", f.index), tail + head)

    def buffered_ahead(self) -> int:
        """Bytes downloaded contiguously from the read head."""
        t = self.torrent
        if not t.piece_length or self.position >= self.file.size:
            return 0
        abs_pos = self.file.offset + self.position
        p = abs_pos // t.piece_length
        have = t.have
        while p <= self._last_piece and have[p]:
            p += 1
        end = min((p * t.piece_length), self.file.offset + self.file.size)
        return max(0, end - abs_pos)

    # ------------------------------------------------------------- lifecycle
    def close(self, reason: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if reason and not self.error:
            self.error = reason
        if not self._closed_fut.done():
            self._closed_fut.set_result(None)
        t = self.torrent
        t.readers.discard(self)
        t.release_deadlines(self)
        if not any(r.file.index == self.file.index for r in t.readers):
            t.release_deadlines(("ends", self.file.index))
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.bytes_read >= TRIM_AFTER_BYTES:
            t.engine.trim_soon()

    def snapshot(self) -> dict[str, Any]:
        ahead = self.buffered_ahead()
        return {
            "id": self.id,
            "infohash": self.torrent.infohash,
            "file_index": self.file.index,
            "path": self.file.path,
            "size": self.file.size,
            "position": self.position,
            "bytes_read": self.bytes_read,
            "buffer_ahead_bytes": ahead,
            "buffer_ahead_s": round(ahead / self.bitrate, 2),
            "window_bytes": self.window_bytes(),
            "stalls": self.stalls,
            "wait_s": round(self.wait_seconds, 3),
            "started_at": self.started_at,
            "error": self.error,
            **self.label,
        }

    async def __aenter__(self) -> "FileReader":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
