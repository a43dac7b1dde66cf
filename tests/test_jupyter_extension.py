"""The Jupyter server extension: tstream's handlers inside a real Jupyter
Server, at its origin under /tstream/, behind its token auth."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PIECE

TOKEN = "tstream-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TSTREAM_DATA_DIR=str(data_dir), TSTREAM_BT_LISTEN="127.0.0.1:0", TSTREAM_DHT="0",
               TSTREAM_LSD="0", TSTREAM_PORT_MAPPING="0", TSTREAM_UTP="0",
               NO_PROXY="127.0.0.1,localhost", JUPYTER_PLATFORM_DIRS="1")
    for var in ("http_proxy", "HTTP_PROXY"):
        env.pop(var, None)
    return env


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    root = tmp_path / "nb"
    root.mkdir()
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
           f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
           f"--ServerApp.root_dir={root}",
           # as the shipped config file does (an editable install has no data files)
           "--ServerApp.jpserver_extensions={'tstream_kit': True}"]
    log = (tmp_path / "jupyter.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=offline_env(tmp_path / "data"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "jupyter.log").read_text())
                time.sleep(0.2)
        else:
            raise AssertionError("jupyter server did not start:\n" + (tmp_path / "jupyter.log").read_text())
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.slow
def test_extension_serves_streams_behind_jupyter_auth(jupyter: str, make_file, make_swarm) -> None:
    auth = {"Authorization": f"token {TOKEN}"}
    status, _, body = get(f"{jupyter}/tstream/api/health", auth)
    assert status == 200 and json.loads(body)["status"] == "ok"

    status, headers, body = get(f"{jupyter}/tstream/api/health")        # no token
    assert status == 403
    assert "error" in json.loads(body)

    src = make_file("clip.mp4", 9 * PIECE + 3, seed=5)
    swarm = make_swarm([src])
    q = urllib.parse.urlencode({"magnet": swarm.magnet})
    status, headers, body = get(f"{jupyter}/tstream/api/stream?{q}", {**auth, "Range": "bytes=1000-"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 1000-{src.stat().st_size - 1}/{src.stat().st_size}"
    assert body == src.read_bytes()[1000:]

    status, _, body = get(f"{jupyter}/tstream/api/info?{q}", auth)
    assert status == 200 and json.loads(body)["files"][0]["path"] == "clip.mp4"
    status, _, page = get(f"{jupyter}/tstream/?token={TOKEN}")
    assert status == 200 and b"<video" in page
