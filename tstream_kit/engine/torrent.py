"""Torrent: what the engine knows about one torrent, keyed by infohash.

Pieces reach readers by one of two roads:

* ``read_piece``: libtorrent reads the piece through its disk subsystem and
  posts a ``read_piece_alert`` with the bytes. Always correct, even for a
  piece whose write is still in flight (libtorrent serves it from its store
  buffer), so it is the road for everything downloaded in this session.
* a plain ``pread`` of the file: only for pieces known to be on disk, i.e.
  verified when the torrent was checked at start, or covered by a completed
  ``flush_cache`` (a fence behind every outstanding write). It is the fast
  road for finished torrents: no alert, no copy through libtorrent.

A ``piece_finished_alert`` is posted after the hash check, which can be
before the last block of the piece is written, so a pread right after it
could read stale bytes; hence the two sets ``have`` and ``on_disk``.

A third road joins them for pieces that finished a while ago
(``VERIFIED_READ_AGE_S``): ``pread`` the piece from its file in a worker
thread and check it against the piece's SHA-1 from the metadata. If it
matches, the bytes are right whatever libtorrent's disk queue is doing, and
the piece counts as on disk from then on (later reads use pread/sendfile).
``read_piece`` of such a piece waits behind every write queued before it:
50 ms measured for Chromium's request of the data after the ``moov`` while
the download ran at full speed, against ~1 ms this way.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import hashlib
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..media import FileEntry, choose_default_file
from .lt import file_layout, lt
from .quickack import QuickAck

if TYPE_CHECKING:  # pragma: no cover
    from .reader import FileReader
    from .session import Engine

log = logging.getLogger("tstream.engine")

__all__ = ["Torrent", "MetadataTimeout", "PieceError", "infohash_key"]

#: bytes of piece data kept in memory per torrent (besides what readers
#: hold): enough for the read-ahead of a few readers, small next to a file.
PIECE_CACHE_BYTES = 8 * 1024 * 1024
#: minimum pieces kept, for torrents with huge pieces
PIECE_CACHE_MIN_PIECES = 4
#: a piece finished at least this long ago is read with pread + SHA-1 check
#: (its write is almost surely done) instead of through libtorrent's queue
VERIFIED_READ_AGE_S = 0.1
#: pieces from a reader's head on that are read into the cache as soon as
#: they finish (the critical pieces and the next few; well inside the cache)
EAGER_READ_PIECES = 8
#: While readers stream a torrent that is still downloading, a ``flush_cache``
#: fence at most this often, once this many finished pieces are not yet known
#: to be on disk. When a fence completes, every piece finished before it was
#: issued is in its file: a reader behind the download sends those bytes with
#: sendfile() (no read_piece copy, no SHA-1 check, no Python per chunk).
#: Measured on a cold 1.2 GB stream: without fences 88 % of pieces took the
#: verified-pread road (a second SHA-1 of each); see docs/PERFORMANCE.md.
FENCE_INTERVAL_S = 0.1
FENCE_MIN_PIECES = 8
FENCE_LOOKAHEAD = 64
#: The seek bridge. libtorrent cancels every request in flight to every peer
#: when a torrent's first time-critical piece is set (its
#: ``cancel_non_critical``): what a reader that opens after all others closed,
#: i.e. a player's seek, sets off. The connection then starts again from two
#: requests, and a seeder's reply smaller than one segment waits for our ACK
#: (Nagle on its side, the 40 ms delayed ACK on ours): twice, measured, so a
#: 1 MiB seek took 92 ms on an unlimited loopback seeder (and 93 ms at 32 MB/s)
#: against 11 ms (and 11 ms) with the requests kept flowing (in-process trace,
#: 6 runs each). So when the last claim on a missing piece is released while
#: the torrent downloads, the torrent first sets time-critical pieces of its
#: own (``BRIDGE_PIECES`` of the last missing pieces nobody claims, deadlines
#: days away), and lets them go once the next reader's claims hold the list,
#: or after ``BRIDGE_GRACE_S`` without one (a player's next request comes
#: within milliseconds).
#: Only across that gap. While any time-critical piece is set, libtorrent's
#: ordinary picker keeps one request per peer and only for top-priority pieces
#: (``request_a_block``'s time-critical mode), so the download beyond the
#: readers' windows stops. Session 4 held one such piece for as long as the
#: torrent downloaded; each time it finished with no reader's piece left, the
#: next one set off the very cancel it was there to prevent, and requests
#: piled up at a slow peer (186 blocks at 0.6 MB/s: 5 s) that its drain
#: estimate, taken from our own piece rate, missed; tests/test_server.py's
#: ranges at 3 MB/s then waited up to 1 s each (session 5 trace).
#: Two pieces: when the first finishes, the second holds the list while a
#: third replaces it. Only the first is requested (libtorrent requests the
#: head of its list, and the rest only within about a second of their
#: deadlines), so the bridge costs one piece in flight.
#: OFF by default again: on a clean-clone CI run at 38b0c83 (the 2nd with it
#: on), tests/test_server.py::test_200_random_ranges_while_downloading_and_after
#: hung ~200 s and failed (pytest could not even print why); cause not found.
PIPELINE_ANCHOR = False
ANCHOR_DEADLINE_MS = 1_000_000_000
BRIDGE_PIECES = 2
BRIDGE_GRACE_S = 2.0
#: ... but cancelling is right when the requests in flight take long to drain
#: (a slow peer: at 2 MB/s, 1 MiB seeks took 1.0 s with the cancel and 1.2 s
#: without). At a seek, the bridge steps aside, so that libtorrent cancels,
#: when the blocks queued at the peers need longer than this to arrive
#: (``_pipeline_drain_s``).
KEEP_PIPELINE_S = 0.1
RATE_WINDOW_S = 1.0
BLOCK_SIZE = 16 * 1024
#: Force our ACKs to the peers for a moment after a reader's new demand
#: (tstream_kit/engine/quickack.py: the seeder's Nagle meets our delayed ACK).
#: "cold": only when no reader's piece was pending, i.e. when libtorrent
#: cancels and restarts the connections (a first read, a seek after the
#: previous request closed); "any": at every new deadline; "off".
QUICKACK_TRIGGER = "cold"


class MetadataTimeout(TimeoutError):
    """No peer sent the torrent's metadata in time."""


