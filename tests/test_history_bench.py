"""bench/history_bench.py in a small run: it measures, and drops its database."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from history_support import pg_admin_connect, pg_schema  # noqa: F401 - fixture (skips without PostgreSQL)

BENCH = Path(__file__).resolve().parent.parent / "bench" / "history_bench.py"


def bench_databases() -> set[str]:
    with pg_admin_connect() as c:
        return {r[0] for r in c.execute("SELECT datname FROM pg_database WHERE datname LIKE 'tstream_bench_%'")}


def test_history_bench_smoke(pg_schema: str) -> None:
    before = bench_databases()
    r = subprocess.run([sys.executable, str(BENCH), "--rows", "5000", "--requests", "5",
                        "--torrents", "500", "--sessions", "1000"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["rows"] == 5000 and out["insert_rate_rows_per_s"] > 0
    for key in ("popular_ms", "history_ms"):
        assert 0 < out[key]["p50"] <= out[key]["p99"]
    assert out["aggregate_rows"]["watch_daily"] > 0
    assert bench_databases() == before          # nothing left behind
