"""bench/media_bench.py --quick runs end to end and reports every figure (no timing asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_media_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "media.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "media_bench.py"), "--quick", "--json", str(out)],
                       capture_output=True, text=True, timeout=280, cwd=ROOT,
                       env={**os.environ, "NO_PROXY": "127.0.0.1"})
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert len(data["cases"]) == 3
    for case in data["cases"].values():
        assert case["first_segment_ms_p50"] > 0 and case["first_segment_after_seek_ms_p50"] > 0
        assert case["speed_x_realtime"] > 0 and case["output_bytes"] > 100_000
    assert "after seek" in r.stdout and "Traceback" not in r.stderr
