"""The OpenAPI document (``GET /api/openapi.json``) and schemathesis against a live server
(issue 9, item 2).

A real ``tstream serve --offline`` subprocess on an unused port, with a loopback seeder for one
small torrent. Every operation of the document gets a few derandomized schemathesis cases; the
``magnet`` parameter of each case is, by a drawn choice, what schemathesis generated (mostly a
400), the seeder's magnet or infohash (a real answer, the small file streamed whole), or a magnet
whose only peer is a closed port (504 after ``TSTREAM_METADATA_TIMEOUT=1``). AniList and Nyaa
point at a closed port too, so nothing leaves 127.0.0.1 and the anime routes answer 502 fast.

Checks: no 500 ever; other 5xx only where documented for an upstream we made unreachable
(504 for the dead magnet, 502 for AniList, 503 for a limit); every response's status, content
type and JSON body match the document.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from tstream_kit.engine.swarm import LocalSwarm
from tstream_kit.magnets import make_magnet
from tstream_kit.server.app import routes
from tstream_kit.server.openapi import build_openapi

from conftest import random_bytes

DOC = build_openapi()
OPERATIONS = sorted((path, method) for path, ops in DOC["paths"].items() for method in ops)
#: cases per operation: 45 operations x 10 cases ~ 450 requests, ~35 s on a 2-core machine (40 took ~3 min)
EXAMPLES = 10
#: seconds one request may take (the dead magnet answers 504 after 1 s)
REQUEST_TIMEOUT = 20


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    def __init__(self, url: str, swarm: LocalSwarm, dead: str, log: Path) -> None:
        self.url, self.swarm, self.dead, self.log = url, swarm, dead, log


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("openapi")
    clip = tmp / "src" / "clip.mp4"
    clip.parent.mkdir()
    clip.write_bytes(random_bytes(600_000, seed=9))
    swarm = LocalSwarm.from_files([clip], workdir=tmp / "seed")
    dead_port = closed_port()
    dead = make_magnet("ab" * 20, name="nobody", peers=[("127.0.0.1", dead_port)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_") and k.lower() != "http_proxy"}
    env.update({
        "NO_PROXY": "127.0.0.1,localhost", "TSTREAM_TEST": "1",
        "TSTREAM_MEDIA_CACHE": str(tmp / "media"),
        "TSTREAM_METADATA_TIMEOUT": "1", "TSTREAM_PIECE_TIMEOUT": "5", "TSTREAM_PROBE_TIMEOUT": "10",
        "TSTREAM_ANILIST_URL": f"http://127.0.0.1:{dead_port}/graphql",
        "TSTREAM_NYAA_URL": f"http://127.0.0.1:{dead_port}", "TSTREAM_APIBAY_URL": f"http://127.0.0.1:{dead_port}",
        "TSTREAM_SEARCH_TIMEOUT": "2", "TSTREAM_ANILIST_TIMEOUT": "2",
        "TSTREAM_MAX_TORRENTS": "0", "TSTREAM_RATE_LIMIT": "0",
    })
    log = tmp / "server.log"
    with open(log, "wb") as out:   # a file, not a pipe: request logs can never block the server
        proc = subprocess.Popen([sys.executable, "-m", "tstream_kit.cli", "serve", "--offline", "--port", "0",
                                 "--data-dir", str(tmp / "data")], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            m = re.search(r"serving on (http://\S+)", log.read_text(errors="replace"))
            if m:
                url = m.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("server did not start:\n" + log.read_text(errors="replace"))
            else:
                time.sleep(0.1)
        yield Live(url, swarm, dead, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        swarm.close()


def test_every_route_is_documented() -> None:
    documented = set(DOC["paths"])
    for pattern, _cls, _kw in routes(None):  # type: ignore[arg-type]
        path = pattern.replace("([0-9]{1,10})", "{id}")
        assert path in documented, f"{pattern} is not in the OpenAPI document"
    assert len(OPERATIONS) >= 45


def test_every_operation_documents_the_error_shape() -> None:
    for path, method in OPERATIONS:
        responses = DOC["paths"][path][method]["responses"]
        errors = [code for code in responses if code.startswith(("4", "5"))]
        assert errors, (method, path)
        for code in errors:
            assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert DOC["components"]["schemas"]["Error"] == {
        "type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def test_served_document(live: Live) -> None:
    with urllib.request.urlopen(live.url + "/api/openapi.json", timeout=REQUEST_TIMEOUT) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        served = json.load(resp)
    assert served == json.loads(json.dumps(DOC))
    schemathesis.openapi.from_dict(served)   # loads: a valid OpenAPI 3 document


def _allowed_5xx(path: str, status: int, magnet: str | None, live: Live) -> bool:
    if status == 504:   # metadata never came (documented); on a loaded machine even the seeder's
        return magnet is not None   # may miss 1 s: test_live_seeder_answers checks it answers
    if status == 502:   # AniList is a closed port
        return path.startswith("/api/anime/")
    return status == 503   # a documented limit (streams, torrents, transcodes) with Retry-After


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_schemathesis(live: Live, path: str, method: str) -> None:
    operation = schemathesis.openapi.from_dict(DOC)[path][method.upper()]
    failures: list[str] = []
    magnets = [None, live.swarm.magnet, live.swarm.infohash, live.dead]

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), choice=st.integers(0, 3))
    def run(case, choice: int) -> None:
        magnet = None
        if isinstance(case.query, dict) and "magnet" in case.query:
            if magnets[choice] is not None:
                case.query["magnet"] = magnets[choice]
            magnet = case.query["magnet"]
        started = time.monotonic()
        response = case.call(base_url=live.url, timeout=REQUEST_TIMEOUT)
        took = time.monotonic() - started
        ctype = response.headers.get("content-type", [""])[0] if isinstance(response.headers.get("content-type"), list) \
            else str(response.headers.get("content-type", ""))
        body = response.content[:300].decode("utf-8", "replace") if "json" in ctype else f"{len(response.content)} bytes"
        what = f"{method.upper()} {path} query={case.query!r} -> {response.status_code} {body!r}"
        assert took < REQUEST_TIMEOUT, what
        if response.status_code >= 500 and not _allowed_5xx(path, response.status_code, magnet, live):
            failures.append("server error: " + what)
            return
        # raises (and hypothesis reports the case, with a curl line) on any mismatch
        case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                 response_schema_conformance])

    run()
    assert not failures, "\n\n".join(failures[:5]) + "\n\nserver log tail:\n" + live.log.read_text(errors="replace")[-3000:]


def test_live_seeder_answers(live: Live) -> None:
    """The real success bodies (info, stream with Range, torrents, health) match the document:
    the generated cases above mostly meet 4xx answers."""
    schema = schemathesis.openapi.from_dict(DOC)
    info_op = schema["/api/info"]["GET"]
    case = info_op.Case(query={"magnet": live.swarm.magnet})
    deadline = time.monotonic() + 60
    while True:   # metadata from the loopback seeder: retried, in case 1 s was not enough
        response = case.call(base_url=live.url, timeout=REQUEST_TIMEOUT)
        if response.status_code != 504 or time.monotonic() > deadline:
            break
    assert response.status_code == 200, response.content[:300]
    case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                             response_schema_conformance])
    info = json.loads(response.content)
    assert info["infohash"] == live.swarm.infohash and info["files"][0]["size"] == 600_000
    stream = schema["/api/stream"]["GET"].Case(query={"magnet": live.swarm.infohash},
                                               headers={"Range": "bytes=1000-1999"})
    response = stream.call(base_url=live.url, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 206 and response.content == random_bytes(600_000, seed=9)[1000:2000]
    stream.validate_response(response, checks=[status_code_conformance, content_type_conformance])
    for path in ("/api/torrents", "/api/health", "/api/streams", "/api/transcodes"):
        c = schema[path]["GET"].Case()
        r = c.call(base_url=live.url, timeout=REQUEST_TIMEOUT)
        assert r.status_code == 200, path
        c.validate_response(r, checks=[status_code_conformance, content_type_conformance,
                                       response_schema_conformance])


# --- what schemathesis found, pinned (in-process server, fast) ----------------------------------

HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    # libtorrent refuses an all-zero infohash: was a 500 ("missing info-hash from URI")
    ("GET", "/api/info?magnet=magnet:%3Fxt%3Durn:btih:" + "0" * 40, None, 400),
    ("GET", "/api/stream?magnet=magnet:%3Fxt%3Durn:btih:" + "0" * 40, None, 400),
    # integers past SQLite's: were 500s (OverflowError)
    ("GET", f"/api/resume?magnet={HEX}&file_index={2**121}", None, 404),
    ("POST", "/api/history", '{"magnet": "magnet:?xt=urn:btih:%s", "file_index": %d}' % (HEX, 2**70), 400),
    ("POST", "/api/history", '{"magnet": "magnet:?xt=urn:btih:%s", "file_index": 1e400}' % HEX, 400),
])
async def test_found_bugs_stay_fixed(server, method: str, path: str, body: str | None, status: int) -> None:
    from tornado.httpclient import AsyncHTTPClient
    resp = await AsyncHTTPClient().fetch(server.url + path, method=method, body=body, raise_error=False,
                                         headers={"Content-Type": "application/json"} if body else {},
                                         request_timeout=REQUEST_TIMEOUT)
    assert resp.code == status, (resp.code, resp.body[:300])
    assert json.loads(resp.body)["error"]
