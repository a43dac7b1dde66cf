"""AniList's GraphQL API (https://graphql.anilist.co): search, trending,
popular, and one show's details.

Requests are ``POST`` with ``{"query", "variables"}``; answers are
``{"data": ..., "errors": [{"message", "status", ...}]}``. AniList allows 90
requests a minute (30 while "degraded") and answers HTTP 429 with
``Retry-After`` (and ``X-RateLimit-Reset``) beyond: the client then waits
if the wait fits in its time budget and otherwise fails at once with
:class:`AniListRateLimited`, and asks nothing more of AniList until the
reset (every caller of this process shares that). Answers are cached
(Redis or in-process) for ``ttl`` seconds.

Errors::

    AniListError               AniList could not give what was asked
     +-- AniListHTTPError      an HTTP status we could not use (5xx, 400 ...)
     |    +-- AniListRateLimited   429, or a wait for the rate limit that would not fit
     +-- AniListNotFound       no such show (GraphQL error with status 404)
     +-- AniListParseError     not JSON, or not AniList's response format
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import tornado.httpclient
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .. import __version__

log = logging.getLogger("tstream.anime")

__all__ = ["AniListClient", "AniListError", "AniListHTTPError", "AniListRateLimited", "AniListNotFound",
           "AniListParseError", "normalise_media", "DEFAULT_URL", "MEDIA_FIELDS"]

DEFAULT_URL = "https://graphql.anilist.co"
USER_AGENT = f"tstream/{__version__} (torrent streaming toolkit; anime)"
#: a rate-limit wait longer than this is never waited for inside a request
MAX_WAIT_S = 60.0
MAX_BODY = 4 * 1024 * 1024


class AniListError(Exception):
    """AniList could not answer; the message says why."""


class AniListHTTPError(AniListError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AniListRateLimited(AniListHTTPError):
    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(429, message or f"AniList rate limit: try again in {retry_after:.0f} s")
        self.retry_after = retry_after


class AniListNotFound(AniListError):
    """No show with that id."""


class AniListParseError(AniListError):
    """The answer was not AniList's GraphQL response format."""


MEDIA_FIELDS = """
  id idMal siteUrl format status episodes duration season seasonYear
  title { romaji english native }
  synonyms genres averageScore meanScore popularity
  description(asHtml: false)
  coverImage { extraLarge large medium color }
  bannerImage
  startDate { year month day }
  nextAiringEpisode { episode airingAt timeUntilAiring }
"""

PAGE_QUERY = """query ($page: Int, $perPage: Int, $search: String, $sort: [MediaSort]) {
  Page(page: $page, perPage: $perPage) {
    pageInfo { total currentPage lastPage hasNextPage perPage }
    media(search: $search, type: ANIME, sort: $sort, isAdult: false) {%s}
  }
}""" % MEDIA_FIELDS

MEDIA_QUERY = """query ($id: Int) {
  Media(id: $id, type: ANIME) {%s}
}""" % MEDIA_FIELDS


def _iso(epoch: Any) -> str | None:
    if not isinstance(epoch, (int, float)):
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def normalise_media(m: dict[str, Any]) -> dict[str, Any]:
    """AniList's ``Media`` object as tstream's JSON (snake_case, flat where it helps)."""
    if not isinstance(m, dict) or not isinstance(m.get("id"), int):
        raise AniListParseError("AniList answered a media entry without an id")
    title = m.get("title") or {}
    cover = m.get("coverImage") or {}
    nxt = m.get("nextAiringEpisode")
    start = m.get("startDate") or {}
    return {
        "id": m["id"],
        "id_mal": m.get("idMal"),
        "title": {"romaji": title.get("romaji"), "english": title.get("english"), "native": title.get("native")},
        "synonyms": [s for s in (m.get("synonyms") or []) if isinstance(s, str)],
        "format": m.get("format"),
        "status": m.get("status"),
        "episodes": m.get("episodes"),
        "duration": m.get("duration"),
        "season": m.get("season"),
        "season_year": m.get("seasonYear") or start.get("year"),
        "genres": [g for g in (m.get("genres") or []) if isinstance(g, str)],
        "score": m.get("averageScore") if m.get("averageScore") is not None else m.get("meanScore"),
        "popularity": m.get("popularity"),
        "description": m.get("description"),
        "cover_url": cover.get("extraLarge") or cover.get("large") or cover.get("medium"),
        "cover_color": cover.get("color"),
        "banner_url": m.get("bannerImage"),
        "site_url": m.get("siteUrl"),
        "next_airing_episode": ({"episode": nxt.get("episode"), "airing_at": _iso(nxt.get("airingAt")),
                                 "time_until_airing": nxt.get("timeUntilAiring")}
                                if isinstance(nxt, dict) and nxt.get("episode") else None),
    }


