"""Search benchmark (issue 3): an uncached search across the local fake indexers
against a cached one, with the Redis cache and the in-process cache.

Setup: tests/search_fakes.py serves Torznab (Jackett ``all``, with a Prowlarr
magnet redirect and a .torrent enclosure to resolve), Nyaa RSS and apibay JSON
from the fixtures on 127.0.0.1, optionally with ``--latency-ms`` added to each
indexer answer (a network-like delay; default 0 = pure local overhead). The
SearchService is the one the server uses (all four providers, catalogue
included), called in this process so the figures are the search path itself,
not HTTP to our own server.

    uncached   every search a new query (a cache miss on every provider)
    cached     the same query again (every provider answered from the cache)

For each cache (in-process, and Redis at ``--redis``, keys under a unique
prefix, deleted at the end): p50 and p99 of ``--n`` searches each, and
uncached/cached ratios. ``--json PATH`` writes the figures.

    .venv/bin/python bench/search_bench.py [--n 300] [--latency-ms 0] [--quick]

For benchmarks of a real ``tstream serve`` (bench/load_bench.py): ``FakeIndexerProcess`` runs the
same fakes in a child process (``search_bench.py --serve-fakes``, so the indexers do not share a
GIL with the benchmark's client) and ``server_env`` gives the server the providers of
``service()`` through ``TSTREAM_*`` settings.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from search_fakes import FakeIndexers  # noqa: E402

from tstream_kit.search import Catalog, CatalogProvider, Fetcher, SearchService  # noqa: E402
from tstream_kit.search.apibay import ApibayProvider  # noqa: E402
from tstream_kit.search.nyaa import NyaaProvider  # noqa: E402
from tstream_kit.search.torznab import TorznabIndexer, TorznabProvider  # noqa: E402
from tstream_kit.store.cache import MemoryCache, RedisCache  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def service(fake: FakeIndexers, cache: Any, fetcher: Fetcher, tmp: Path) -> SearchService:
    providers = [
        CatalogProvider(Catalog(tmp / "catalog")),
        NyaaProvider(fetcher, base_url=fake.base + "/nyaa/", min_interval=0.0, timeout=10),
        ApibayProvider(fetcher, base_url=fake.base + "/apibay", min_interval=0.0, timeout=10),
        TorznabProvider(TorznabIndexer("jackett", fake.jackett_url("all"), "key"), fetcher, timeout=10),
    ]
    return SearchService(providers, cache, ttl=3600)


def server_env(base: str, jackett_url: str, *, timeout: float = 10.0) -> dict[str, str]:
    """``TSTREAM_*`` settings giving a server the providers of ``service()``: the catalogue, Nyaa,
    apibay and one Torznab indexer, all at the fakes on ``base`` (loopback: no polite pacing)."""
    return {
        "TSTREAM_SEARCH_PROVIDERS": "catalog,nyaa,apibay",
        "TSTREAM_NYAA_URL": base + "/nyaa/",
        "TSTREAM_APIBAY_URL": base + "/apibay",
        "TSTREAM_TORZNAB": f"jackett={jackett_url}|key",
        "TSTREAM_SEARCH_TIMEOUT": f"{timeout:g}",
    }


class FakeIndexerProcess:
    """tests/search_fakes.FakeIndexers in a child process; ``stop()`` (or leaving ``with``)
    ends it. ``base`` and ``jackett_url`` are its addresses, ``env()`` the server settings."""

    def __init__(self, latency_ms: float = 0.0, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-fakes",
             "--latency-ms", str(latency_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError(f"fake indexers did not start in {timeout:.0f} s (exit {self.proc.poll()})")
        info = json.loads(line[0])
        self.base: str = info["base"]
        self.jackett_url: str = info["jackett_url"]
        self.pid = self.proc.pid

    def env(self, **kw: float) -> dict[str, str]:
        return server_env(self.base, self.jackett_url, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()   # the child exits when its stdin closes
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> "FakeIndexerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


async def serve_fakes(latency_ms: float) -> int:
    """The child of FakeIndexerProcess: print the addresses, serve until stdin closes."""
    fake = await FakeIndexers(latency=latency_ms / 1000).start()
    print(json.dumps({"base": fake.base, "jackett_url": fake.jackett_url("all"), "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(done.set)), daemon=True).start()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    while not done.is_set():
        fake.requests.clear()   # a long soak would keep every request otherwise
        try:
            await asyncio.wait_for(done.wait(), 10)
        except asyncio.TimeoutError:
            pass
    await fake.stop()
    return 0


async def measure(svc: SearchService, n: int, label: str) -> dict[str, float]:
    # warm-up: connections, parsers
    for i in range(3):
        await svc.search(f"warm {label} {i}")
    uncached, cached = [], []
    for i in range(n):
        t = time.perf_counter()
        ans = await svc.search(f"big buck bunny {label} {i}")
        uncached.append(1000 * (time.perf_counter() - t))
        assert all(p["status"] == "ok" and not p["cached"] for p in ans["providers"].values()), ans["providers"]
    await svc.drain()
    await svc.search("big buck bunny cached")
    await svc.drain()
    for _ in range(n):
        t = time.perf_counter()
        ans = await svc.search("big buck bunny cached")
        cached.append(1000 * (time.perf_counter() - t))
        assert all(p["cached"] for n_, p in ans["providers"].items() if n_ != "catalog"), ans["providers"]
    out = {
        "uncached_p50_ms": statistics.median(uncached), "uncached_p99_ms": pct(uncached, 99),
        "cached_p50_ms": statistics.median(cached), "cached_p99_ms": pct(cached, 99),
    }
    out["ratio_p50"] = out["uncached_p50_ms"] / out["cached_p50_ms"]
    out["ratio_p99"] = out["uncached_p99_ms"] / out["cached_p99_ms"]
    return out


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="searches per figure")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every indexer answer")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a smoke run (n=20)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--serve-fakes", action="store_true",
                    help="only serve the fake indexers (print their addresses, run until stdin closes)")
    args = ap.parse_args(argv)
    if args.serve_fakes:
        return await serve_fakes(args.latency_ms)
    n = 20 if args.quick else args.n
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="tstream-search-bench-"))
    fake = await FakeIndexers(latency=args.latency_ms / 1000).start()
    fetcher = Fetcher()
    results: dict[str, Any] = {"n": n, "latency_ms": args.latency_ms}
    try:
        results["memory"] = await measure(service(fake, MemoryCache(), fetcher, tmp), n, "memory")
        if not args.no_redis:
            cache = RedisCache(args.redis, f"tstream-bench-{uuid.uuid4().hex[:12]}:")
            await cache.start()
            if cache.status()["status"] != "up":
                print(f"Redis at {args.redis} is not reachable: {cache.status().get('error')}", file=sys.stderr)
                await cache.close()
                return 1
            try:
                results["redis"] = await measure(service(fake, cache, fetcher, tmp), n, "redis")
            finally:
                await cache.clear()
                await cache.close()
    finally:
        fetcher.close()
        await fake.stop()
    print(f"search latency over {n} searches, 4 providers (catalogue, Nyaa, apibay, Torznab), "
          f"indexer latency {args.latency_ms:g} ms")
    print(f"{'cache':<8} {'uncached p50':>13} {'p99':>8} {'cached p50':>11} {'p99':>8} {'ratio p50':>10} {'p99':>7}")
    for name in ("memory", "redis"):
        r = results.get(name)
        if r:
            print(f"{name:<8} {r['uncached_p50_ms']:>10.2f} ms {r['uncached_p99_ms']:>5.2f} ms "
                  f"{r['cached_p50_ms']:>8.3f} ms {r['cached_p99_ms']:>5.3f} ms "
                  f"{r['ratio_p50']:>9.1f}x {r['ratio_p99']:>6.1f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