class PieceError(RuntimeError):
    """libtorrent could not read a piece (storage error, torrent removed)."""


def infohash_key(info_hashes: Any) -> str:
    """40-hex key: the v1 infohash, or the truncated v2 one for v2-only."""
    if info_hashes.has_v1():
        return str(info_hashes.v1)
    return str(info_hashes.get_best())


class Torrent:
    def __init__(self, engine: "Engine", infohash: str, handle: Any, name: str | None) -> None:
        self.engine = engine
        self.infohash = infohash
        self.handle = handle
        self.name = name or infohash
        self.added_at = time.time()
        self.error: str | None = None
        self.hash_failures = 0
        self.status: dict[str, Any] = {}
        self.files: list[FileEntry] = []
        self.piece_length = 0
        self.num_pieces = 0
        self.default_file: int | None = None
        self.durations: dict[int, float] = {}   # file index -> seconds, when known
        self.readers: set["FileReader"] = set()
        self.last_read_at = 0.0
        self.closed = False
        self._info: Any = None
        self._metadata = asyncio.Event()
        self._checked = asyncio.Event()
        self.have = bytearray()
        self.on_disk = bytearray()
        #: flush_cache fences in flight, oldest first: (have, wanted files) when each was
        #: issued; libtorrent answers them in order with a cache_flushed_alert
        self._flush_pending: collections.deque[tuple[bytes, frozenset[int]]] = collections.deque()
        self._last_fence = float("-inf")
        self.fences = 0
        #: files whose bytes are in their own file on disk (not in libtorrent's
        #: part file, where pieces of unwanted files go): pread-able
        self.direct_files: set[int] = set()
        self._have_waiters: dict[int, list[asyncio.Future]] = {}
        self._data_waiters: dict[int, list[asyncio.Future]] = {}
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._finished_at: list[float] = []
        self._verifying: dict[int, asyncio.Task] = {}
        self._v1 = False
        #: pieces served by the verified-pread road / that failed its check
        self.verified_reads = 0
        self.read_piece_requests = 0
        self.verified_misses = 0
        self._cache_bytes = 0
        self._deadlines: dict[int, set[object]] = {}
        self._recent_finishes: collections.deque[float] = collections.deque(maxlen=256)
        self._checked_at = float("-inf")
        self._anchors: list[int] = []          # the seek bridge's pieces (BRIDGE_PIECES)
        self._bridge_timer: asyncio.TimerHandle | None = None
        self.bridges = 0              # times the bridge was set up
        #: files whose first and last pieces a reader has asked for (FileReader._fetch_ends)
        self.ends_fetched: set[int] = set()
        self.pipeline_cancels = 0     # seeks at which the bridge stepped aside
        self.quickack = QuickAck()    # QUICKACK_TRIGGER
        self._wanted_files: set[int] = set()
        #: file priority changes asked of libtorrent / applied (file_prio_alert)
        self.file_priority_requests = 0
        self.file_priority_updates = 0
        self.peer_hints: list[tuple[str, int]] = []   # x.pe peers, to reconnect
        self.part_file_recoveries = 0
        self.part_file_recovered_at = float("-inf")   # time.monotonic()

    # -------------------------------------------------------------- metadata
    @property
    def has_metadata(self) -> bool:
        return self._metadata.is_set()

    def refresh_metadata(self) -> None:
        if self._metadata.is_set() or self.closed:
            return
        try:
            ti = self.handle.torrent_file()
        except RuntimeError:
            return
        if ti is None or not ti.is_valid():
            return
        self._info = ti
        fs = file_layout(ti)
        self.name = ti.name()
        self.piece_length = ti.piece_length()
        self.num_pieces = ti.num_pieces()
        pad = int(lt.file_storage.flag_pad_file)
        self.files = [
            FileEntry(index=i, path=fs.file_path(i), size=fs.file_size(i), offset=fs.file_offset(i))
            for i in range(fs.num_files())
            if not int(fs.file_flags(i)) & pad
        ]
        # file start offsets, ascending (torrent order): which file holds a piece, by bisection
        self._file_offsets = [f.offset for f in self.files]
        self.default_file = choose_default_file(self.files)
        self.have = bytearray(self.num_pieces)
        self.on_disk = bytearray(self.num_pieces)
        self._finished_at = [0.0] * self.num_pieces
        self._v1 = bool(ti.info_hashes().has_v1())
        # Download only the default file (as peerflix does) until a reader
        # asks for another. libtorrent starts with every file wanted: had it
        # started with none (default_dont_download), the torrent would count
        # as finished after the check, tell its peers it is upload-only, and
        # seeders would drop us; the first stream would wait for a reconnect.
        prios = [0] * fs.num_files()
        if self.default_file is not None:
            prios[self.default_file] = 4
            self._wanted_files.add(self.default_file)
        try:
            self.handle.prioritize_files(prios)
            self.file_priority_requests += 1
        except RuntimeError:
            pass
        self._metadata.set()

    async def wait_metadata(self, timeout: float) -> None:
        if self._metadata.is_set():
            return
        try:
            await asyncio.wait_for(self._metadata.wait(), timeout)
        except asyncio.TimeoutError:
            raise MetadataTimeout(
                f"no peer sent the metadata of {self.infohash} within {timeout:g} s "
                "(is anyone seeding it? check the magnet's trackers and x.pe peers)"
            ) from None
        if self.closed:
            raise PieceError("torrent removed")

    def info_bytes(self) -> bytes | None:
        """The bencoded info dictionary (for a metadata cache), once known."""
        if self._info is None:
            return None
        return bytes(self._info.info_section())

    def file(self, index: int) -> FileEntry | None:
        for f in self.files:
            if f.index == index:
                return f
        return None

    def file_path(self, index: int) -> Path:
        fs = file_layout(self._info)
        return Path(self.engine.download_dir) / fs.file_path(index)

    def file_pieces(self, f: FileEntry) -> range:
        if f.size == 0:
            return range(0)
        first = f.offset // self.piece_length
        last = (f.offset + f.size - 1) // self.piece_length
        return range(first, last + 1)

    def piece_size(self, piece: int) -> int:
        if piece == self.num_pieces - 1:
            total = self._info.total_size()
            return total - piece * self.piece_length
        return self.piece_length

    # -------------------------------------------------------------- checking
    def on_checked(self) -> None:
        """Files were checked against the metadata: what is on disk now is
        verified and written, so it can be read directly."""
        if not self.has_metadata:
            self.refresh_metadata()
            if not self.has_metadata:
                return
        try:
            st = self.handle.status(lt.torrent_handle.query_pieces)
            pieces = st.pieces
        except RuntimeError:
            return
        for i, have in enumerate(pieces):
            if have:
                self.on_disk[i] = 1
                self._set_have(i)
        self.direct_files |= self._wanted_files
        self._checked_at = time.monotonic()
        self._checked.set()

    @property
    def checked(self) -> bool:
        return self._checked.is_set()

    async def wait_checked(self, timeout: float) -> None:
        if not self._checked.is_set():
            try:
                await asyncio.wait_for(self._checked.wait(), timeout)
            except asyncio.TimeoutError:
                raise PieceError(f"libtorrent did not finish checking {self.name} in {timeout:g} s") from None

    # ---------------------------------------------------------------- pieces
    def on_piece_finished(self, piece: int) -> None:
        if 0 <= piece < self.num_pieces:
            now = self._finished_at[piece] = time.monotonic()
            self._recent_finishes.append(now)
            self._set_have(piece)
            if piece in self._anchors:
                self._anchors.remove(piece)
                if self._anchors:       # the other one holds the list: replace this one
                    self._open_bridge()
                else:
                    self._close_bridge()
            if self.readers and now - self._last_fence >= FENCE_INTERVAL_S:
                self._maybe_fence(now)
            if self._near_a_read_head(piece) and not self.on_disk[piece]:
                # Read it now, not when the reader gets to it: after a seek
                # the pieces under the head finish in any order, and a piece
                # finished while the reader still waits for the one before
                # it would otherwise start its read_piece round trip (1-6 ms
                # here) only then.
                self.request_piece(piece)

    def _near_a_read_head(self, piece: int) -> bool:
        for r in self.readers:
            head = r.head_piece
            if head is not None and head <= piece < head + EAGER_READ_PIECES:
                return True
        return False

    def _set_have(self, piece: int) -> None:
        self.have[piece] = 1
        waiters = self._have_waiters.pop(piece, None)
        if waiters:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def wait_piece(self, piece: int) -> None:
        if self.closed:
            raise PieceError(f"torrent {self.name} was removed")
        if self.have[piece]:
            return
        fut = asyncio.get_running_loop().create_future()
        self._have_waiters.setdefault(piece, []).append(fut)
        try:
            await fut
        finally:
            lst = self._have_waiters.get(piece)
            if lst and fut in lst:
                lst.remove(fut)
                if not lst:
                    del self._have_waiters[piece]

    def cached_piece(self, piece: int) -> bytes | None:
        data = self._cache.get(piece)
        if data is not None:
            self._cache.move_to_end(piece)
        return data

    def request_piece(self, piece: int) -> None:
        """Ask libtorrent for a piece's bytes (it must be ``have``)."""
        if piece in self._cache or piece in self._data_waiters:
            return
        self._data_waiters[piece] = []
        self.read_piece_requests += 1
        try:
            self.handle.read_piece(piece)
        except RuntimeError as exc:
            self.on_piece_data(piece, None, str(exc))

    async def piece_data(self, piece: int) -> bytes:
        """The bytes of one piece, waiting for it to be downloaded."""
        data = self.cached_piece(piece)
        if data is not None:
            return data
        await self.wait_piece(piece)
        data = self.cached_piece(piece)
        if data is not None:
            return data
        task = self._verify_task(piece) if piece not in self._data_waiters else None
        if task is not None:
            data = await task
            if data is not None:
                return data
            data = self.cached_piece(piece)
            if data is not None:
                return data
        fut = asyncio.get_running_loop().create_future()
        self.request_piece(piece)
        if piece in self._data_waiters:
            self._data_waiters[piece].append(fut)
        else:  # answered synchronously (error path)
            data = self.cached_piece(piece)
            if data is None:
                raise PieceError(f"piece {piece} could not be read")
            return data
        return await fut

    def prefetch_piece(self, piece: int) -> None:
        """Bring a downloaded piece into the cache ahead of use, by the
        verified-pread road if it qualifies, else by ``read_piece``."""
        if piece in self._cache or piece in self._data_waiters:
            return
        task = self._verify_task(piece)
        if task is None:
            self.request_piece(piece)
            return

        def done(tk: asyncio.Task) -> None:
            if not tk.cancelled() and tk.exception() is None and tk.result() is None \
                    and not self.closed:
                self.request_piece(piece)
        task.add_done_callback(done)

    def _verify_task(self, piece: int) -> "asyncio.Task | None":
        """The verified read of ``piece`` in flight (started now if the piece
        qualifies), or ``None``."""
        task = self._verifying.get(piece)
        if task is not None:
            return task
        if not self._v1 or self.closed or not self.have[piece]:
            return None
        finished = self._finished_at[piece]
        if not finished or time.monotonic() - finished < VERIFIED_READ_AGE_S:
            return None
        task = asyncio.ensure_future(self._verified_pread(piece))
        self._verifying[piece] = task
        task.add_done_callback(lambda _t: self._verifying.pop(piece, None))
        return task

    async def _verified_pread(self, piece: int) -> bytes | None:
        """The piece read straight from its file, if it lies inside one file
        and its bytes match the piece's SHA-1; else ``None`` (use
        ``read_piece``). Callers go through ``_verify_task``, which admits
        only pieces finished ``VERIFIED_READ_AGE_S`` ago or more."""
        if not self._v1 or self.closed:
            return None
        start = piece * self.piece_length
        size = self.piece_size(piece)
        # the last file starting at or before the piece (after any empty files at that offset)
        i = bisect.bisect_right(self._file_offsets, start) - 1
        f = self.files[i] if i >= 0 else None
        if f is None or start + size > f.offset + f.size:
            return None             # the piece spans files (or pad): read_piece handles it
        try:
            expected = bytes(self._info.hash_for_piece(piece))
        except (RuntimeError, IndexError):
            return None
        path = self.file_path(f.index)
        data = await asyncio.get_running_loop().run_in_executor(
            None, _pread_verified, path, start - f.offset, size, expected)
        if data is None:
            self.verified_misses += 1
            return None
        self.verified_reads += 1
        if f.index in self.direct_files:
            self.on_disk[piece] = 1     # proven written: later reads pread/sendfile it
        self.on_piece_data(piece, data, None)
        return data

    def on_piece_data(self, piece: int, data: bytes | None, error: str | None) -> None:
        waiters = self._data_waiters.pop(piece, [])
        if data is None:
            exc = PieceError(f"reading piece {piece} of {self.name} failed: {error}")
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(exc)
            return
        old = self._cache.pop(piece, None)
        if old is not None:         # read twice (two roads raced): count it once
            self._cache_bytes -= len(old)
        self._cache[piece] = data
        self._cache_bytes += len(data)
        for fut in waiters:
            if not fut.done():
                fut.set_result(data)
        limit = max(PIECE_CACHE_BYTES, PIECE_CACHE_MIN_PIECES * self.piece_length)
        while self._cache_bytes > limit and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= len(old)

    def disk_run_end(self, file_index: int, first: int, last: int) -> int:
        """End (exclusive) of the run of pieces known to be on disk from ``first`` on, within
        ``first..last``: ``last + 1`` if all are, ``first`` if ``first`` is not. A reader behind
        a download that is still going reads what is proven written, then looks again."""
        if file_index not in self.direct_files:
            return first
        end = self.on_disk.find(0, first, last + 1)
        return last + 1 if end < 0 else end

    # ------------------------------------------------------------- finishing
    def on_finished(self) -> None:
        """Every wanted piece is here: flush so later reads can pread."""
        if self.num_pieces == 0:
            return
        self._close_bridge()
        self._fence()

    def _maybe_fence(self, now: float) -> None:
        """A fence while streaming (``FENCE_INTERVAL_S``), when a reader is behind the download:
        ``FENCE_MIN_PIECES`` finished but unproven pieces within ``FENCE_LOOKAHEAD`` of its
        head. Not for a reader at or past the download's front (after a seek): a fence holds
        back libtorrent's next disk jobs (the reads of a seek's pieces among them) until every
        queued write is done, and it would prove nothing that reader needs."""
        if self._flush_pending or self.closed or not self.checked:
            return
        self._last_fence = now
        have, od = self.have, self.on_disk
        for r in self.readers:
            head = r.head_piece
            if head is None:
                continue
            end = min(head + FENCE_LOOKAHEAD, self.num_pieces)
            if have.count(1, head, end) - od.count(1, head, end) >= FENCE_MIN_PIECES:
                self._fence()
                return

    @property
    def fences_in_flight(self) -> int:
        return len(self._flush_pending)

    def _fence(self) -> None:
        self._flush_pending.append((bytes(self.have), frozenset(self._wanted_files)))
        self.fences += 1
        try:
            self.handle.flush_cache()
        except RuntimeError:
            self._flush_pending.pop()

    def on_cache_flushed(self) -> None:
        """The oldest fence completed: what it saw finished is written to its file."""
        if not self._flush_pending:
            return
        snap, wanted = self._flush_pending.popleft()
        n = len(self.on_disk)
        if len(snap) == n:
            # OR of two 0/1 byte maps, in C: a Python loop costs ~5 ms per fence at 100k pieces
            self.on_disk[:] = (int.from_bytes(self.on_disk, "big") | int.from_bytes(snap, "big")).to_bytes(n, "big")
        self.direct_files |= wanted

    # ------------------------------------------------------------- deadlines
    def want_file(self, index: int) -> None:
        """Make sure libtorrent downloads this file (priority 4, default)."""
        if index in self._wanted_files:
            return
        self._wanted_files.add(index)
        try:
            self.handle.file_priority(index, 4)
            self.file_priority_requests += 1
        except RuntimeError:
            return

    def recover_part_file(self) -> bool:
        """Undo libtorrent 2.1's "partfile_write ... file too short" (its PR
        #8381 made short part-file reads an error). A piece still downloading
        when its file was set to priority 0 (right after the metadata: the
        first pieces are in flight) is finished in the part file; when that
        file is wanted later its blocks are moved out slot by slot, and a
        partly written last slot reads short: the torrent stops with an error
        and the stream waits for nothing. Grow the part file (sparse) to its
        full size so every slot reads whole (blocks never written read as
        zeros and are downloaded again: libtorrent never marked them written),
        then ask for the wanted files again, clear the error and resume. Found by
        tests/test_faults.py; at most 3 times per torrent."""
        if self.part_file_recoveries >= 3 or self._info is None or not self.num_pieces:
            return False
        self.part_file_recoveries += 1
        try:
            name = f".{self.handle.info_hashes().get_best()}.parts"
        except RuntimeError:
            return False
        header = ((2 + self.num_pieces) * 4 + 1023) & ~1023     # libtorrent's part_file layout
        full = header + self.num_pieces * self.piece_length
        try:
            fd = os.open(Path(self.engine.download_dir) / name, os.O_WRONLY)
            try:
                if os.fstat(fd).st_size < full:
                    os.ftruncate(fd, full)
            finally:
                os.close(fd)
            prios = [4 if i in self._wanted_files else 0 for i in range(file_layout(self._info).num_files())]
            self.handle.prioritize_files(prios)
            self.file_priority_requests += 1
            self.handle.clear_error()
            self.handle.resume()          # the error paused it (clear_error alone does not resume)
        except (OSError, RuntimeError) as exc:
            log.warning("%s: part file not recovered: %s", self.infohash, exc)
            return False
        self.error = None
        self.part_file_recovered_at = time.monotonic()
        self.connect_peers(self.peer_hints)   # pausing dropped every peer
        return True

    def on_file_priorities(self) -> None:
        """libtorrent applied new file priorities (asynchronously: it may
        move data out of the part file first). If the torrent was finished,
        peers may have gone: offer the known ones again and ask trackers.

        Applying them set every piece of the files to the file's priority,
        including the missing pieces readers hold deadlines on, which
        ``set_piece_deadline`` had put at the top (7) a moment before (a
        reader opens, wants its file, reads at once): at 4 they waited
        behind the pieces already requested, 2 s for a first range in one
        run of 90 of test_server's random ranges. Put them back at 7."""
        self.file_priority_updates += 1
        h = self.handle
        for piece in self._deadlines:
            if not self.have[piece]:
                try:
                    h.piece_priority(piece, 7)
                except RuntimeError:
                    return
        self.connect_peers(self.peer_hints)
        try:
            self.handle.force_reannounce()
        except RuntimeError:
            pass

    def set_deadlines(self, owner: object, deadlines: Iterable[tuple[int, int]],
                      urgent: Iterable[tuple[int, int]] = ()) -> None:
        """Claim pieces for ``owner``: ``deadlines`` (piece, ms from now) are
        set once, when a piece is first claimed; ``urgent`` ones are set
        again even if already claimed (the pieces right under a read head,
        whose deadline must move up as the head nears them). Callers pass
        them far to near: libtorrent requests the deadline set last first.
        """
        h = self.handle
        if self._anchors and self._pipeline_drain_s() > KEEP_PIPELINE_S:
            # a seek on a slow pipeline: let libtorrent cancel (KEEP_PIPELINE_S)
            self._close_bridge()
            self.pipeline_cancels += 1
        cold = not self._anchors and not self._claims_pending()
        new = 0
        for piece, ms in deadlines:
            owners = self._deadlines.get(piece)
            if owners is None:
                self._deadlines[piece] = {owner}
                if not self.have[piece]:
                    new += 1
                    try:
                        h.set_piece_deadline(piece, max(0, int(ms)))
                    except RuntimeError:
                        return
            else:
                owners.add(owner)
        for piece, ms in urgent:
            owners = self._deadlines.setdefault(piece, set())
            if not self.have[piece]:
                new += not owners
                try:
                    h.set_piece_deadline(piece, max(0, int(ms)))
                except RuntimeError:
                    return
            owners.add(owner)
        if new and (QUICKACK_TRIGGER == "any" or (QUICKACK_TRIGGER == "cold" and cold)):
            self.quickack.demand(self._busiest_peers())
        if self._anchors and self._claims_pending():
            self._close_bridge()    # the reader's pieces hold libtorrent's list now

    def _busiest_peers(self) -> list[tuple[str, int]]:
        """Peers' endpoints, those with most requests queued first."""
        try:
            peers = self.handle.get_peer_info()
        except RuntimeError:
            return []
        peers = sorted(peers, key=lambda p: (p.download_queue_length, p.down_speed), reverse=True)
        return [(p.ip[0], p.ip[1]) for p in peers]

    # ------------------------------------------------------------ the bridge
    def _claims_pending(self) -> bool:
        """Some reader claims a missing piece: libtorrent's time-critical list
        is not empty (it drops a piece from it when the piece passes)."""
        have = self.have
        return any(not have[p] for p in self._deadlines)

    def _open_bridge(self) -> None:
        """Set the bridge's pieces (``BRIDGE_PIECES``), while something else
        still holds the time-critical list, and its grace timer."""
        if not PIPELINE_ANCHOR or self.closed or not self.checked:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        while len(self._anchors) < BRIDGE_PIECES:
            piece = self._anchor_candidate()
            if piece is None:
                break
            try:
                # later than the other: only the head of the list is requested
                self.handle.set_piece_deadline(piece, ANCHOR_DEADLINE_MS + 1000 * len(self._anchors))
            except RuntimeError:
                break
            self._anchors.append(piece)
        if self._anchors and self._bridge_timer is None:
            self.bridges += 1
            self._bridge_timer = loop.call_later(BRIDGE_GRACE_S, self._close_bridge)

    def _close_bridge(self) -> None:
        if self._bridge_timer is not None:
            self._bridge_timer.cancel()
            self._bridge_timer = None
        pieces, self._anchors = self._anchors, []
        for piece in pieces:
            if piece in self._deadlines or self.have[piece]:
                continue        # a reader claimed it since: its deadline stands
            try:
                self.handle.reset_piece_deadline(piece)
                # set_piece_deadline raised it to the top; back to the files' normal
                self.handle.piece_priority(piece, 4)
            except RuntimeError:
                return

    def _anchor_candidate(self) -> int | None:
        best = None
        for f in self.files:
            if f.index not in self._wanted_files:
                continue
            pieces = self.file_pieces(f)
            end = pieces.stop
            while end > pieces.start:
                p = self.have.rfind(0, pieces.start, end)
                if p < 0:
                    break
                if p not in self._deadlines and p not in self._anchors:
                    if best is None or p > best:
                        best = p
                    break
                end = p
        return best

    def _pipeline_drain_s(self) -> float:
        """How long the blocks already requested take to arrive: every peer's
        queue over the download rate (inf with requests and no rate known).
        The rate is the larger of libtorrent's (averaged over seconds, so it
        lags a young torrent: at 32 MB/s it was near zero 20 ms after the
        first byte) and the pieces finished in the last ``RATE_WINDOW_S`` (or
        since the check, for a younger torrent) over that time. Session 4
        divided by the time since the oldest of those pieces instead, which a
        piece just finished made a burst: it kept the pipeline of a 0.6 MB/s
        peer with 3 MB queued (session 5 trace)."""
        try:
            peers = self.handle.get_peer_info()
        except RuntimeError:
            return 0.0
        queued = sum(p.download_queue_length for p in peers) * BLOCK_SIZE
        if not queued:
            return 0.0
        rate = float(sum(p.down_speed for p in peers))
        now = time.monotonic()
        span = min(RATE_WINDOW_S, now - self._checked_at)
        if span > 0:
            recent = sum(1 for t in self._recent_finishes if now - t <= span)
            rate = max(rate, recent * self.piece_length / span)
        return queued / rate if rate > 0 else float("inf")

    def release_deadlines(self, owner: object, keep: set[int] | None = None) -> None:
        """Drop ``owner``'s claim on every piece not in ``keep``; pieces no
        one claims any more lose their deadline. When that leaves no missing
        piece claimed, the seek bridge goes up first (``PIPELINE_ANCHOR``)."""
        h = self.handle
        freed = []
        for piece in [p for p, o in self._deadlines.items() if owner in o]:
            if keep is not None and piece in keep:
                continue
            owners = self._deadlines[piece]
            owners.discard(owner)
            if owners:
                continue
            del self._deadlines[piece]
            if not self.have[piece]:
                freed.append(piece)
        if not freed:
            return
        if not self._claims_pending():
            self._open_bridge()     # while the freed pieces still hold the list
        for piece in freed:
            if piece in self._anchors:
                continue
            try:
                h.reset_piece_deadline(piece)
            except RuntimeError:
                return

    def pieces_claimed_by(self, owner: object) -> set[int]:
        return {p for p, owners in self._deadlines.items() if owner in owners}

    def deadline_pieces(self) -> set[int]:
        """Pieces some reader claims."""
        return set(self._deadlines)

    # ------------------------------------------------------------------ misc
    def connect_peers(self, peers: Iterable[tuple[str, int]]) -> None:
        for host, port in peers:
            if (host, port) not in self.peer_hints:
                self.peer_hints.append((host, port))
            try:
                self.handle.connect_peer((host, int(port)))
            except RuntimeError as exc:
                log.debug("connect_peer %s:%s: %s", host, port, exc)

    def on_status(self, st: Any) -> None:
        self.status = {
            "state": str(st.state).rsplit(".", 1)[-1],
            "progress": round(float(st.progress), 6),
            "download_rate": int(st.download_payload_rate),
            "upload_rate": int(st.upload_payload_rate),
            "num_peers": int(st.num_peers),
            "num_seeds": int(st.num_seeds),
            "total_done": int(st.total_done),
            "total_wanted": int(st.total_wanted),
            "all_time_download": int(st.all_time_download),
            "all_time_upload": int(st.all_time_upload),
            "paused": bool(st.paused),
        }
        if st.errc and st.errc.value() != 0:
            self.error = st.errc.message()

    def peers(self) -> list[dict[str, Any]]:
        try:
            infos = self.handle.get_peer_info()
        except RuntimeError:
            return []
        out = []
        for p in infos:
            out.append({
                "address": f"{p.ip[0]}:{p.ip[1]}",
                "client": p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else str(p.client),
                "download_rate": int(p.payload_down_speed),
                "upload_rate": int(p.payload_up_speed),
                "progress": round(float(p.progress), 4),
                "seed": bool(p.flags & lt.peer_info.seed),
            })
        return out

    def downloading_pieces(self) -> set[int]:
        """Pieces with blocks requested from peers right now."""
        try:
            queue = self.handle.get_download_queue()
        except RuntimeError:
            return set()
        out = set()
        for entry in queue:
            piece = entry["piece_index"] if isinstance(entry, dict) else entry.piece_index
            out.add(int(piece))
        return out

    def piece_map(self, f: FileEntry) -> dict[str, Any]:
        """One character per piece of ``f``: ``h`` have, ``d`` has a reader's
        deadline, ``r`` requested from a peer, ``.`` missing."""
        pieces = self.file_pieces(f)
        downloading = self.downloading_pieces()
        claimed = self._deadlines
        chars = []
        for p in pieces:
            if self.have[p]:
                chars.append("h")
            elif p in claimed:
                chars.append("d")
            elif p in downloading:
                chars.append("r")
            else:
                chars.append(".")
        return {
            "file_index": f.index,
            "file_offset": f.offset,      # where the file starts in the torrent
            "file_size": f.size,
            "first_piece": pieces.start if len(pieces) else 0,
            "piece_length": self.piece_length,
            "pieces": "".join(chars),
            "have": chars.count("h"),
            "count": len(chars),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "infohash": self.infohash,
            "name": self.name,
            "has_metadata": self.has_metadata,
            "num_pieces": self.num_pieces,
            "pieces_have": sum(self.have) if self.have else 0,
            "readers": len(self.readers),
            "error": self.error,
            # which road piece data took (module docstring): libtorrent's read_piece, or pread
            # checked against the piece's SHA-1 (misses fell back to read_piece)
            "piece_reads": {"read_piece": self.read_piece_requests, "verified_pread": self.verified_reads,
                            "verified_misses": self.verified_misses, "fences": self.fences},
            # the seek bridge (PIPELINE_ANCHOR in tstream_kit/engine/torrent.py): its pieces now,
            # how often it went up, and seeks that let libtorrent cancel instead
            "pipeline": {"bridge_pieces": list(self._anchors), "bridges": self.bridges,
                         "cancels": self.pipeline_cancels,
                         # forced ACKs after a new demand (QUICKACK_TRIGGER): bursts, setsockopt calls
                         "quickack_bursts": self.quickack.bursts, "quickacks": self.quickack.acks,
                         "nodelay_sockets": self.quickack.nodelay_set},
            **self.status,
        }

    def close(self, exc: BaseException) -> None:
        """Fail every waiter: the torrent is going away."""
        self.closed = True
        self.quickack.close()
        if self._bridge_timer is not None:
            self._bridge_timer.cancel()
            self._bridge_timer = None
        self._metadata.set()
        self._checked.set()
        for table in (self._have_waiters, self._data_waiters):
            for waiters in table.values():
                for fut in waiters:
                    if not fut.done():
                        fut.set_exception(PieceError(str(exc)))
            table.clear()
        for reader in list(self.readers):
            reader.close(reason=str(exc))
        self._cache.clear()
        self._cache_bytes = 0


def _pread_verified(path: Path, offset: int, size: int, sha1: bytes) -> bytes | None:
    """``size`` bytes at ``offset`` of ``path`` if their SHA-1 is ``sha1`` (worker thread)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.pread(fd, size, offset)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) != size or hashlib.sha1(data).digest() != sha1:
        return None
    return data
