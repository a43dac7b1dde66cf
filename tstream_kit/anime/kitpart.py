"""The anime side of the kit: an :class:`AnimeService` wired to the kit's
cache, catalogue, engine and history (the kit calls :func:`make_anime`)."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..search.aggregate import SearchService
from ..search.http import Fetcher
from .service import AnimeService
from .settings import build_anime_providers

if TYPE_CHECKING:
    from ..kit import Kit

log = logging.getLogger("tstream.anime")

__all__ = ["make_anime"]


def make_anime(kit: "Kit") -> AnimeService:
    s = kit.settings
    shared = kit.search.service.fetcher
    # one pacer per process: Nyaa's polite interval is shared with general search
    fetcher = Fetcher(shared.pacer if shared is not None else None)
    search = SearchService(build_anime_providers(s, fetcher), kit.search.cache, ttl=s.search_cache_ttl,
                           fetcher=fetcher)

    async def info_lookup(infohash: str) -> bytes | None:
        info = await kit.search.cache.get(f"magnet:{infohash}")
        return info if info is not None else kit.search.catalog.info_for(infohash)

    async def info_fetch(magnet: str) -> bytes | None:
        """The swarm, through the engine (the torrent stays added: it is about to be watched)."""
        try:
            torrent = await asyncio.wait_for(kit.torrent_with_metadata(magnet), s.metadata_timeout + 5)
        except Exception as exc:   # noqa: BLE001 - an unresolved batch is still listed
            log.info("anime: no metadata for %s: %s", magnet[:80], exc)
            return None
        return torrent.info_bytes()

    return AnimeService(s, kit.search.cache, search, history=kit.history, info_lookup=info_lookup,
                        info_fetch=info_fetch)
