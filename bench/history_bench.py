"""Watch-history benchmark on the real PostgreSQL.

Creates a database of its own (dropped at the end, whatever happens), loads
``--rows`` watches (default 1,000,000) with COPY through the migrations'
schema (the aggregate trigger included), then runs a real tstream server on
it and measures, over HTTP on loopback, p50/p99 of ``/api/popular?days=30``
and of one session's ``/api/history``. Prints one JSON object.

    .venv/bin/python bench/history_bench.py               # 1M rows
    .venv/bin/python bench/history_bench.py --rows 20000 --requests 30   # smoke

Data: watches spread over ``--days`` days (90), torrents drawn from a Zipf
law (s=1.1) over ``--torrents`` (20,000), sessions uniform over
``--sessions`` (100,000), plus one heavy session of 1,000 watches whose
history is measured.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tstream_kit.config import Settings  # noqa: E402
from tstream_kit.sessions import SessionSigner  # noqa: E402
from tstream_kit.store.history.postgres import PostgresHistory  # noqa: E402

HEAVY = "bench-heavy-session"
COLUMNS = ("id, session_id, infohash, magnet, title, file_index, file_path, position_s, "
           "duration_s, watched_at, updated_at")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def make_rows(n: int, days: int, torrents: int, sessions: int, seed: int = 1):
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1.0 / (k ** 1.1) for k in range(1, torrents + 1)))
    hashes = ["%040x" % rng.getrandbits(160) for _ in range(torrents)]
    now = datetime.now(timezone.utc)
    span = days * 86400.0
    picks = rng.choices(range(torrents), cum_weights=weights, k=n)
    for i, t in enumerate(picks):
        ih = hashes[t]
        at = now - timedelta(seconds=rng.random() * span)
        session = HEAVY if i % (n // 1000 or 1) == 0 else f"s{rng.randrange(sessions)}"
        yield (uuid.UUID(int=rng.getrandbits(128), version=4), session, ih,
               f"magnet:?xt=urn:btih:{ih}", f"Torrent {t}", 0, f"Torrent {t}/video.mp4",
               rng.random() * 3000, 5400.0, at, at)


async def http_latencies(url: str, headers: dict, n: int) -> list[float]:
    from tornado.httpclient import AsyncHTTPClient
    client = AsyncHTTPClient()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.fetch(url, headers=headers, request_timeout=30, raise_error=False)
        out.append((time.perf_counter() - t0) * 1000)
        if r.code != 200:
            raise RuntimeError(f"{url}: HTTP {r.code} {r.body[:200]!r}")
    return out


async def measure(db_url: str, requests: int, secret: str) -> dict:
    from tstream_kit.server.app import start_server
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({}, data_dir=Path(tmp), port=0, database_url=db_url,
                                     secret=secret).offline()
        running = await start_server(settings)
        try:
            token = SessionSigner(secret.encode()).token_for(HEAVY)
            await http_latencies(f"{running.url}/api/popular?days=30", {}, 5)   # warm-up
            popular = await http_latencies(f"{running.url}/api/popular?days=30", {}, requests)
            history = await http_latencies(f"{running.url}/api/history?limit=50",
                                           {"X-Session-Id": token}, requests)
        finally:
            await running.stop()
    return {
        "popular_ms": {"p50": round(statistics.median(popular), 2), "p99": round(pct(popular, 0.99), 2)},
        "history_ms": {"p50": round(statistics.median(history), 2), "p99": round(pct(history, 0.99), 2)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--torrents", type=int, default=20_000)
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--pg", default=os.environ.get("TSTREAM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test"),
                    help="a database to connect to for CREATE/DROP DATABASE")
    args = ap.parse_args()

    dbname = "tstream_bench_" + uuid.uuid4().hex[:10]
    parts = urllib.parse.urlsplit(args.pg)
    db_url = urllib.parse.urlunsplit(parts._replace(path="/" + dbname))
    admin = psycopg.connect(args.pg, autocommit=True, connect_timeout=5)
    admin.execute(f"CREATE DATABASE {dbname}")
    result: dict = {"rows": args.rows, "days": args.days, "torrents": args.torrents, "sessions": args.sessions}
    try:
        store = PostgresHistory(db_url, statement_timeout_ms=600_000)
        store.migrate()
        rows = make_rows(args.rows, args.days, args.torrents, args.sessions)
        with psycopg.connect(db_url, connect_timeout=5) as conn:
            t0 = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(f"COPY watched_torrents ({COLUMNS}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            conn.commit()
            load_s = time.perf_counter() - t0   # generation + COPY + the aggregate trigger
            conn.commit()
            # what autovacuum does after a bulk load: statistics and the visibility
            # map (index-only scans); timed apart from the insert rate
            t0 = time.perf_counter()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            result["vacuum_analyze_s"] = round(time.perf_counter() - t0, 2)
            conn.autocommit = False
            result["aggregate_rows"] = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("watch_daily", "watch_pairs")}
        assert store.count() == args.rows
        result["load_s"] = round(load_s, 2)
        result["insert_rate_rows_per_s"] = int(args.rows / load_s)
        # single-watch writes as the outbox makes them (one transaction each)
        t0 = time.perf_counter()
        from tstream_kit.store.history import Watch, utcnow
        for i in range(200):
            now = utcnow()
            store.upsert([Watch(id=str(uuid.uuid4()), session_id=f"s{i}", infohash="f" * 40,
                                magnet="magnet:?xt=urn:btih:" + "f" * 40, watched_at=now, updated_at=now)])
        result["single_upserts_per_s"] = int(200 / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(50):
            store.popular(30, 20)
        result["popular_store_ms_mean"] = round((time.perf_counter() - t0) * 1000 / 50, 2)
        store.close()
        result.update(asyncio.run(measure(db_url, args.requests, "bench-secret-" + "x" * 32)))
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        admin.close()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
