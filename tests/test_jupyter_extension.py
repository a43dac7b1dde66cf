"""The Jupyter server extension: tstream's handlers inside a real Jupyter
Server, at its origin under /tstream/, behind its token auth."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PIECE
from jupyter_support import TOKEN, jupyter_server

@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[str]:
    with jupyter_server(tmp_path) as server:
        yield server.base


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
