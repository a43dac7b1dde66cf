"""Anime configuration: checks, and the indexers asked for episode torrents.

``TSTREAM_ANIME_PROVIDERS`` names them: ``nyaa`` (Nyaa's RSS at
``TSTREAM_NYAA_URL``, anime categories only) and ``torznab`` (every indexer of
``TSTREAM_TORZNAB``, asked with the categories of
``TSTREAM_ANIME_TORZNAB_CATEGORIES``, 5070 = TV/Anime). They are separate
provider instances from general search (names ``nyaa-anime``,
``<indexer>-anime``), so their cached answers never mix with it.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..search.base import Provider
    from ..search.http import Fetcher

__all__ = ["anime_problems", "build_anime_providers", "ANIME_PROVIDERS", "NYAA_ANIME_CATEGORY"]

ANIME_PROVIDERS = ("nyaa", "torznab")
#: Nyaa's "Anime" category (all of its sub-categories)
NYAA_ANIME_CATEGORY = "1_0"


def _names(text: str) -> list[str]:
    return [p.strip().lower() for p in (text or "").split(",") if p.strip()]


def _categories(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in (text or "").replace(" ", "").split(",") if c)


def anime_problems(s: "Settings") -> list[str]:
    out: list[str] = []
    parts = urllib.parse.urlsplit(s.anilist_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        out.append(f"TSTREAM_ANILIST_URL: {s.anilist_url!r} is not an http(s) URL")
    if s.anilist_timeout <= 0:
        out.append("TSTREAM_ANILIST_TIMEOUT must be > 0 seconds")
    for name in ("anime_cache_ttl", "anime_airing_ttl", "anime_finished_ttl"):
        if getattr(s, name) < 0:
            out.append(f"TSTREAM_{name.upper()} must be >= 0 seconds")
    for p in _names(s.anime_providers):
        if p not in ANIME_PROVIDERS:
            out.append(f"TSTREAM_ANIME_PROVIDERS: unknown provider {p!r} (use {', '.join(ANIME_PROVIDERS)})")
    try:
        _categories(s.anime_torznab_categories)
    except ValueError:
        out.append("TSTREAM_ANIME_TORZNAB_CATEGORIES must be comma-separated numbers (5070 = TV/Anime)")
    return out


def build_anime_providers(s: "Settings", fetcher: "Fetcher") -> list["Provider"]:
    from ..search.http import is_loopback_url
    from ..search.nyaa import NyaaProvider
    from ..search.settings import parse_torznab
    from ..search.torznab import TorznabProvider

    common: dict[str, Any] = {"timeout": s.search_timeout, "retries": s.search_retries}
    wanted = _names(s.anime_providers)
    providers: list[Provider] = []
    if "nyaa" in wanted:
        pace = 0.0 if is_loopback_url(s.nyaa_url) else s.public_rate_limit
        providers.append(NyaaProvider(fetcher, base_url=s.nyaa_url, name="nyaa-anime",
                                      category=NYAA_ANIME_CATEGORY, min_interval=pace, **common))
    if "torznab" in wanted:
        cats = _categories(s.anime_torznab_categories)
        for indexer in parse_torznab(s.torznab):
            anime = replace(indexer, name=f"{indexer.name}-anime", categories=cats or indexer.categories)
            providers.append(TorznabProvider(anime, fetcher, **common))
    return providers
