"""Fan a query out to every provider at once, cache each answer, merge, rank.

Each provider runs under its own timeout (its whole budget: cache look-up,
retries, redirects); one that fails or times out is reported and skipped, and
never delays the answer past its timeout. Answers that came back ok (empty
ones too) are cached per provider under ``search:<provider>:<normalised
query>``; failures are not cached, so the next search asks again.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ..store.cache import Cache
from .base import Provider, ProviderError, Result
from .http import DeadlineExceeded, Fetcher
from .query import normalise_query, validate_query

log = logging.getLogger("tstream.search")

__all__ = ["SearchService", "ProviderReport", "merge_results", "rank_results", "UnknownProvider",
           "SORT_KEYS"]

SORT_KEYS = ("seeders", "size", "published", "title")


class UnknownProvider(ValueError):
    """A ``provider=`` name that is not configured."""


@dataclass
class ProviderReport:
    status: str          # "ok" | "error" | "timeout"
    ms: float
    count: int = 0
    cached: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "ms": round(self.ms, 1), "count": self.count,
                             "cached": self.cached}
        if self.error:
            d["error"] = self.error
        return d


def merge_results(results: Sequence[Result]) -> list[Result]:
    """One result per infohash: the richest one, its gaps filled from the others,
    the highest seeder/leecher counts, and every provider that found it."""
    by_hash: dict[str, list[Result]] = {}
    for r in results:
        by_hash.setdefault(r.infohash, []).append(r)
    merged: list[Result] = []
    for group in by_hash.values():
        group = sorted(group, key=lambda r: (-r.richness(), not r.size_exact))
        best = Result.from_dict(group[0].to_dict())
        for other in group[1:]:
            if other.size is not None and other.size_exact and not best.size_exact:
                best.size, best.size_exact = other.size, True
            for name in ("size", "published", "category", "url", "trusted", "remake"):
                if getattr(best, name) in (None, "") and getattr(other, name) not in (None, ""):
                    setattr(best, name, getattr(other, name))
            for name in ("seeders", "leechers"):
                values = [v for v in (getattr(best, name), getattr(other, name)) if v is not None]
                setattr(best, name, max(values) if values else None)
            if len(other.magnet) > len(best.magnet) and best.magnet.count("&tr=") < other.magnet.count("&tr="):
                best.magnet = other.magnet   # more trackers start faster
        best.providers = list(dict.fromkeys(p for r in group for p in (r.providers or [r.provider])))
        merged.append(best)
    return merged


def rank_results(results: list[Result], sort: str = "seeders") -> list[Result]:
    if sort == "size":
        key: Any = lambda r: (-(r.size or 0), -(r.seeders or 0))
    elif sort == "published":
        key = lambda r: (r.published or "", r.seeders or 0)
        return sorted(results, key=key, reverse=True)
    elif sort == "title":
        key = lambda r: (r.title.casefold(), -(r.seeders or 0))
    else:
        # unknown seeder counts (the local catalogue) after known ones
        key = lambda r: (r.seeders is None, -(r.seeders or 0), -(r.leechers or 0), r.title.casefold())
    return sorted(results, key=key)


class SearchService:
    def __init__(self, providers: Sequence[Provider], cache: Cache, *, ttl: float = 3600.0,
                 fetcher: Fetcher | None = None) -> None:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique, got {names}")
        self.providers = {p.name: p for p in providers}
        self.cache = cache
        self.ttl = ttl
        self.fetcher = fetcher
        self._background: set[asyncio.Task[Any]] = set()
        #: the latest report of each provider (status, ms, count, error), for /api/health
        self.last: dict[str, dict[str, Any]] = {}

    @property
    def names(self) -> list[str]:
        return list(self.providers)

    def select(self, provider: str | Sequence[str] | None) -> list[Provider]:
        if not provider:
            return list(self.providers.values())
        wanted = [p.strip() for p in provider.split(",")] if isinstance(provider, str) else list(provider)
        unknown = [p for p in wanted if p and p not in self.providers]
        if unknown:
            raise UnknownProvider(f"unknown provider {', '.join(map(repr, unknown))}; "
                                  f"configured: {', '.join(self.providers) or 'none'}")
        return [self.providers[p] for p in dict.fromkeys(wanted) if p]

    async def search(self, query: str | bytes, *, provider: str | Sequence[str] | None = None,
                     limit: int = 50, sort: str = "seeders") -> dict[str, Any]:
        """``QueryError`` / ``UnknownProvider`` for bad input; otherwise always an
        answer, with a report per provider."""
        text = validate_query(query)
        if sort not in SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
        selected = self.select(provider)
        norm = normalise_query(text)
        started = time.monotonic()
        outcomes = await asyncio.gather(*(self._one(p, text, norm) for p in selected))
        found: list[Result] = []
        reports: dict[str, dict[str, Any]] = {}
        for p, (results, report) in zip(selected, outcomes):
            found.extend(results)
            reports[p.name] = report.to_dict()
            self.last[p.name] = {**reports[p.name], "at": time.time()}
        ranked = rank_results(merge_results(found), sort)[:max(0, limit)]
        return {
            "query": text,
            "count": len(ranked),
            "results": [r.to_dict() for r in ranked],
            "providers": reports,
            "ms": round(1000 * (time.monotonic() - started), 1),
        }

    def cache_key(self, provider: str, norm: str) -> str:
        return f"search:{provider}:{norm}"

    async def _one(self, p: Provider, text: str, norm: str) -> tuple[list[Result], ProviderReport]:
        started = time.monotonic()
        key = self.cache_key(p.name, norm)
        state: dict[str, bool] = {"cached": False}

        async def run() -> list[Result]:
            cacheable = getattr(p, "cacheable", True)
            raw = await self.cache.get(key) if cacheable else None
            if raw is not None:
                try:
                    rows = json.loads(raw)
                    state["cached"] = True
                    return [Result.from_dict(r) for r in rows]
                except (ValueError, TypeError):
                    log.warning("cache entry %s unreadable; asking %s again", key, p.name)
            results = await p.search(text)
            for r in results:
                r.provider = r.provider or p.name
            if cacheable:
                payload = json.dumps([r.to_dict() for r in results]).encode()
                self._spawn(self.cache.set(key, payload, self.ttl))
            return results

        try:
            results = await asyncio.wait_for(run(), p.timeout)
        except (asyncio.TimeoutError, DeadlineExceeded) as exc:
            ms = 1000 * (time.monotonic() - started)
            msg = str(exc) if isinstance(exc, DeadlineExceeded) else f"no answer within {p.timeout:g} s"
            return [], ProviderReport("timeout", ms, error=msg)
        except ProviderError as exc:
            return [], ProviderReport("error", 1000 * (time.monotonic() - started), error=str(exc))
        except Exception as exc:   # a provider bug must not fail the search
            log.exception("provider %s failed", p.name)
            return [], ProviderReport("error", 1000 * (time.monotonic() - started),
                                      error=f"{type(exc).__name__}: {exc}")
        ms = 1000 * (time.monotonic() - started)
        return results, ProviderReport("ok", ms, count=len(results), cached=state["cached"])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        await self.drain()
        if self.fetcher is not None:
            self.fetcher.close()

    async def drain(self) -> None:
        """Wait for pending cache writes (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
