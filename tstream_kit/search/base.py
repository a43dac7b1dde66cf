"""Search results and the Provider protocol.

Every provider turns a query into a list of :class:`Result`; everything
after that (merging, ranking, caching, timeouts) is the aggregator's job.

Errors a provider may raise (anything else is a bug, still caught)::

    ProviderError            the indexer answered, but not with results
     +-- ProviderHTTPError   an HTTP status we could not use (429, 5xx, ...)
     +-- ProviderParseError  malformed XML/JSON, or not the documented format
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

__all__ = ["Result", "Provider", "ProviderError", "ProviderHTTPError", "ProviderParseError"]


class ProviderError(Exception):
    """A provider could not give results; the message says why."""


class ProviderHTTPError(ProviderError):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ProviderParseError(ProviderError):
    """The answer was not in the provider's documented format."""


@dataclass
class Result:
    """One torrent found by a provider.

    ``size`` is in bytes; ``published`` is ISO 8601 UTC (``2024-01-31T12:00:00Z``);
    ``seeders``/``leechers`` are ``None`` when the provider does not say.
    ``providers`` lists every provider that found the same infohash.
    """

    title: str
    infohash: str
    magnet: str
    size: int | None = None
    seeders: int | None = None
    leechers: int | None = None
    provider: str = ""
    published: str | None = None
    category: str | None = None
    url: str | None = None          # the indexer's page for the torrent, when it has one
    providers: list[str] = field(default_factory=list)
    #: False when the size was read from a rounded text ("885.7 MiB")
    size_exact: bool = True
    #: Nyaa's flags (``nyaa:trusted``, ``nyaa:remake``); None where the provider does not say
    trusted: bool | None = None
    remake: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def richness(self) -> int:
        """How many optional fields are known (to keep the richest duplicate)."""
        return sum(getattr(self, n) not in (None, "") for n in
                   ("size", "seeders", "leechers", "published", "category", "url"))


@runtime_checkable
class Provider(Protocol):
    """A source of torrents. ``name`` is unique among configured providers and
    is the ``provider`` query parameter; ``timeout`` is the whole budget of one
    search (retries and redirects included)."""

    name: str
    timeout: float
    # optional: ``cacheable = False`` keeps the aggregator from caching answers

    async def search(self, query: str) -> list[Result]:
        """Results for a validated query; raise :class:`ProviderError` on failure."""
        ...
