"""Search: providers (Torznab, Nyaa, apibay, the local catalogue), the
aggregator that fans a query out to them, and the pieces they share.

``SearchService.search(query)`` is the one entry point; :func:`build_search`
wires it from Settings (the kit and the CLI use it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .aggregate import SearchService, UnknownProvider
from .base import Provider, ProviderError, ProviderHTTPError, ProviderParseError, Result
from .catalog import Catalog, CatalogProvider
from .http import Fetcher
from .query import QueryError, normalise_query, validate_query

if TYPE_CHECKING:
    from ..config import Settings
    from ..store.cache import Cache

__all__ = ["SearchService", "UnknownProvider", "Provider", "ProviderError", "ProviderHTTPError",
           "ProviderParseError", "Result", "Catalog", "CatalogProvider", "Fetcher", "QueryError",
           "normalise_query", "validate_query", "build_search"]


def build_search(settings: "Settings", cache: "Cache", catalog: Catalog,
                 fetcher: Fetcher | None = None) -> SearchService:
    from .settings import build_providers
    fetcher = fetcher or Fetcher()
    return SearchService(build_providers(settings, fetcher, catalog), cache,
                         ttl=settings.search_cache_ttl, fetcher=fetcher)
