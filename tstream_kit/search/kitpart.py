"""The search side of the kit: cache, catalogue, providers, and the metadata
cache that lets ``/api/info`` answer for a known torrent without the swarm.

The kit holds one :class:`SearchKit` and calls it at three points: start/stop,
before adding a magnet (:meth:`torrent_from_cache`) and after its metadata
arrived (:meth:`remember`).
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..magnets import MagnetError, make_magnet, normalise_infohash, parse_magnet
from ..store.cache import make_cache
from . import build_search
from .bencode import BencodeError
from .catalog import Catalog
from .settings import catalog_root

if TYPE_CHECKING:
    from ..config import Settings
    from ..engine import Engine, Torrent

log = logging.getLogger("tstream.search")

__all__ = ["SearchKit"]


class SearchKit:
    def __init__(self, settings: "Settings") -> None:
        self.settings = settings
        self.cache = make_cache(settings.redis_url, settings.cache_prefix)
        folder = Path(settings.catalog_dir).expanduser() if settings.catalog_dir else None
        self.catalog = Catalog(catalog_root(settings), folder)
        self.service = build_search(settings, self.cache, self.catalog)
        self._remembered: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self.catalog.load()
        await self.cache.start()

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.service.close()
        await self.cache.close()

    async def search(self, query: str | bytes, *, provider: str | Sequence[str] | None = None,
                     limit: int = 50, sort: str = "seeders") -> dict[str, Any]:
        return await self.service.search(query, provider=provider, limit=limit, sort=sort)

    # ------------------------------------------------------ metadata cache
    def _key(self, infohash: str) -> str:
        return f"magnet:{infohash}"

    async def torrent_from_cache(self, engine: "Engine", magnet_or_infohash: str) -> "Torrent | None":
        """Add a torrent the engine does not have with metadata we already
        know (cache, then catalogue). None when there is nothing to add this
        way: the caller then adds it the usual way (and reports bad input)."""
        text = (magnet_or_infohash or "").strip()
        try:
            if text.lower().startswith("magnet:"):
                magnet = parse_magnet(text)
                infohash, uri = magnet.infohash, text
            else:
                infohash, uri = normalise_infohash(text), ""
        except MagnetError:
            return None
        if engine.get(infohash) is not None:
            return None
        info = await self.cache.get(self._key(infohash))
        source = "cache"
        if info is None:
            info, source = self.catalog.info_for(infohash), "catalogue"
        if info is None:
            return None
        if not uri:
            entry = self.catalog.get(infohash)
            uri = entry.magnet if entry else make_magnet(infohash)
        log.info("metadata of %s from the %s", infohash, source)
        return engine.add_magnet(uri, info=info)

    async def remember(self, torrent: "Torrent", magnet_or_infohash: str = "", source: str = "engine") -> None:
        """Catalogue a torrent whose metadata we have, and cache its metadata."""
        if torrent.infohash in self._remembered:
            return
        info = torrent.info_bytes()
        if not info:
            return
        self._remembered.add(torrent.infohash)
        magnet = magnet_or_infohash if magnet_or_infohash.lower().startswith("magnet:") else None
        try:
            self.catalog.remember_info(info, magnet=magnet, source=source)
        except (BencodeError, OSError) as exc:
            log.warning("could not catalogue %s: %s", torrent.infohash, exc)
        task = asyncio.ensure_future(
            self.cache.set(self._key(torrent.infohash), info, self.settings.metadata_cache_ttl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def remember_torrent_bytes(self, data: bytes, *, magnet: str | None = None, source: str = "demo") -> str:
        """Catalogue .torrent bytes (the demo's clip); returns the infohash."""
        from .bencode import torrent_meta
        meta = torrent_meta(data)
        self.catalog.remember(meta, magnet=magnet, source=source)
        return meta.infohash

    # --------------------------------------------------------------- health
    def health(self) -> dict[str, Any]:
        cache = self.cache.status()
        return {
            "cache": cache,
            "redis": cache["status"] if cache["backend"] == "redis" else "not configured",
            "search": {"providers": self.service.names, "catalogue": len(self.catalog),
                       "last": dict(self.service.last)},
        }


