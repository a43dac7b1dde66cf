"""Engine: one libtorrent session per process, bridged onto the asyncio loop.

How alerts reach Python
-----------------------
libtorrent writes a byte to a file descriptor we give it (``set_alert_fd``)
whenever its alert queue goes from empty to non-empty. That descriptor is one
end of a non-blocking socketpair; the other end is registered with
``loop.add_reader``. When it becomes readable we drain it, pop *all* alerts and
dispatch each by type. No thread of ours waits on libtorrent and nothing sleeps
in a polling loop: a Python callback given to ``set_alert_notify`` would run on
libtorrent's thread and can deadlock on the GIL.

An alert object is only valid until the next ``pop_alerts()``, so every
handler copies the fields it needs (ints, bytes, strings) before returning.

State is keyed by infohash (40 hex characters), never by a
``torrent_handle``: a handle raises once its torrent is removed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import DISK_IO_CHOICES
from ..magnets import MagnetError, Magnet, parse_magnet
from .lt import LT_VERSION, lt, torrent_info_from_bytes
from .resume import ResumeFiles
from .torrent import Torrent, infohash_key

log = logging.getLogger("tstream.engine")

__all__ = ["Engine", "EngineConfig", "EngineError", "disk_io_constructor", "resolve_disk_io",
           "streaming_settings"]


class EngineError(RuntimeError):
    """A libtorrent operation failed (bad torrent, storage error, ...)."""


class TorrentLimitReached(EngineError):
    """``EngineConfig.max_torrents`` torrents are in the engine already (HTTP 503)."""


class TorrentBusy(EngineError):
    """The torrent is being removed right now; adding it again must wait (HTTP 503)."""


#: seconds ``remove()`` waits for a torrent's disk jobs before removing it anyway
REMOVE_FENCE_TIMEOUT = 5.0


@dataclass
class EngineConfig:
    data_dir: Path
    #: where libtorrent listens for peers; tests use 127.0.0.1:0
    listen_interfaces: str = "0.0.0.0:6881,[::]:6881"
    #: DHT, local peer discovery, UPnP and NAT-PMP: on for real use,
    #: off for loopback swarms (and anywhere without internet)
    dht: bool = True
    lsd: bool = True
    port_mapping: bool = True
    #: uTP is what most home peers speak, but between two libtorrent
    #: sessions on loopback it moves ~20 MB/s against ~700 MB/s for TCP
    utp: bool = True
    #: seconds between status snapshots (``post_torrent_updates``)
    status_interval: float = 1.0
    #: keep resume data in ``<data_dir>/resume`` (saved at stop, re-added at start)
    resume: bool = True
    #: seconds ``stop()`` waits for the resume data of every torrent
    shutdown_timeout: float = 10.0
    #: most torrents at once; adding one more raises TorrentLimitReached (0 = no limit)
    max_torrents: int = 0
    #: libtorrent's disk back-end (``config.DISK_IO_CHOICES``); see ``disk_io_constructor``
    disk_io: str = "auto"
    extra_settings: dict[str, Any] = field(default_factory=dict)


def resolve_disk_io(name: str) -> str:
    """The back-end ``name`` stands for here: ``auto`` is libtorrent's default,
    ``pread`` from 2.1 on and ``mmap`` before. ``ValueError`` for a name
    libtorrent here does not have (``pread`` needs 2.1)."""
    if name not in DISK_IO_CHOICES:
        raise ValueError(f"disk_io must be one of {', '.join(DISK_IO_CHOICES)}, not {name!r}")
    if name == "auto":
        return "pread" if LT_VERSION >= (2, 1) else "mmap"
    if name == "pread" and LT_VERSION < (2, 1):
        raise ValueError(f"disk_io 'pread' needs libtorrent 2.1 or later (found {lt.__version__})")
    return name


def disk_io_constructor(name: str) -> str:
    """The ``session_params.disk_io_constructor`` value for a back-end name.
    The binding maps a string it does not know to libtorrent's default without a
    word, and the attribute reads back "default_disk_io_constructor" whatever was
    set (it is write-only), so names are checked here (``resolve_disk_io``)."""
    return f"{resolve_disk_io(name)}_disk_io_constructor"


def streaming_settings(cfg: EngineConfig) -> dict[str, Any]:
    """Session settings tuned for streaming; each says why it differs from
    libtorrent's default."""
    cat = lt.alert_category
    return {
        "user_agent": "tstream/0.1 libtorrent/" + lt.__version__,
        "listen_interfaces": cfg.listen_interfaces,
        # status: metadata, state changes, torrent_checked, state_update;
        # storage: read_piece, cache_flushed, file errors; piece_progress:
        # piece_finished (how readers learn a piece arrived); error: errors.
        "alert_mask": int(cat.status | cat.storage | cat.error | cat.piece_progress
                          | cat.performance_warning),
        # read_piece_alert carries a whole piece; many readers at high
        # throughput can queue thousands of alerts between two loop turns.
        "alert_queue_size": 20000,
        "enable_dht": cfg.dht,
        "enable_lsd": cfg.lsd,
        "enable_upnp": cfg.port_mapping,
        "enable_natpmp": cfg.port_mapping,
        "enable_outgoing_utp": cfg.utp,
        "enable_incoming_utp": cfg.utp,
        # 500 ms ticks delay the first request and the reaction to a
        # deadline that is about to be missed; 100 ms keeps first byte low.
        "tick_interval": 100,
        # connect to the peers of a new torrent at once, not 30 a second
        # with smoothing: time to first byte is dominated by connecting.
        "connection_speed": 200,
        "smooth_connects": False,
        "torrent_connect_boost": 50,
        # a dead peer should not hold a deadline piece for 15 s
        "peer_connect_timeout": 5,
        # time-critical pieces may be requested from several peers at
        # once; strict end-game would forbid it.
        "strict_end_game_mode": False,
        # A torrent whose wanted files are all here is "finished"; by default
        # libtorrent then drops its connections to seeds as redundant, and
        # does not reconnect when another file of it is streamed next (seen:
        # the second episode of a pack never started). Keep them.
        "close_redundant_connections": False,
        # loopback swarms and peers behind one NAT share an address
        "allow_multiple_connections_per_ip": True,
        # retry a peer that dropped after a few seconds, not a minute:
        # for a stream, the only seeder may come back.
        "min_reconnect_time": 2,
        # a streamer is interactive: every added torrent is started now
        # instead of being queued behind other active torrents.
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": 500,
        "dont_count_slow_torrents": True,
        # Requests already sent to a peer are served before a seek's pieces,
        # so the pipeline per peer is kept short: 1 s of data, at most 64
        # blocks (1 MiB). Seek of 1 MiB to an unseen offset on a 32 MB/s
        # peer: median 61 ms with 128 blocks, 17 ms with 64; cold throughput
        # on loopback unchanged (bench/stream_bench.py, 7 runs). The cost:
        # at most ~10 MB/s from one peer 100 ms away (many peers add up).
        "request_queue_time": 1,
        "max_out_request_queue": 64,
        # hash pieces on two threads: the hash check is on the path from
        # "bytes arrived" to "bytes served".
        "hashing_threads": 2,
        # for the mmap back-end only (disk_io="mmap"): write through pwrite,
        # not into the shared mapping, whose dirty pages would count in our
        # RSS and grow with the file. pread and posix always pwrite.
        "disk_write_mode": int(lt.mmap_write_mode_t.always_pwrite),
        # received blocks wait here for the disk; libtorrent's default (100
        # MiB) lets a fast download grow our memory with the file. 16 MiB
        # still keeps a loopback download at disk speed.
        "max_queued_disk_bytes": 16 * 1024 * 1024,
        # shutting down must not wait long for trackers that are gone
        "stop_tracker_timeout": 1,
        # larger socket buffers for fast links
        "send_buffer_watermark": 4 * 1024 * 1024,
        "send_buffer_watermark_factor": 150,
        **cfg.extra_settings,
    }


