"""bench/search_bench.py --quick runs end to end and reports every figure (no timing asserted,
except that a cached search is faster than an uncached one)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_search_bench_quick(tmp_path: Path) -> None:
    from test_cache import _need_redis
    _need_redis()
    out = tmp_path / "search.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "search_bench.py"), "--quick", "--json", str(out)],
                       capture_output=True, text=True, timeout=240, cwd=ROOT,
                       env={**os.environ, "NO_PROXY": "127.0.0.1"})
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    for cache in ("memory", "redis"):
        fig = data[cache]
        assert all(fig[k] > 0 for k in ("uncached_p50_ms", "uncached_p99_ms", "cached_p50_ms", "cached_p99_ms"))
        assert fig["ratio_p50"] > 1, fig
    assert "ratio p50" in r.stdout
