"""Access control (issue 8): the API token on every path, CORS only for the
configured origin, a public bind refused without a token, logs of requests."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tstream_kit.config import ConfigError, Settings
from tstream_kit.ops.logs import JsonFormatter
from tstream_kit.server.app import routes, start_server

TOKEN = "t0ken-for-tests-0123456789"
IH = "%040x" % 0xFACE
MAGNET = f"magnet:?xt=urn:btih:{IH}&dn=Secret%20Film&x.pe=127.0.0.1:1"


async def call(url: str, method: str = "GET", body: object = None, headers: dict | None = None) -> HTTPResponse:
    data = None if body is None else json.dumps(body)
    return await AsyncHTTPClient().fetch(url, method=method, body=data, headers=headers or {},
                                         raise_error=False, request_timeout=30,
                                         allow_nonstandard_methods=True, follow_redirects=False)


@pytest.fixture
async def guarded(tmp_path: Path):
    s = Settings.from_env({}, data_dir=tmp_path / "data", port=0).offline().replace(
        api_token=TOKEN, cors_origin="https://app.example.org")
    running = await start_server(s)
    yield running
    await running.stop()


def every_path() -> list[str]:
    paths = [p for p, _cls, _kw in routes(kit=None)]   # type: ignore[arg-type]
    return [p.replace(r"(?P<path>.*)", "x") for p in paths] + ["/no/such/path"]


async def test_no_token_401_on_every_path(guarded) -> None:
    for path in every_path():
        for method in ("GET", "POST", "DELETE"):
            r = await call(guarded.url + path, method, body={} if method == "POST" else None)
            assert r.code == 401, (method, path, r.code)
            assert "API token" in json.loads(r.body)["error"]
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await call(guarded.url + "/api/health", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert r.code == 401


async def test_token_by_header_cookie_and_the_page_sets_the_cookie(guarded) -> None:
    url = guarded.url + "/api/health"
    assert (await call(url, headers={"Authorization": f"Bearer {TOKEN}"})).code == 200
    assert (await call(url, headers={"X-Tstream-Token": TOKEN})).code == 200
    assert (await call(url, headers={"Cookie": f"tstream_token={TOKEN}"})).code == 200
    r = await call(guarded.url + f"/?token={TOKEN}")
    assert r.code == 200
    cookie = [c for c in r.headers.get_list("Set-Cookie") if c.startswith("tstream_token=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await call(guarded.url + "/?token=wrong")).code == 401
    # a token in the query of an API path is not accepted (it would end up in logs and history)
    assert (await call(url + f"?token={TOKEN}")).code == 401


async def test_cors_only_for_the_configured_origin(guarded) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    ok = await call(guarded.url + "/api/health", headers={**auth, "Origin": "https://app.example.org"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
    bad = await call(guarded.url + "/api/health", headers={**auth, "Origin": "https://evil.example"})
    assert bad.code == 200
    assert not [h for h in bad.headers if h.lower().startswith("access-control-")]
    pre = await call(guarded.url + "/api/streams", "OPTIONS",
                     headers={"Origin": "https://app.example.org",
                              "Access-Control-Request-Headers": "authorization"})
    assert pre.code == 204 and "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    pre = await call(guarded.url + "/api/streams", "OPTIONS", headers={"Origin": "https://evil.example"})
    assert not [h for h in pre.headers if h.lower().startswith("access-control-")]


async def test_one_session_cannot_read_another_history_behind_the_token(guarded) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = await call(guarded.url + "/api/history", "POST",
                   {"magnet": MAGNET, "file_index": 0, "position_s": 12}, headers=auth)
    assert r.code == 200, r.body
    alice_cookie = [c.split(";")[0] for c in r.headers.get_list("Set-Cookie") if c.startswith("session_id=")][0]
    mine = json.loads((await call(guarded.url + "/api/history",
                                  headers={**auth, "Cookie": alice_cookie})).body)["watches"]
    assert [w["title"] for w in mine] == ["Secret Film"]
    # the same token, another browser: nothing of alice's
    theirs = json.loads((await call(guarded.url + "/api/history", headers=auth)).body)["watches"]
    assert theirs == []


async def test_public_bind_without_token_refuses_to_start(tmp_path: Path) -> None:
    s = Settings.from_env({}, data_dir=tmp_path / "d", port=0, host="0.0.0.0").offline()
    with pytest.raises(ConfigError) as e:
        await start_server(s)
    assert "TSTREAM_API_TOKEN" in str(e.value)
    assert not (tmp_path / "d").exists()          # refused before anything started


async def test_request_log_lines_are_structured(guarded) -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tstream.http")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        await call(guarded.url + f"/api/health?token={TOKEN}", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert line["event"] == "request" and line["status"] == 200 and line["method"] == "GET"
    assert line["bytes"] > 10 and line["ms"] >= 0 and line["client"] == "127.0.0.1"
    assert TOKEN not in buf.getvalue() and "token=***" in line["path"]