class AniListClient:
    """One per process (the kit's anime part owns it)."""

    def __init__(self, url: str = DEFAULT_URL, *, cache: Any = None, ttl: float = 3600.0,
                 timeout: float = 10.0, retries: int = 1) -> None:
        self.url = url
        self.cache = cache
        self.ttl = ttl
        self.timeout = timeout
        self.retries = retries
        #: monotonic time before which AniList is not asked (after a 429)
        self.blocked_until = 0.0
        self.requests = 0
        self._client: AsyncHTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> AsyncHTTPClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = AsyncHTTPClient(force_instance=True, max_clients=8, max_body_size=MAX_BODY)
            self._loop = loop
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ----------------------------------------------------------------- API
    async def search(self, query: str, *, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        return await self._page({"search": query, "sort": ["SEARCH_MATCH", "POPULARITY_DESC"]}, page, per_page)

    async def trending(self, *, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        return await self._page({"sort": ["TRENDING_DESC", "POPULARITY_DESC"]}, page, per_page)

    async def popular(self, *, page: int = 1, per_page: int = 20) -> dict[str, Any]:
        return await self._page({"sort": ["POPULARITY_DESC"]}, page, per_page)

    async def details(self, anime_id: int) -> dict[str, Any]:
        try:
            data = await self.query(MEDIA_QUERY, {"id": int(anime_id)})
        except AniListNotFound:
            raise AniListNotFound(f"no anime with AniList id {anime_id}") from None
        media = data.get("Media")
        if media is None:
            raise AniListNotFound(f"no anime with AniList id {anime_id}")
        return normalise_media(media)

    async def _page(self, variables: dict[str, Any], page: int, per_page: int) -> dict[str, Any]:
        data = await self.query(PAGE_QUERY, {**variables, "page": page, "perPage": per_page})
        pg = data.get("Page")
        if not isinstance(pg, dict) or not isinstance(pg.get("media"), list):
            raise AniListParseError("AniList answered without Page.media")
        info = pg.get("pageInfo") or {}
        return {"page": info.get("currentPage", page), "has_next_page": bool(info.get("hasNextPage")),
                "total": info.get("total"),
                "results": [normalise_media(m) for m in pg["media"] if isinstance(m, dict)]}

    # ---------------------------------------------------------------- transport
    def cache_key(self, query: str, variables: dict[str, Any]) -> str:
        digest = hashlib.sha1(json.dumps([query, variables], sort_keys=True).encode()).hexdigest()
        return f"anilist:{digest}"

    async def query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """``data`` of a GraphQL query, from the cache when it is there."""
        key = self.cache_key(query, variables)
        if self.cache is not None and self.ttl > 0:
            raw = await self.cache.get(key)
            if raw is not None:
                try:
                    return json.loads(raw)
                except ValueError:
                    pass
        data = await self._post(query, variables)
        if self.cache is not None and self.ttl > 0:
            await self.cache.set(key, json.dumps(data).encode(), self.ttl)
        return data

    async def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        body = json.dumps({"query": query, "variables": variables})
        attempt = 0
        while True:
            now = time.monotonic()
            if self.blocked_until > now:
                wait = self.blocked_until - now
                if now + wait >= deadline or wait > MAX_WAIT_S:
                    raise AniListRateLimited(wait)
                await asyncio.sleep(wait)
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                raise AniListError(f"no answer from AniList within {self.timeout:g} s")
            request = HTTPRequest(self.url, method="POST", body=body, headers={
                "User-Agent": USER_AGENT, "Content-Type": "application/json", "Accept": "application/json"},
                connect_timeout=remaining, request_timeout=remaining, follow_redirects=False)
            self.requests += 1
            try:
                resp = await self._http().fetch(request, raise_error=False)
            except (OSError, tornado.httpclient.HTTPError, asyncio.TimeoutError) as exc:
                error: AniListError = AniListError(f"cannot reach AniList: {exc}")
                retry_after = 0.25
            else:
                if resp.code == 599:
                    error, retry_after = AniListError(f"cannot reach AniList: {resp.error}"), 0.25
                elif resp.code == 429:
                    retry_after = _retry_after(resp.headers)
                    self.blocked_until = max(self.blocked_until, time.monotonic() + retry_after)
                    log.warning("AniList rate limit: waiting %.1f s", retry_after)
                    error = AniListRateLimited(retry_after)
                elif resp.code >= 500:
                    error, retry_after = AniListHTTPError(resp.code, f"AniList answered HTTP {resp.code}"), 0.5
                else:
                    self._note_limits(resp.headers)
                    return _data(resp.code, resp.body or b"")
            if attempt >= self.retries or time.monotonic() + retry_after >= deadline:
                raise error
            attempt += 1
            await asyncio.sleep(retry_after)

    def _note_limits(self, headers: Any) -> None:
        # the last request of the minute: hold back until AniList's reset
        if headers.get("X-RateLimit-Remaining") == "0":
            reset = headers.get("X-RateLimit-Reset")
            try:
                wait = max(0.0, float(reset) - time.time()) if reset else 60.0
            except ValueError:
                wait = 60.0
            self.blocked_until = max(self.blocked_until, time.monotonic() + min(wait, MAX_WAIT_S))


def _retry_after(headers: Any) -> float:
    for name in ("Retry-After",):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return 60.0


def _data(status: int, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise AniListParseError(f"AniList answered HTTP {status} with something that is not JSON") from None
    if not isinstance(doc, dict) or ("data" not in doc and "errors" not in doc):
        raise AniListParseError("AniList's answer has neither data nor errors")
    errors = doc.get("errors") or []
    data = doc.get("data")
    if errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        code = first.get("status") or status
        message = str(first.get("message") or "unknown error")[:300]
        if code == 404:
            raise AniListNotFound(f"AniList: {message}")
        if code == 429:
            raise AniListRateLimited(60.0)
        if not isinstance(data, dict) or all(v is None for v in data.values()):
            raise AniListHTTPError(int(code) if isinstance(code, int) else status, f"AniList error: {message}")
    if status >= 400:
        raise AniListHTTPError(status, f"AniList answered HTTP {status}")
    if not isinstance(data, dict):
        raise AniListParseError("AniList's answer has no data object")
    return data
