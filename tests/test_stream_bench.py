"""bench/stream_bench.py --quick end to end: it runs, and its JSON holds every figure and ratio.

No timing is asserted: the numbers depend on the machine. What must hold is that every
measurement produced a positive number and every ratio was computed from them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "stream_bench.py"
NGINX = os.environ.get("TSTREAM_NGINX", "/usr/sbin/nginx")

FIGURES = [
    "small.first_byte_ms", "small.cold_mb_s", "small.cold_body_mb_s", "small.warm_mb_s",
    "small.libtorrent_mb_s", "small.libtorrent_body_mb_s", "small.libtorrent_first_piece_ms",
    "small.nginx_mb_s", "small.rss_after_cold_mib", "small.rss_after_warm_mib",
    "small.uss_after_cold_mib", "small.uss_after_warm_mib",
    "big.first_byte_ms", "big.cold_mb_s", "big.cold_body_mb_s", "big.warm_mb_s",
    "big.libtorrent_mb_s", "big.libtorrent_body_mb_s", "big.nginx_mb_s",
    "big.rss_after_cold_mib", "big.rss_after_warm_mib",
    "big.uss_after_cold_mib", "big.uss_after_warm_mib",
    "seek_limited.seek_ms", "seek_unlimited.seek_ms",
]
RATIOS = [
    "small.cold_vs_libtorrent", "small.cold_total_vs_libtorrent", "small.warm_vs_nginx",
    "big.cold_vs_libtorrent", "big.cold_total_vs_libtorrent", "big.warm_vs_nginx",
    "memory.rss_after_cold_big_vs_small", "memory.rss_after_warm_big_vs_small",
    "memory.uss_after_cold_big_vs_small", "memory.uss_after_warm_big_vs_small",
]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stream_bench_quick(tmp_path):
    if not os.access(NGINX, os.X_OK):
        msg = f"nginx not found at {NGINX} (install nginx-light or set TSTREAM_NGINX)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    assert "first byte" in proc.stdout and str(out) in proc.stdout  # the table and the JSON path

    result = json.loads(out.read_text())
    assert result["config"]["quick"] is True
    runs = result["config"]["runs"]
    assert runs >= 2

    figures = result["figures"]
    for name in FIGURES:
        fig = figures.get(name)
        assert fig is not None, f"missing figure {name}"
        assert fig["n"] == runs, f"{name}: {fig['n']} values for {runs} runs"
        for key in ("median", "min", "max"):
            assert _positive(fig[key]), f"{name}.{key} = {fig[key]!r}"
        assert fig["min"] <= fig["median"] <= fig["max"]
        assert all(_positive(v) for v in fig["values"]), f"{name}: {fig['values']}"

    ratios = result["ratios"]
    for name in RATIOS:
        assert name in ratios, f"missing ratio {name}"
        assert _positive(ratios[name]["value"]), f"{name} = {ratios[name]['value']!r}"
    for name in ("small.cold_vs_libtorrent", "small.warm_vs_nginx"):
        assert isinstance(ratios[name]["meets_target"], bool)
    for name in ("small.first_byte_ms", "seek_limited.seek_ms"):
        assert isinstance(figures[name]["meets_target"], bool)

    # the seek landed in the second half, and the bytes served there were the file's bytes
    for kind in ("seek_limited", "seek_unlimited"):
        for run in result["runs"][kind]:
            assert run["offset_fraction"] >= 0.5
            assert run["bytes_match"] is True
    # the big file is bigger, so the memory comparison means something
    assert result["files"]["big"]["bytes"] > result["files"]["small"]["bytes"]
