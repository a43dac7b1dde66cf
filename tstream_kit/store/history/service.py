"""HistoryService: the store, the outbox and the playback recorder on the loop.

Writes: every watch write goes to the :class:`~tstream_kit.store.outbox.Outbox`
first, then is delivered at once when the store answers, else by a
background task with back-off when it is back. Reads go to the store (in a
worker thread); resume falls back to the writes still queued.

One watch per playback: a browser fetches a video with many Range requests
(and players add more on every seek). :meth:`HistoryService.playback` keeps
the recent (session, infohash, file) triples in memory and starts a new
watch only when the triple was not seen for ``WATCH_GAP_S``; a cookieless
player (VLC, mpv) gets a fresh session per request, so it is also keyed by
its address and User-Agent for that file.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Hashable

from ...sessions import SessionSigner, load_secret
from ..outbox import Outbox
from . import open_store, store_kind
from .base import (Cursor, HistoryStore, Popular, StoreUnavailable, Watch, new_watch_id,
                   utcnow)

log = logging.getLogger("tstream.history")

__all__ = ["HistoryService", "WATCH_GAP_S", "OUTBOX_FILE"]

#: requests for the same file by the same session closer than this belong to one playback
WATCH_GAP_S = 30 * 60
OUTBOX_FILE = "history-outbox.sqlite3"
#: after a failed delivery, writes only queue (no inline attempt) for this long
DOWN_HOLD_S = 2.0
FLUSH_INTERVAL_S = 1.0
MAX_BACKOFF_S = 30.0
RECENT_MAX = 20_000


class _DownHold(StoreUnavailable):
    """An inline delivery skipped: the attempt it waited behind just failed."""


@dataclass
class _Recent:
    watch: Watch
    seen: float


class HistoryService:
    def __init__(self, database_url: str, data_dir: Path, secret: str = "",
                 watch_gap_s: float = WATCH_GAP_S) -> None:
        self.database_url = database_url
        self._stopping = False
        self.data_dir = Path(data_dir)
        self.kind = store_kind(database_url)
        self._secret = secret
        self.watch_gap_s = watch_gap_s
        self.store: HistoryStore | None = None
        self.outbox: Outbox | None = None
        self.signer: SessionSigner | None = None
        self.migrated = False
        self.last_error: str | None = None
        self.delivered = 0
        self._recent: OrderedDict[Hashable, _Recent] = OrderedDict()
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pending_tasks: set[asyncio.Task] = set()
        self._down_until = 0.0

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.signer = SessionSigner(load_secret(self.data_dir, self._secret))
        self.outbox = await asyncio.to_thread(Outbox, self.data_dir / OUTBOX_FILE)
        self.store = await asyncio.to_thread(open_store, self.database_url, self.data_dir)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        try:
            await self._migrate()
        except StoreUnavailable as exc:
            # the server still starts: watches queue in the outbox, and the
            # migrations run when the database answers
            self._mark_down(exc)
            log.warning("history database unavailable at start-up (%s); watches will queue in %s",
                        exc, self.outbox.path)
        self._stopping = False
        self._task = asyncio.create_task(self._flusher(), name="history-outbox")
        self._wake.set()

    async def stop(self) -> None:
        for t in list(self._pending_tasks):
            try:
                await asyncio.wait_for(t, 5)
            except (asyncio.TimeoutError, Exception):   # noqa: BLE001 - best effort at shutdown
                pass
        if self._task is not None:
            # Ask the flusher to end rather than cancel it: on Python 3.11 a
            # cancel that lands while asyncio.wait_for's inner wait completes
            # is swallowed, and awaiting the task then hangs for ever.
            self._stopping = True
            if self._wake is not None:
                self._wake.set()
            done, _ = await asyncio.wait({self._task}, timeout=5)
            if not done:
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=2)
            self._task = None
        if self.store is not None and self.outbox is not None and time.monotonic() >= self._down_until:
            try:
                await self.flush()
            except Exception as exc:   # noqa: BLE001 - what is left stays in the outbox
                log.info("history: %s writes stay in the outbox (%s)", self.outbox.count(), exc)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None

    async def _migrate(self) -> None:
        assert self.store is not None
        applied = await asyncio.to_thread(self.store.migrate)
        self.migrated = True
        if applied:
            log.info("history (%s): schema migrations %s applied", self.kind, applied)

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        self._down_until = time.monotonic() + DOWN_HOLD_S

    # ----------------------------------------------------------------- writes
    async def flush(self, *, unless_down: bool = False) -> int:
        """Deliver every queued write now; StoreUnavailable if the store is down.

        ``unless_down`` (an inline attempt of :meth:`record`): if the attempt
        this call waited behind failed, give up at once instead of trying
        again, so N writers queued on the lock during an outage cost one
        connect timeout, not N of them."""
        assert self._lock is not None and self.outbox is not None and self.store is not None
        async with self._lock:
            if unless_down and time.monotonic() < self._down_until:
                raise _DownHold(self.last_error or "history database unavailable")
            if not self.migrated:
                await self._migrate()
            n = await asyncio.to_thread(self.outbox.deliver, self.store.upsert)
        self.delivered += n
        self.last_error = None
        self._down_until = 0.0
        return n

    async def _flusher(self) -> None:
        assert self._wake is not None and self.outbox is not None
        backoff = FLUSH_INTERVAL_S
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except asyncio.TimeoutError:
                pass
            if self._stopping:
                return
            self._wake.clear()
            if await asyncio.to_thread(self.outbox.count) == 0:
                backoff = FLUSH_INTERVAL_S
                continue
            try:
                n = await self.flush()
                if n:
                    log.info("history: delivered %d queued writes", n)
                backoff = FLUSH_INTERVAL_S
            except StoreUnavailable as exc:
                self._mark_down(exc)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                log.warning("history: database unavailable (%s); %d writes queued, retry in %.0fs",
                            exc, await asyncio.to_thread(self.outbox.count), backoff)
            except Exception:   # a bug must not kill the flusher; the writes stay queued
                log.exception("history: delivering the outbox failed")
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    async def record(self, watch: Watch) -> bool:
        """Queue a watch write durably, then try to deliver it. True when it
        reached the store, False when it waits in the outbox."""
        assert self.outbox is not None and self._wake is not None
        await asyncio.to_thread(self.outbox.append, watch)
        self._remember(watch)
        if time.monotonic() < self._down_until:
            self._wake.set()
            return False
        try:
            await self.flush(unless_down=True)
            return True
        except _DownHold:
            self._wake.set()
            return False
        except StoreUnavailable as exc:
            self._mark_down(exc)
            self._wake.set()
            return False

    # --------------------------------------------------------------- recorder
    def _remember(self, watch: Watch, *extra_keys: Hashable) -> None:
        now = time.monotonic()
        for key in ((watch.session_id, watch.infohash, watch.file_index), ("id", watch.id), *extra_keys):
            self._recent[key] = _Recent(watch, now)
            self._recent.move_to_end(key)
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)

    def _recent_watch(self, *keys: Hashable) -> Watch | None:
        now = time.monotonic()
        for key in keys:
            entry = self._recent.get(key)
            if entry is not None and now - entry.seen < self.watch_gap_s:
                return entry.watch
        return None

    def playback(self, session_id: str, infohash: str, file_index: int | None, *,
                 magnet: str, title: str = "", file_path: str | None = None,
                 duration_s: float | None = None, client_key: Hashable | None = None) -> Watch | None:
        """Called for every GET of a stream: returns the new Watch when this
        request starts a playback (and records it in the background), None
        when it belongs to one already recorded."""
        keys: list[Hashable] = [(session_id, infohash, file_index)]
        if client_key is not None:
            keys.append(("client", client_key, infohash, file_index))
        known = self._recent_watch(*keys)
        if known is not None:
            self._remember(known, *keys[1:])   # refresh: the playback goes on
            if known.session_id != session_id:
                # the cookieless player's later requests: map its new ids too
                self._recent[keys[0]] = _Recent(known, time.monotonic())
            return None
        now = utcnow()
        watch = Watch(id=new_watch_id(), session_id=session_id, infohash=infohash, magnet=magnet,
                      title=title, file_index=file_index, file_path=file_path, position_s=0.0,
                      duration_s=duration_s, watched_at=now, updated_at=now)
        self._remember(watch, *keys[1:])
        task = asyncio.get_running_loop().create_task(self._record_quietly(watch))
        self._pending_tasks.add(task)
        task.add_done_callback(self._pending_tasks.discard)
        return watch

    async def _record_quietly(self, watch: Watch) -> None:
        try:
            await self.record(watch)
        except Exception:   # noqa: BLE001 - a stream must never fail for its history
            log.exception("history: could not queue watch %s", watch.id)

    async def position(self, session_id: str, *, infohash: str, magnet: str, file_index: int | None,
                       position_s: float, duration_s: float | None = None, title: str = "",
                       file_path: str | None = None, watch_id: str | None = None) -> tuple[Watch, bool]:
        """Record a watch or move its playback position (``POST /api/history``).

        With ``watch_id``: that watch of this session (created with that id if
        unknown: a client may make its own ids and retry safely). Without: the
        playback of this file going on in this session (within the watch gap),
        else a new watch. Returns the watch and whether it reached the store."""
        now = utcnow()
        base: Watch | None = None
        if watch_id is not None:
            base = self._recent_watch(("id", watch_id))
            if base is None:
                base = await self._lookup(watch_id, session_id)
            if base is not None and (base.session_id != session_id or base.infohash != infohash):
                raise LookupError(f"no watch {watch_id} of this torrent in this session")
        else:
            base = self._recent_watch((session_id, infohash, file_index))
            if base is None:
                try:
                    assert self.store is not None
                    last = await asyncio.to_thread(self.store.resume, session_id, infohash, file_index)
                except StoreUnavailable:
                    last = None
                if last is not None and now - last.updated_at < timedelta(seconds=self.watch_gap_s):
                    base = last
        if base is None:
            watch = Watch(id=watch_id or new_watch_id(), session_id=session_id, infohash=infohash,
                          magnet=magnet, title=title, file_index=file_index, file_path=file_path,
                          position_s=position_s, duration_s=duration_s, watched_at=now, updated_at=now)
        else:
            watch = base.with_position(position_s, duration_s, at=max(now, base.updated_at))
            if title and not base.title:
                from dataclasses import replace
                watch = replace(watch, title=title)
        delivered = await self.record(watch)
        return watch, delivered

    async def _lookup(self, watch_id: str, session_id: str) -> Watch | None:
        assert self.store is not None and self.outbox is not None
        try:
            found = await asyncio.to_thread(self.store.get, watch_id)
        except StoreUnavailable:
            found = None
        if found is None:
            queued = [w for w in await asyncio.to_thread(self.outbox.pending, session_id) if w.id == watch_id]
            found = queued[-1] if queued else None
        return found

    # ------------------------------------------------------------------ reads
    async def history(self, session_id: str, limit: int = 50, before: Cursor | None = None) -> list[Watch]:
        assert self.store is not None
        await self._ensure_migrated()
        return await asyncio.to_thread(self.store.history, session_id, limit, before)

    async def resume(self, session_id: str, infohash: str, file_index: int | None) -> Watch | None:
        assert self.store is not None and self.outbox is not None
        queued = [w for w in await asyncio.to_thread(self.outbox.pending, session_id)
                  if w.infohash == infohash and w.file_index == file_index]
        try:
            await self._ensure_migrated()
            stored = await asyncio.to_thread(self.store.resume, session_id, infohash, file_index)
        except StoreUnavailable:
            if not queued:
                raise
            stored = None
        candidates = [w for w in [stored, *queued] if w is not None]
        return max(candidates, key=lambda w: w.updated_at) if candidates else None

    async def popular(self, days: int = 30, limit: int = 20, now: datetime | None = None) -> list[Popular]:
        assert self.store is not None
        await self._ensure_migrated()
        return await asyncio.to_thread(self.store.popular, days, limit, now)

    async def _ensure_migrated(self) -> None:
        if not self.migrated:
            assert self._lock is not None
            async with self._lock:
                if not self.migrated:
                    await self._migrate()

    def status(self) -> dict[str, Any]:
        return {
            "store": self.kind,
            "migrated": self.migrated,
            "queued": self.outbox.count() if self.outbox is not None else None,
            "delivered": self.delivered,
            "last_error": self.last_error,
        }