def limit_malloc_retention() -> bool:
    """Have glibc serve every allocation of 128 KiB or more (piece buffers:
    libtorrent's and ours) with mmap, returned to the system when freed.

    By default glibc raises that threshold after the first large free, and
    256 KiB piece buffers then come from per-thread arenas that keep what
    they once held: server RSS grew with the file (110 MiB after a cold read
    of 144 MB, 139 MiB for 1.2 GB). With the threshold fixed: 65 and 80 MiB,
    throughput unchanged (bench/stream_bench.py). No-op off glibc.
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_MMAP_THRESHOLD = -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024))


_LIBC: Any = None


def release_free_memory() -> float:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``);
    returns the seconds it took (0 off glibc).

    Freed small and medium allocations stay in glibc's per-thread arenas,
    and libtorrent runs a dozen threads: after a cold read of a 1.2 GB file
    the server kept 83-88 MiB against 67-70 MiB for 144 MB. Trimming once a
    second (the status tick): 62-63 MiB after either, flat with file size,
    throughput unchanged (bench/stream_bench.py --only throughput, 2 x 2
    runs each way, same session). It runs on a worker thread: it takes
    each arena's lock in turn, briefly.
    """
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return 0.0
    began = time.perf_counter()
    _LIBC.malloc_trim(0)
    return time.perf_counter() - began


