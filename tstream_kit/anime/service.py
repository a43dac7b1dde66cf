"""AnimeService: AniList for the catalogue, the indexers for episode torrents,
the ``anime``/``episode_torrents`` tables as a cache, history for "next".

Freshness: a show's details and its torrents are kept in the tables with an
expiry: ``anime_airing_ttl`` while it airs (new episodes, new torrents),
``anime_finished_ttl`` once finished. A stale row is refreshed on the next
request; if AniList or every indexer fails then, the stale row is served
with ``"stale": true`` rather than an error. Lists (search, trending,
popular) live in the search cache (Redis or in-process) for ``anime_cache_ttl``.

Batches: a torrent holding episodes 1-12 gets a row per episode; which file
is which episode comes from the torrent's file list, read from the metadata
cache or the catalogue, or (``resolve=True``) from the swarm through the
engine, once; the file index is then stored with the row.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..search.aggregate import SearchService, merge_results
from ..search.base import Result
from ..search.query import normalise_query
from ..store.history import StoreUnavailable
from .anilist import AniListClient, AniListError
from .episodes import (aired_episodes, best_torrent, by_quality, episode_rows, map_batch_files, search_queries,
                       torrent_files)
from .releases import parse_release
from .store import AnimeStore, EpisodeTorrent, open_anime_store

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.cache import Cache
    from ..store.history.service import HistoryService

log = logging.getLogger("tstream.anime")

__all__ = ["AnimeService", "FINISHED_AT", "watch_finished"]

UTC = timezone.utc
#: a watch this far through its file counts as seen: "next" moves on
FINISHED_AT = 0.9
#: ... or with this little left (credits)
FINISHED_TAIL_S = 120.0

InfoLookup = Callable[[str], Awaitable["bytes | None"]]
InfoFetch = Callable[[str], Awaitable["bytes | None"]]


def watch_finished(position_s: float, duration_s: float | None) -> bool:
    if not duration_s or duration_s <= 0:
        return False
    return position_s >= FINISHED_AT * duration_s or duration_s - position_s <= FINISHED_TAIL_S


class AnimeService:
    def __init__(self, settings: "Settings", cache: "Cache", search: SearchService, *,
                 history: "HistoryService | None" = None, info_lookup: InfoLookup | None = None,
                 info_fetch: InfoFetch | None = None, anilist: AniListClient | None = None) -> None:
        self.settings = settings
        self.anilist = anilist or AniListClient(settings.anilist_url, cache=cache, ttl=settings.anime_cache_ttl,
                                                timeout=settings.anilist_timeout)
        self.search = search
        self.history = history
        self.info_lookup = info_lookup
        self.info_fetch = info_fetch
        self.store: AnimeStore | None = None
        self.store_error: str | None = None
        self._locks: dict[int, asyncio.Lock] = {}

    async def start(self) -> None:
        try:
            self.store = await asyncio.to_thread(open_anime_store, self.settings.database_url,
                                                 self.settings.data_dir)
        except (StoreUnavailable, OSError) as exc:
            self.store_error = str(exc)
            log.warning("anime: no table cache (%s); AniList and the indexers are asked every time", exc)

    async def stop(self) -> None:
        self.anilist.close()
        await self.search.close()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    def status(self) -> dict[str, Any]:
        return {"anilist": self.settings.anilist_url, "providers": self.search.names,
                "table_cache": "ok" if self.store is not None else (self.store_error or "off"),
                "anilist_blocked_s": round(max(0.0, self.anilist.blocked_until - _mono()), 1)}

    async def _db(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """A store call in a thread; None (and a log line) when the database is away."""
        if self.store is None:
            return None
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except StoreUnavailable as exc:
            log.warning("anime: table cache unavailable: %s", exc)
            return None

    def ttl_for(self, show: dict[str, Any]) -> float:
        airing = show.get("status") in ("RELEASING", "NOT_YET_RELEASED") or show.get("next_airing_episode")
        return self.settings.anime_airing_ttl if airing else self.settings.anime_finished_ttl

    # -------------------------------------------------------------- catalogue
    async def search_shows(self, query: str, *, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        return {"query": query, **await self.anilist.search(query, page=page, per_page=per_page)}

    async def trending(self, *, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        return await self.anilist.trending(page=page, per_page=per_page)

    async def popular(self, *, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        return await self.anilist.popular(page=page, per_page=per_page)

    async def details(self, anime_id: int, *, refresh: bool = False) -> dict[str, Any]:
        cached = await self._db(self.store.get_anime, anime_id) if self.store else None
        now = datetime.now(UTC)
        if cached is not None and cached.expires_at > now and not refresh:
            return {**cached.data, "cached": True, "expires_at": _iso(cached.expires_at)}
        try:
            show = await self.anilist.details(anime_id)
        except AniListError as exc:
            if cached is not None and not isinstance(exc, _not_found()):
                log.info("anime %s: AniList failed (%s); serving the stored entry", anime_id, exc)
                return {**cached.data, "cached": True, "stale": True, "expires_at": _iso(cached.expires_at)}
            raise
        expires = now + timedelta(seconds=self.ttl_for(show))
        await self._db(self.store.put_anime, show, fetched_at=now, expires_at=expires) if self.store else None
        return {**show, "cached": False, "expires_at": _iso(expires)}

    # --------------------------------------------------------------- torrents
    async def _find(self, show: dict[str, Any], fresh: bool = False) -> tuple[list[Result], dict[str, Any], bool]:
        """Ask every anime provider for every title; (results, reports, any ok).
        ``fresh``: past the search cache too (an explicit refresh)."""
        found: list[Result] = []
        reports: dict[str, Any] = {}
        ok = False
        for q in search_queries(show):
            if fresh:
                for name in self.search.names:
                    await self.search.cache.delete(self.search.cache_key(name, normalise_query(q)))
            answer = await self.search.search(q, limit=500)
            for name, rep in answer["providers"].items():
                reports.setdefault(name, []).append({"query": q, **rep})
                ok = ok or rep["status"] == "ok"
            found.extend(Result.from_dict(r) for r in answer["results"])
        return merge_results(found), reports, ok

    async def episode_torrents(self, anime_id: int, *, refresh: bool = False) -> tuple[dict[str, Any], list[EpisodeTorrent], dict[str, Any]]:
        """(show, every episode's torrents, about: cached/stale/providers)."""
        show = await self.details(anime_id)
        lock = self._locks.setdefault(anime_id, asyncio.Lock())
        async with lock:   # two requests for one show search the indexers once
            cached = await self._db(self.store.get_anime, anime_id) if self.store else None
            now = datetime.now(UTC)
            if (cached is not None and cached.torrents_expires_at is not None
                    and cached.torrents_expires_at > now and not refresh):
                rows = await self._db(self.store.torrents, anime_id) or []
                return show, rows, {"cached": True, "expires_at": _iso(cached.torrents_expires_at)}
            results, reports, ok = await self._find(show, fresh=refresh)
            if not ok and cached is not None and cached.torrents_fetched_at is not None:
                rows = await self._db(self.store.torrents, anime_id) or []
                return show, rows, {"cached": True, "stale": True, "providers": reports,
                                    "expires_at": _iso(cached.torrents_expires_at)}
            rows = episode_rows(anime_id, results, show)
            await self._fill_known_files(rows)
            expires = now + timedelta(seconds=self.ttl_for(show))
            if ok and self.store is not None:
                if cached is None:
                    await self._db(self.store.put_anime, _strip(show), fetched_at=now,
                                   expires_at=now + timedelta(seconds=self.ttl_for(show)))
                await self._db(self.store.replace_torrents, anime_id, rows, fetched_at=now, expires_at=expires)
                rows = await self._db(self.store.torrents, anime_id) or rows
            return show, rows, {"cached": False, "providers": reports, "expires_at": _iso(expires) if ok else None}

    async def _fill_known_files(self, rows: list[EpisodeTorrent]) -> None:
        """Batch rows whose torrent's metadata we already have get their file."""
        if self.info_lookup is None:
            return
        batches: dict[str, list[EpisodeTorrent]] = {}
        for r in rows:
            if r.batch and r.file_index is None:
                batches.setdefault(r.infohash, []).append(r)
        for ih, group in batches.items():
            info = await self.info_lookup(ih)
            if info:
                _apply_files(group, info)

    async def resolve_batch(self, row: EpisodeTorrent) -> EpisodeTorrent:
        """Find a batch row's file: metadata cache/catalogue, else the swarm."""
        if not row.batch or row.file_index is not None:
            return row
        info = await self.info_lookup(row.infohash) if self.info_lookup else None
        if info is None and self.info_fetch is not None:
            info = await self.info_fetch(row.magnet)
        if info:
            rel = parse_release(row.title)
            span = (list(range(rel.episode_start, rel.episode_end + 1)) if rel.episode_start and rel.episode_end
                    else [row.episode])
            _apply_files([row], info, span)
            if row.file_index is not None:
                await self._db(self.store.set_file, row.anime_id, row.episode, row.infohash,
                               row.file_index, row.file_path) if self.store else None
        return row

    async def episodes(self, anime_id: int, *, refresh: bool = False) -> dict[str, Any]:
        show, rows, about = await self.episode_torrents(anime_id, refresh=refresh)
        aired = aired_episodes(show)
        per_ep: dict[int, list[EpisodeTorrent]] = {}
        for r in rows:
            per_ep.setdefault(r.episode, []).append(r)
        last = max([aired or 0, show.get("episodes") or 0, *per_ep.keys()] or [0])
        nxt = show.get("next_airing_episode") or {}
        out = []
        for ep in range(1, last + 1):
            group = per_ep.get(ep, [])
            qualities = by_quality(group)
            best = best_torrent(group)
            out.append({
                "episode": ep,
                "aired": aired is None or ep <= aired,
                "airing_at": nxt.get("airing_at") if nxt.get("episode") == ep else None,
                "available": bool(group),
                "torrents": len(group),
                "qualities": {q: {"torrents": len(g), "seeders": g[0].seeders, "trusted": g[0].trusted is True}
                              for q, g in qualities.items()},
                "best": _brief(best) if best else None,
            })
        return {"anime": _public(show), "episodes": out, "aired": aired, **about}

    async def torrents(self, anime_id: int, episode: int, *, resolve: bool = False) -> dict[str, Any]:
        show, rows, about = await self.episode_torrents(anime_id)
        group = [r for r in rows if r.episode == episode]
        if resolve:
            best = best_torrent(group)
            if best is not None and best.batch and best.file_index is None:
                await self.resolve_batch(best)
        qualities = by_quality(group)
        best = best_torrent(group)
        return {"anime_id": anime_id, "episode": episode, "title": _title(show),
                "count": len(group),
                "best": _brief(best) if best else None,
                "qualities": {q: [_brief(r) for r in g] for q, g in qualities.items()},
                **about}

    # ---------------------------------------------------------------- watching
    async def next_episode(self, anime_id: int, session_id: str) -> dict[str, Any]:
        """Where this session stopped in the show and what to play now."""
        show, rows, _about = await self.episode_torrents(anime_id)
        by_file: dict[tuple[str, int | None], int] = {}
        by_hash: dict[str, int] = {}
        for r in rows:
            if r.file_index is not None:
                by_file[(r.infohash, r.file_index)] = r.episode
            elif not r.batch:
                by_hash[r.infohash] = r.episode
        last = None
        if self.history is not None:
            watches = await self.history.history(session_id, limit=500)
            for w in sorted(watches, key=lambda w: w.updated_at, reverse=True):
                ep = by_file.get((w.infohash, w.file_index)) or by_hash.get(w.infohash)
                if ep is not None:
                    last = (ep, w)
                    break
        aired = aired_episodes(show)
        total = show.get("episodes")
        if last is None:
            episode, resume_at, reason = 1, 0.0, "not started"
        else:
            ep, w = last
            if watch_finished(w.position_s, w.duration_s):
                episode, resume_at, reason = ep + 1, 0.0, f"finished episode {ep}"
            else:
                episode, resume_at, reason = ep, w.position_s, f"stopped in episode {ep}"
        out: dict[str, Any] = {
            "anime_id": anime_id, "title": _title(show), "episode": episode, "resume_at": resume_at,
            "reason": reason,
            "last_watched": ({"episode": last[0], "position_s": last[1].position_s, "duration_s": last[1].duration_s,
                              "watched_at": _iso(last[1].updated_at), "infohash": last[1].infohash,
                              "file_index": last[1].file_index} if last else None),
            "torrent": None,
        }
        if (total and episode > total) or (aired is not None and episode > aired):
            nxt = show.get("next_airing_episode") or {}
            out.update(episode=None, reason=("finished the show" if total and episode > total
                                             else f"episode {episode} has not aired yet"),
                       airing_at=nxt.get("airing_at"))
            return out
        group = [r for r in rows if r.episode == episode]
        if last is not None and resume_at > 0:
            # keep playing the very file that was being watched
            same = [r for r in group if r.infohash == last[1].infohash]
            group = same or group
        best = best_torrent(group)
        if best is not None and best.batch and best.file_index is None:
            await self.resolve_batch(best)
        out["torrent"] = _brief(best) if best else None
        return out


# ------------------------------------------------------------------- helpers
def _mono() -> float:
    import time
    return time.monotonic()


def _not_found() -> type:
    from .anilist import AniListNotFound
    return AniListNotFound


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None


def _strip(show: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in show.items() if k not in ("cached", "stale", "expires_at")}


def _public(show: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in show.items() if k != "description"}


def _title(show: dict[str, Any]) -> str:
    t = show.get("title") or {}
    return t.get("english") or t.get("romaji") or t.get("native") or str(show.get("id"))


def _brief(r: EpisodeTorrent) -> dict[str, Any]:
    d = r.to_json()
    d.pop("anime_id", None)
    return d


def _apply_files(rows: list[EpisodeTorrent], info: bytes, span: list[int] | None = None) -> None:
    try:
        files = torrent_files(info)
    except Exception as exc:   # noqa: BLE001 - a bad info dict leaves the row unresolved
        log.info("anime: unreadable metadata: %s", exc)
        return
    mapping = map_batch_files(files, span or [r.episode for r in rows])
    for r in rows:
        hit = mapping.get(r.episode)
        if hit:
            r.file_index, r.file_path = hit
