"""Search configuration: the ``TSTREAM_TORZNAB`` format, checks, and building
the providers from :class:`~tstream_kit.config.Settings`.

``TSTREAM_TORZNAB`` lists Torznab indexers, comma-separated, each
``name=URL`` or ``name=URL|APIKEY``::

    TSTREAM_TORZNAB="jackett=http://127.0.0.1:9117/api/v2.0/indexers/all/results/torznab/|KEY,prowlarr=http://127.0.0.1:9696/1/|KEY2"

or a JSON list for categories too::

    TSTREAM_TORZNAB='[{"name": "jackett", "url": "http://...", "apikey": "KEY", "categories": [2000, 5000]}]'
"""
from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .torznab import TorznabIndexer

if TYPE_CHECKING:
    from ..config import Settings
    from .base import Provider
    from .catalog import Catalog
    from .http import Fetcher

__all__ = ["parse_torznab", "search_problems", "build_providers", "BUILTIN_PROVIDERS", "redact_torznab"]

BUILTIN_PROVIDERS = ("catalog", "nyaa", "apibay")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def _check_url(name: str, url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"indexer {name!r}: {url!r} is not an http(s) URL")


def parse_torznab(text: str) -> list[TorznabIndexer]:
    """Indexers from ``TSTREAM_TORZNAB``; ValueError naming the bad entry.

    >>> [i.name for i in parse_torznab("a=http://127.0.0.1:9117/x/|k, b=http://h/1/")]
    ['a', 'b']
    """
    text = (text or "").strip()
    if not text:
        return []
    out: list[TorznabIndexer] = []
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        for row in rows:
            if not isinstance(row, dict) or "name" not in row or "url" not in row:
                raise ValueError("each JSON entry needs at least \"name\" and \"url\"")
            cats = tuple(int(c) for c in row.get("categories", []))
            out.append(TorznabIndexer(str(row["name"]).lower(), str(row["url"]), str(row.get("apikey", "")), cats))
    else:
        for entry in (e.strip() for e in text.split(",")):
            if not entry:
                continue
            name, sep, rest = entry.partition("=")
            if not sep or not rest:
                raise ValueError(f"entry {entry[:40]!r} is not name=URL or name=URL|APIKEY")
            url, _, apikey = rest.partition("|")
            out.append(TorznabIndexer(name.strip().lower(), url.strip(), apikey.strip()))
    seen: set[str] = set()
    for i in out:
        if not _NAME.match(i.name):
            raise ValueError(f"indexer name {i.name!r}: use letters, digits, '-', '_' or '.'")
        if i.name in seen or i.name in BUILTIN_PROVIDERS:
            raise ValueError(f"indexer name {i.name!r} is used twice (or is a built-in provider)")
        seen.add(i.name)
        _check_url(i.name, i.url)
    return out


def redact_torznab(text: str) -> str:
    """The setting with API keys hidden (``tstream config``)."""
    try:
        return ",".join(f"{i.name}={i.url}" + ("|***" if i.apikey else "") for i in parse_torznab(text))
    except ValueError:
        return "(invalid)"


def _providers_list(text: str) -> list[str]:
    return [p.strip().lower() for p in (text or "").split(",") if p.strip()]


def search_problems(s: "Settings") -> list[str]:
    out: list[str] = []
    try:
        parse_torznab(s.torznab)
    except ValueError as exc:
        out.append(f"TSTREAM_TORZNAB: {exc}")
    for p in _providers_list(s.search_providers):
        if p not in BUILTIN_PROVIDERS:
            out.append(f"TSTREAM_SEARCH_PROVIDERS: unknown provider {p!r} "
                       f"(built-in: {', '.join(BUILTIN_PROVIDERS)}; Torznab indexers come from TSTREAM_TORZNAB)")
    if s.search_timeout <= 0:
        out.append("TSTREAM_SEARCH_TIMEOUT must be > 0 seconds")
    if not 0 <= s.search_retries <= 5:
        out.append("TSTREAM_SEARCH_RETRIES must be 0..5")
    if s.search_cache_ttl < 0 or s.metadata_cache_ttl < 0:
        out.append("TSTREAM_SEARCH_CACHE_TTL and TSTREAM_METADATA_CACHE_TTL must be >= 0 seconds (0 = no caching)")
    if s.public_rate_limit < 2.0:
        out.append("TSTREAM_PUBLIC_RATE_LIMIT must be >= 2 seconds (Nyaa and apibay are shared public services)")
    if s.redis_url and urllib.parse.urlsplit(s.redis_url).scheme not in ("redis", "rediss", "unix"):
        out.append("TSTREAM_REDIS_URL must be redis://HOST:PORT/DB, rediss://... or unix://PATH")
    for name in ("nyaa_url", "apibay_url"):
        try:
            _check_url(name, getattr(s, name))
        except ValueError as exc:
            out.append(f"TSTREAM_{name.upper()}: {exc}")
    return out


def build_providers(s: "Settings", fetcher: "Fetcher", catalog: "Catalog") -> list["Provider"]:
    """Built-in providers named in TSTREAM_SEARCH_PROVIDERS, then every Torznab indexer."""
    from .apibay import ApibayProvider
    from .catalog import CatalogProvider
    from .http import is_loopback_url
    from .nyaa import NyaaProvider
    from .torznab import TorznabProvider

    def pace(url: str) -> float:
        # public hosts get the polite interval; a mirror on this machine is not a public service
        return 0.0 if is_loopback_url(url) else s.public_rate_limit

    common: dict[str, Any] = {"timeout": s.search_timeout, "retries": s.search_retries}
    providers: list[Provider] = []
    for name in dict.fromkeys(_providers_list(s.search_providers)):
        if name == "catalog":
            providers.append(CatalogProvider(catalog, timeout=s.search_timeout))
        elif name == "nyaa":
            providers.append(NyaaProvider(fetcher, base_url=s.nyaa_url, min_interval=pace(s.nyaa_url), **common))
        elif name == "apibay":
            providers.append(ApibayProvider(fetcher, base_url=s.apibay_url, min_interval=pace(s.apibay_url),
                                            **common))
    for indexer in parse_torznab(s.torznab):
        providers.append(TorznabProvider(indexer, fetcher, **common))
    return providers


def catalog_root(s: "Settings") -> Path:
    return Path(s.data_dir) / "catalog"
