"""The `tstream` command as a user runs it: the demo (README's first command),
serve, config errors."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tstream_kit.engine.swarm import LocalSwarm

TSTREAM = [sys.executable, "-m", "tstream_kit.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TSTREAM_MEDIA_CACHE"] = str(tmp_path / "media")
    env["NO_PROXY"] = "127.0.0.1,localhost"
    for var in ("http_proxy", "HTTP_PROXY"):
        env.pop(var, None)
    return env


def _wait_line(proc: subprocess.Popen, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m
    raise AssertionError(f"{pattern!r} not printed in {timeout}s; got:\n{''.join(seen)}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
def test_demo_prints_a_url_that_streams_the_clip(tmp_path: Path) -> None:
    proc = subprocess.Popen(TSTREAM + ["demo", "--port", "0", "--seconds", "8", "--data-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path))
    try:
        watch = _wait_line(proc, r"watch:\s+(\S+)", 120).group(1)
        stream = _wait_line(proc, r"stream:\s+(\S+)", 10).group(1)
        page = urllib.request.urlopen(watch, timeout=30).read().decode()
        assert "<video" in page
        req = urllib.request.Request(stream, headers={"Range": "bytes=0-"})
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            assert r.status == 206 and r.headers["Content-Type"] == "video/mp4"
        assert body[4:8] == b"ftyp" and len(body) > 100_000
        clips = list((tmp_path / "media").rglob("*.mp4"))
        assert any(c.read_bytes() == body for c in clips), "served bytes differ from the generated clip"
    finally:
        _stop(proc)
    assert proc.returncode in (0, -signal.SIGINT, 130)


def test_serve_streams_and_stops_on_sigterm(tmp_path: Path, make_file) -> None:
    src = make_file("a.webm", 600_000, seed=3)
    with LocalSwarm.from_files([src], workdir=tmp_path / "seed") as swarm:
        proc = subprocess.Popen(TSTREAM + ["serve", "--offline", "--port", "0", "--data-dir", str(tmp_path / "d")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path))
        try:
            url = _wait_line(proc, r"serving on (http://\S+)", 30).group(1)
            q = urllib.parse.urlencode({"magnet": swarm.magnet})
            body = urllib.request.urlopen(f"{url}/api/stream?{q}", timeout=30).read()
            assert body == src.read_bytes()
            health = json.loads(urllib.request.urlopen(f"{url}/api/health", timeout=10).read())
            assert health["torrents"] == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            _stop(proc)


def test_config_errors_are_listed_and_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env.update(TSTREAM_PORT="eighty", TSTREAM_DHT="maybe", TSTREAM_METADATA_TIMEOUT="-1")
    r = subprocess.run(TSTREAM + ["config"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2
    assert "TSTREAM_PORT='eighty'" in r.stderr and "TSTREAM_DHT='maybe'" in r.stderr
    assert "TSTREAM_METADATA_TIMEOUT" in r.stderr
    assert "Traceback" not in r.stderr
    ok = subprocess.run(TSTREAM + ["config"], capture_output=True, text=True, env=_env(tmp_path), timeout=30)
    assert ok.returncode == 0 and json.loads(ok.stdout)["port"] == 8080


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(TSTREAM + ["serve", "--offline", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
