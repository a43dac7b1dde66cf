"""GET /api/search (alias /api/torrents/search): the aggregated search.

``query`` (also ``q``) is validated from the raw bytes of the URL, so a
non-UTF-8 query gets our own 400 message, not a decoding error; ``provider``
picks providers (comma-separated names), ``limit`` caps the results (1-500),
``sort`` is seeders (default), size, published or title.
"""
from __future__ import annotations

from ...search import QueryError, UnknownProvider
from ...search.aggregate import SORT_KEYS
from .base import ApiError, BaseHandler

MAX_LIMIT = 500


class SearchHandler(BaseHandler):
    async def get(self) -> None:
        args = self.request.query_arguments
        raw = (args.get("query") or args.get("q") or [None])[0]
        if raw is None:
            raise ApiError(400, "missing query: pass ?query=words to search for")
        limit = self.arg_int("limit", default=50, minimum=1)
        assert limit is not None
        if limit > MAX_LIMIT:
            raise ApiError(400, f"limit must be <= {MAX_LIMIT}, got {limit}")
        sort = self.get_query_argument("sort", "seeders") or "seeders"
        if sort not in SORT_KEYS:
            raise ApiError(400, f"sort must be one of {', '.join(SORT_KEYS)}, got {sort[:40]!r}")
        provider = self.get_query_argument("provider", None) or None
        try:
            answer = await self.kit.search.search(raw, provider=provider, limit=limit, sort=sort)
        except (QueryError, UnknownProvider) as exc:
            raise ApiError(400, str(exc)) from None
        self.write_json(answer)
