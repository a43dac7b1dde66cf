"""Anime API: /api/anime/search, /trending, /popular, /{id}, /{id}/episodes,
/{id}/torrents?episode=, /{id}/next (see README "Anime").

AniList failures map to statuses here: no such show -> 404, AniList's rate
limit -> 503 with its ``Retry-After``, anything else from AniList -> 502.
"""
from __future__ import annotations

from typing import Any, Awaitable

from ...anime.anilist import AniListError, AniListHTTPError, AniListNotFound, AniListRateLimited
from .base import ApiError, BaseHandler
from .history import current_session

__all__ = ["AnimeSearchHandler", "AnimeTrendingHandler", "AnimePopularHandler", "AnimeDetailsHandler",
           "AnimeEpisodesHandler", "AnimeTorrentsHandler", "AnimeNextHandler", "ANIME_ROUTES"]

MAX_QUERY = 200
MAX_PER_PAGE = 50


class _AnimeHandler(BaseHandler):
    async def answer(self, call: Awaitable[Any]) -> None:
        try:
            result = await call
        except AniListNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except AniListRateLimited as exc:
            # answered here: the generic error path clears headers, and Retry-After must stay
            self.set_header("Retry-After", str(max(1, int(exc.retry_after + 0.999))))
            self.write_json({"error": str(exc)}, status=503)
            return
        except AniListHTTPError as exc:
            raise ApiError(502, f"{exc} (AniList HTTP {exc.status})") from None
        except AniListError as exc:
            raise ApiError(502, str(exc)) from None
        self.write_json(result)

    def paging(self) -> tuple[int, int]:
        page = self.arg_int("page", default=1, minimum=1) or 1
        per_page = self.arg_int("per_page", default=20, minimum=1) or 20
        if per_page > MAX_PER_PAGE:
            raise ApiError(400, f"per_page must be <= {MAX_PER_PAGE}, got {per_page}")
        return page, per_page

    def anime_id(self, raw: str) -> int:
        value = int(raw)
        if value <= 0 or value > 2**31 - 1:
            raise ApiError(404, f"no anime with id {raw}")
        return value


class AnimeSearchHandler(_AnimeHandler):
    async def get(self) -> None:
        query = (self.get_query_argument("query", None) or self.get_query_argument("q", None) or "").strip()
        if not query:
            raise ApiError(400, "missing query: pass ?query=words to search AniList for")
        if len(query) > MAX_QUERY or any(ord(c) < 32 for c in query):
            raise ApiError(400, f"query must be at most {MAX_QUERY} printable characters")
        page, per_page = self.paging()
        await self.answer(self.kit.anime.search_shows(query, page=page, per_page=per_page))


class AnimeTrendingHandler(_AnimeHandler):
    async def get(self) -> None:
        page, per_page = self.paging()
        await self.answer(self.kit.anime.trending(page=page, per_page=per_page))


class AnimePopularHandler(_AnimeHandler):
    async def get(self) -> None:
        page, per_page = self.paging()
        await self.answer(self.kit.anime.popular(page=page, per_page=per_page))


class AnimeDetailsHandler(_AnimeHandler):
    async def get(self, raw_id: str) -> None:
        await self.answer(self.kit.anime.details(self.anime_id(raw_id), refresh=self.arg_bool("refresh")))


class AnimeEpisodesHandler(_AnimeHandler):
    async def get(self, raw_id: str) -> None:
        await self.answer(self.kit.anime.episodes(self.anime_id(raw_id), refresh=self.arg_bool("refresh")))


class AnimeTorrentsHandler(_AnimeHandler):
    async def get(self, raw_id: str) -> None:
        episode = self.arg_int("episode", minimum=1)
        if episode is None:
            raise ApiError(400, "missing episode: pass ?episode=N (1 is the first)")
        await self.answer(self.kit.anime.torrents(self.anime_id(raw_id), episode,
                                                  resolve=self.arg_bool("resolve")))


class AnimeNextHandler(_AnimeHandler):
    async def get(self, raw_id: str) -> None:
        session = current_session(self)
        await self.answer(self.kit.anime.next_episode(self.anime_id(raw_id), session.id))


ANIME_ROUTES: list[tuple[str, type]] = [
    (r"/api/anime/search", AnimeSearchHandler),
    (r"/api/anime/trending", AnimeTrendingHandler),
    (r"/api/anime/popular", AnimePopularHandler),
    (r"/api/anime/([0-9]{1,10})", AnimeDetailsHandler),
    (r"/api/anime/([0-9]{1,10})/episodes", AnimeEpisodesHandler),
    (r"/api/anime/([0-9]{1,10})/torrents", AnimeTorrentsHandler),
    (r"/api/anime/([0-9]{1,10})/next", AnimeNextHandler),
]