class Engine:
    """Owns the libtorrent session and every :class:`Torrent` in it."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.download_dir = Path(config.data_dir) / "downloads"
        self._ses: Any = None
        self._torrents: dict[str, Torrent] = {}
        self._rsock: socket.socket | None = None
        self._wsock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._status_task: asyncio.Task | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {
            "add_torrent_alert": self._on_add_torrent,
            "metadata_received_alert": self._on_metadata,
            "metadata_failed_alert": self._on_metadata_failed,
            "torrent_checked_alert": self._on_checked,
            "piece_finished_alert": self._on_piece_finished,
            "read_piece_alert": self._on_read_piece,
            "hash_failed_alert": self._on_hash_failed,
            "torrent_finished_alert": self._on_finished,
            "file_prio_alert": self._on_file_priorities,
            "cache_flushed_alert": self._on_cache_flushed,
            "state_update_alert": self._on_state_update,
            "torrent_removed_alert": self._on_removed,
            "torrent_error_alert": self._on_torrent_error,
            "file_error_alert": self._on_torrent_error,
            "alerts_dropped_alert": self._on_alerts_dropped,
            "performance_alert": self._on_performance,
            # resume data (deployment): see save_all_resume_data
            "save_resume_data_alert": self._on_save_resume_data,
            "save_resume_data_failed_alert": self._on_save_resume_failed,
            "session_stats_alert": self._on_session_stats,
        }
        self._stats_waiters: list[asyncio.Future] = []
        #: the disk back-end libtorrent runs (``config.disk_io`` resolved at start)
        self.disk_io = config.disk_io
        self.started_at = time.time()
        self.alerts_seen = 0
        self.trim_seconds = 0.0      # how long the last malloc_trim took
        self._trim_task: asyncio.Future | None = None
        self.trims_after_streams = 0
        self.resume = ResumeFiles(Path(config.data_dir) / "resume")
        self._resume_waiters: dict[str, list[asyncio.Future]] = {}
        #: torrents between remove() and remove_torrent: [future of their flush_cache fence,
        #: cache_flushed alerts still to come before it]
        self._removing: dict[str, list[Any]] = {}

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        if self._ses is not None:
            return
        limit_malloc_retention()
        self._loop = asyncio.get_running_loop()
        self.download_dir.mkdir(parents=True, exist_ok=True)
        params = lt.session_params()
        params.settings = streaming_settings(self.config)
        try:
            self.disk_io = resolve_disk_io(self.config.disk_io)
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        params.disk_io_constructor = disk_io_constructor(self.disk_io)
        self._ses = lt.session(params)
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._wsock.setblocking(False)
        self._ses.set_alert_fd(self._wsock.fileno())
        self._loop.add_reader(self._rsock.fileno(), self._drain_alerts)
        self._status_task = asyncio.ensure_future(self._status_ticker())
        # alerts posted before the fd was set would never wake us
        self._drain_alerts()
        if self.config.resume:
            self.load_resume_data()

    async def stop(self) -> None:
        if self._ses is None:
            return
        if self._status_task:
            self._status_task.cancel()
        if self.config.resume and self._torrents:
            # graceful shutdown: stop transfers, then write every torrent's
            # resume data so the next start resumes instead of downloading
            self._ses.pause()
            saved = await self.save_all_resume_data(self.config.shutdown_timeout)
            log.info("saved resume data of %d/%d torrents", saved, len(self._torrents))
        for t in list(self._torrents.values()):
            t.close(EngineError("engine stopped"))
        if self._loop and self._rsock:
            self._loop.remove_reader(self._rsock.fileno())
        holder = [self._ses]
        self._ses = None
        # pause first so no alert is written to the fd after it is closed;
        # dropping the last reference joins libtorrent's threads, which can
        # take a moment, so it happens off the loop.
        holder[0].pause()
        await asyncio.get_running_loop().run_in_executor(None, holder.clear)
        for s in (self._rsock, self._wsock):
            if s:
                s.close()
        self._torrents.clear()

    @property
    def session(self) -> Any:
        if self._ses is None:
            raise EngineError("engine is not started")
        return self._ses

    @property
    def listen_port(self) -> int:
        return int(self.session.listen_port())

    # -------------------------------------------------------------- torrents
    def get(self, infohash: str) -> Torrent | None:
        return self._torrents.get(infohash.lower())

    def torrents(self) -> list[Torrent]:
        return list(self._torrents.values())

    def add_magnet(self, uri: str | Magnet, *, info: bytes | None = None) -> Torrent:
        """Add (or find) the torrent of a magnet link; returns at once.

        ``info`` is the torrent's bencoded info dictionary when it is known
        already (a metadata cache): the torrent then has its metadata at
        once instead of waiting for a peer to send it. An ``info`` whose
        hash is not the magnet's is ignored.

        Raises :class:`~tstream_kit.magnets.MagnetError` for a bad link.
        """
        magnet = uri if isinstance(uri, Magnet) else parse_magnet(uri)
        existing = self._torrents.get(magnet.infohash)
        if existing is not None:
            existing.connect_peers(magnet.peers)
            return existing
        try:
            params = lt.parse_magnet_uri(magnet.to_uri())
        except Exception as exc:
            raise MagnetError(f"libtorrent rejected the magnet link: {exc}") from exc
        if info:
            try:
                ti = torrent_info_from_bytes(b"d4:info" + bytes(info) + b"e")
                if infohash_key(ti.info_hashes()) == magnet.infohash:
                    params.ti = ti
                else:
                    log.warning("cached metadata for %s has another infohash; ignored", magnet.infohash)
            except ValueError as exc:
                log.warning("cached metadata for %s is invalid (%s); ignored", magnet.infohash, exc)
        return self._add(params, magnet.infohash, magnet.name, magnet.peers)

    def add_torrent_file(self, data: bytes) -> Torrent:
        """Add (or find) a torrent from .torrent bytes. ``ValueError`` if invalid."""
        ti = torrent_info_from_bytes(data)
        key = infohash_key(ti.info_hashes())
        existing = self._torrents.get(key)
        if existing is not None:
            return existing
        params = lt.add_torrent_params()
        params.ti = ti
        return self._add(params, key, ti.name(), ())

    def _add(self, params: Any, key: str, name: str | None,
             peers: tuple[tuple[str, int], ...]) -> Torrent:
        if key in self._removing:
            raise TorrentBusy(f"torrent {key} is being removed; try again in a moment")
        limit = self.config.max_torrents
        if limit and len(self._torrents) >= limit:   # deployment limit (issue 8)
            raise TorrentLimitReached(
                f"{len(self._torrents)} torrents are open, the most this server allows "
                "(TSTREAM_MAX_TORRENTS): remove one (DELETE /api/torrent) and try again")
        params.save_path = str(self.download_dir)
        # Sequential picking: a viewer reads in order, and on one slow peer
        # rarest-first fills the request pipeline with random pieces that
        # delay even deadline pieces by seconds (measured: 3.5 s for the
        # first piece of a read at 2 MB/s, against 0.1 s sequentially).
        params.flags |= lt.torrent_flags.sequential_download
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        try:
            handle = self.session.add_torrent(params)
        except Exception as exc:
            raise EngineError(f"libtorrent could not add the torrent: {exc}") from exc
        torrent = Torrent(self, key, handle, name)
        self._torrents[key] = torrent
        # ask now: the handle may already have metadata (a .torrent, or
        # a torrent libtorrent knew) and add_torrent_alert may have fired
        # before this object existed.
        torrent.refresh_metadata()
        torrent.connect_peers(peers)
        return torrent

    async def remove(self, infohash: str, *, delete_files: bool = False) -> bool:
        torrent = self._torrents.pop(infohash.lower(), None)
        if torrent is None:
            return False
        torrent.close(EngineError("torrent removed"))
        self.resume.delete(torrent.infohash)   # a removed torrent stays removed after a restart
        if torrent.has_metadata:
            await self._disk_fence(torrent)
        flags = lt.session.delete_files if delete_files else 0
        try:
            self.session.remove_torrent(torrent.handle, flags)
        except Exception as exc:  # already gone
            log.warning("remove_torrent %s: %s", infohash, exc)
        return True

    async def _disk_fence(self, torrent: Torrent) -> None:
        """Pause the torrent and wait until its disk jobs are done (a ``flush_cache`` fence).

        libtorrent 2.1.1 crashes (SIGSEGV in the disk cache's hasher: ``kick_hasher``,
        ``EVP_DigestUpdate``) when a torrent is removed while received blocks are still being
        hashed: the load benchmark's soak lost its server after ~500 removals of torrents being
        downloaded (bench/load_bench.py; docs/RELIABILITY.md). Paused, nothing new arrives; the
        fence completes behind every outstanding write and hash."""
        key = torrent.infohash
        fut = asyncio.get_running_loop().create_future()
        # fences the torrent issued while streaming complete first, in order: wait for ours,
        # the alert after theirs (the first alert would not cover writes issued after it)
        self._removing[key] = [fut, torrent.fences_in_flight + 1]
        try:
            torrent.handle.pause()
            torrent.handle.flush_cache()
            await asyncio.wait_for(asyncio.shield(fut), REMOVE_FENCE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("remove %s: no cache_flushed_alert in %.0f s; removing anyway", key,
                        REMOVE_FENCE_TIMEOUT)
        except RuntimeError as exc:   # invalid handle: nothing left to wait for
            log.debug("remove %s: %s", key, exc)
        finally:
            self._removing.pop(key, None)

    # ---------------------------------------------------------------- alerts
    def _drain_alerts(self) -> None:
        if self._ses is None:
            return
        try:
            while self._rsock and self._rsock.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        alerts = self._ses.pop_alerts()
        self.alerts_seen += len(alerts)
        for alert in alerts:
            handler = self._handlers.get(type(alert).__name__)
            if handler is None:
                continue
            try:
                handler(alert)
            except Exception:  # one bad alert must not stop the pump
                log.exception("handling %s", type(alert).__name__)

    def _torrent_of(self, alert: Any) -> Torrent | None:
        try:
            handle = alert.handle
            if not handle.is_valid():
                return None
            return self._torrents.get(infohash_key(handle.info_hashes()))
        except RuntimeError:
            return None

    def _on_add_torrent(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.refresh_metadata()

    def _on_metadata(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.refresh_metadata()

    def _on_metadata_failed(self, a: Any) -> None:
        log.warning("metadata failed: %s", a.message())

    def _on_checked(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.on_checked()

    def _on_piece_finished(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.on_piece_finished(int(a.piece_index))

    def _on_read_piece(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t is None:
            return
        err = a.error
        if err and err.value() != 0:
            t.on_piece_data(int(a.piece), None, err.message())
        else:
            t.on_piece_data(int(a.piece), bytes(a.buffer), None)

    def _on_hash_failed(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.hash_failures += 1

    def _on_finished(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.on_finished()

    def _on_file_priorities(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t:
            t.on_file_priorities()

    def _on_cache_flushed(self, a: Any) -> None:
        if self._removing:
            try:
                waiting = self._removing.get(infohash_key(a.handle.info_hashes()))
            except RuntimeError:
                waiting = None
            if waiting is not None:
                waiting[1] -= 1
                if waiting[1] <= 0 and not waiting[0].done():
                    waiting[0].set_result(None)
        t = self._torrent_of(a)
        if t:
            t.on_cache_flushed()

    def _on_state_update(self, a: Any) -> None:
        for st in a.status:
            key = infohash_key(st.info_hashes)
            t = self._torrents.get(key)
            if t:
                t.on_status(st)

    def _on_removed(self, a: Any) -> None:
        pass  # we drop our state when we ask for the removal

    def _on_torrent_error(self, a: Any) -> None:
        t = self._torrent_of(a)
        msg = a.message()
        log.error("torrent error: %s", msg)
        if t:
            if "file too short" in msg and time.monotonic() - t.part_file_recovered_at < 5:
                return    # the torrent_error_alert that follows the file_error_alert just handled
            t.error = msg
            if "partfile_write" in msg and "file too short" in msg and t.recover_part_file():
                log.warning("%s: part file grown, error cleared, wanted files asked for again", t.infohash)

    def _on_session_stats(self, a: Any) -> None:
        values = dict(a.values)
        waiters, self._stats_waiters = self._stats_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(values)

    def _on_alerts_dropped(self, a: Any) -> None:
        log.warning("libtorrent dropped alerts: the queue is too small for this load")

    # ------------------------------------------------------------ resume data
    # Added for deployment (issue 8): a restart resumes every torrent from its
    # files instead of downloading it again. Piece scheduling and readers are
    # untouched: a resumed torrent is added through _add like any other.
    def load_resume_data(self) -> int:
        """Re-add every torrent saved in ``<data_dir>/resume``; returns how many."""
        added = 0
        for key, buf in self.resume.items():
            if key in self._torrents:
                continue
            try:
                params = lt.read_resume_data(buf)
            except Exception as exc:  # a truncated or foreign file: keep it aside
                log.warning("resume data of %s is invalid (%s); moved to .bad", key, exc)
                path = self.resume.path(key)
                path.replace(path.with_suffix(".bad"))
                continue
            ti = params.ti
            name = params.name or (ti.name() if ti is not None and ti.is_valid() else None)
            try:
                self._add(params, key, name, ())
            except EngineError as exc:
                log.warning("could not resume %s: %s", key, exc)
                continue
            added += 1
        if added:
            log.info("resumed %d torrents from %s", added, self.resume.dir)
        return added

    async def save_all_resume_data(self, timeout: float, *, only_if_modified: bool = False) -> int:
        """Write the resume data of every torrent (of those changed since the
        last save with ``only_if_modified``); waits at most ``timeout`` seconds
        for libtorrent's alerts. Returns the number of files written."""
        if self._ses is None:
            return 0
        flags = lt.torrent_handle.save_info_dict | lt.torrent_handle.flush_disk_cache
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future] = []
        for key, t in list(self._torrents.items()):
            try:
                if only_if_modified and not t.handle.need_save_resume_data():
                    continue
                t.handle.save_resume_data(flags)
            except RuntimeError:   # handle gone
                continue
            fut = loop.create_future()
            self._resume_waiters.setdefault(key, []).append(fut)
            waiting.append(fut)
        if not waiting:
            return 0
        done, pending = await asyncio.wait(waiting, timeout=timeout)
        if pending:
            log.warning("resume data of %d torrents not saved within %g s", len(pending), timeout)
            for fut in pending:
                fut.cancel()
        for key in list(self._resume_waiters):
            self._resume_waiters[key] = [f for f in self._resume_waiters[key] if not f.done()]
            if not self._resume_waiters[key]:
                del self._resume_waiters[key]
        return sum(1 for f in done if f.result())

    def _resolve_resume(self, key: str | None, ok: bool) -> None:
        for fut in self._resume_waiters.pop(key or "", []):
            if not fut.done():
                fut.set_result(ok)

    def _on_save_resume_data(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t is None or t.closed:   # removed meanwhile: do not bring it back
            return
        try:
            self.resume.write(t.infohash, bytes(lt.write_resume_data_buf(a.params)))
            ok = True
        except OSError as exc:
            log.error("cannot write resume data of %s: %s", t.infohash, exc)
            ok = False
        self._resolve_resume(t.infohash, ok)

    def _on_save_resume_failed(self, a: Any) -> None:
        t = self._torrent_of(a)
        if t is not None:
            log.debug("no resume data for %s: %s", t.infohash, a.message())
            self._resolve_resume(t.infohash, False)

    def _on_performance(self, a: Any) -> None:
        log.info("libtorrent: %s", a.message())

    async def _status_ticker(self) -> None:
        """Ask for status snapshots (answered by ``state_update_alert``), and
        return freed heap memory to the system (``release_free_memory``)."""
        loop = asyncio.get_running_loop()
        while self._ses is not None:
            try:
                self._ses.post_torrent_updates()
            except Exception:  # pragma: no cover
                log.exception("post_torrent_updates")
            try:
                self.trim_seconds = await loop.run_in_executor(None, release_free_memory)
            except RuntimeError:   # executor shut down: the loop is closing
                return
            await asyncio.sleep(self.config.status_interval)

    def trim_soon(self) -> None:
        """Return freed heap memory now rather than at the next status tick:
        called when a reader that moved a lot of bytes closes (a whole-file
        read leaves tens of MiB of freed piece and socket buffers in glibc's
        arenas; see ``TRIM_AFTER_BYTES`` in reader.py). One trim at a time."""
        if self._ses is None or (self._trim_task is not None and not self._trim_task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.trims_after_streams += 1
        self._trim_task = loop.run_in_executor(None, release_free_memory)

    # ----------------------------------------------------------------- stats
    async def session_counters(self, timeout: float = 5.0) -> dict[str, int]:
        """libtorrent's session counters (``session_stats_metrics``: ``disk.*``,
        ``net.*``, ``peer.*``...), by name. ``TimeoutError`` if the answer does
        not come within ``timeout``."""
        if self._ses is None:
            raise EngineError("the engine is not running")
        fut = asyncio.get_running_loop().create_future()
        self._stats_waiters.append(fut)
        self._ses.post_session_stats()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            if fut in self._stats_waiters:
                self._stats_waiters.remove(fut)

    def stats(self) -> dict[str, Any]:
        torrents = self.torrents()
        return {
            "torrents": len(torrents),
            # libtorrent's own count: differs from "torrents" only if a removal never reached
            # the session (a handle leak the load benchmark's soak watches for)
            "handles": len(self._ses.get_torrents()) if self._ses is not None else 0,
            "download_rate": sum(t.status.get("download_rate", 0) for t in torrents),
            "upload_rate": sum(t.status.get("upload_rate", 0) for t in torrents),
            "peers": sum(t.status.get("num_peers", 0) for t in torrents),
            "listen_port": self.listen_port if self._ses is not None else None,
            "disk_io": self.disk_io,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

