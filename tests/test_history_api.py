"""The history API on a real server (SQLite store in the test's data dir):
sessions, history, resume, popular, and one watch per playback of a stream."""
from __future__ import annotations

import json
import urllib.parse
import uuid
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from conftest import PIECE
from tstream_kit.server.app import RunningServer

IH = "%040x" % 0xBEEF
MAGNET = f"magnet:?xt=urn:btih:{IH}&dn=Big%20Movie&x.pe=127.0.0.1:1"


async def call(url: str, method: str = "GET", body: object = None, headers: dict | None = None,
               **kw) -> HTTPResponse:
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    return await AsyncHTTPClient().fetch(url, method=method, body=data, headers=headers or {},
                                         raise_error=False, request_timeout=30,
                                         allow_nonstandard_methods=True, **kw)


def cookie_of(r: HTTPResponse) -> str | None:
    for value in r.headers.get_list("Set-Cookie"):
        c = SimpleCookie(value)
        if "session_id" in c:
            return c["session_id"].value
    return None


class Browser:
    """Keeps the session cookie like a browser does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookie: str | None = None

    async def __call__(self, path: str, method: str = "GET", body: object = None, **kw) -> HTTPResponse:
        headers = dict(kw.pop("headers", {}) or {})
        if self.cookie:
            headers["Cookie"] = f"session_id={self.cookie}"
        r = await call(self.base + path, method, body, headers, **kw)
        self.cookie = cookie_of(r) or self.cookie
        return r


def js(r: HTTPResponse) -> dict:
    return json.loads(r.body)


async def test_cookie_is_signed_httponly_samesite_and_sticks(server: RunningServer) -> None:
    r = await call(server.url + "/api/session")
    assert r.code == 200
    raw = r.headers["Set-Cookie"]
    assert "HttpOnly" in raw and "SameSite=Lax" in raw and "Path=/" in raw
    token = cookie_of(r)
    sid = js(r)["session_id"]
    assert token and token.startswith(sid + ".")
    r2 = await call(server.url + "/api/session", headers={"Cookie": f"session_id={token}"})
    assert js(r2)["session_id"] == sid and not js(r2)["fresh"] and cookie_of(r2) is None
    # the player page issues it too
    page = await call(server.url + "/")
    assert page.code == 200 and cookie_of(page)


async def test_history_is_private_and_a_forged_cookie_gets_a_fresh_session(server: RunningServer) -> None:
    alice = Browser(server.url)
    r = await alice("/api/history", "POST", {"magnet": MAGNET, "file_index": 0, "position_s": 42.5,
                                             "duration_s": 5400})
    assert r.code == 200, r.body
    watch = js(r)["watch"]
    assert watch["position_s"] == 42.5 and watch["title"] == "Big Movie" and "x.pe" not in watch["magnet"]
    alice_sid = alice.cookie.split(".")[0]

    mine = js(await alice("/api/history"))["watches"]
    assert [w["id"] for w in mine] == [watch["id"]]

    # forged: alice's id with a made-up signature; tampered: one character changed
    for forged in (alice_sid + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                   alice.cookie[:-1] + ("A" if alice.cookie[-1] != "A" else "B"),
                   alice_sid):
        r = await call(server.url + "/api/history", headers={"Cookie": f"session_id={forged}"})
        assert r.code == 200 and js(r)["watches"] == []
        assert js(r)["session_id"] != alice_sid
        assert cookie_of(r) and cookie_of(r) != alice.cookie          # a fresh session
    bob = Browser(server.url)
    assert js(await bob("/api/history"))["watches"] == []
    resume = js(await bob(f"/api/resume?{urllib.parse.urlencode({'magnet': MAGNET, 'file_index': 0})}"))
    assert resume["found"] is False
    # bob cannot move alice's watch by naming its id
    r = await bob("/api/history", "POST", {"magnet": MAGNET, "file_index": 0, "position_s": 1, "id": watch["id"]})
    assert r.code == 404
    got = js(await alice(f"/api/resume?{urllib.parse.urlencode({'magnet': IH, 'file_index': 0})}"))
    assert got["found"] and got["position_s"] == 42.5 and got["watch_id"] == watch["id"]


async def test_explicit_session_token_for_api_clients(server: RunningServer) -> None:
    r = await call(server.url + "/api/session", "POST", b"")
    assert r.code == 201
    token = js(r)["token"]
    h = {"X-Session-Id": token}
    assert (await call(server.url + "/api/history", "POST",
                       {"magnet": IH, "file_index": 1, "position_s": 10}, headers=h)).code == 200
    listed = js(await call(server.url + "/api/history", headers=h))
    assert listed["session_id"] == js(r)["session_id"] and len(listed["watches"]) == 1
    q = urllib.parse.urlencode({"session": token})
    assert len(js(await call(f"{server.url}/api/history?{q}"))["watches"]) == 1
    bad = await call(server.url + "/api/history", headers={"X-Session-Id": token[:-2] + "xx"})
    assert bad.code == 401 and "POST /api/session" in js(bad)["error"]
    raw_id = await call(server.url + "/api/history", headers={"X-Session-Id": js(r)["session_id"]})
    assert raw_id.code == 401


async def test_position_updates_one_watch_and_pagination(server: RunningServer) -> None:
    b = Browser(server.url)
    first = js(await b("/api/history", "POST", {"magnet": MAGNET, "file_index": 0, "position_s": 5}))["watch"]
    for pos in (15, 25, 35):
        w = js(await b("/api/history", "POST", {"magnet": MAGNET, "file_index": 0, "position_s": pos}))["watch"]
        assert w["id"] == first["id"]           # the same playback
    assert js(await b(f"/api/resume?{urllib.parse.urlencode({'magnet': MAGNET, 'file_index': 0})}"))["position_s"] == 35
    # a client-made id is idempotent: the retry is the same watch
    wid = str(uuid.uuid4())
    for _ in range(2):
        r = await b("/api/history", "POST", {"magnet": "%040x" % 7, "file_index": 2, "position_s": 3, "id": wid})
        assert r.code == 200 and js(r)["watch"]["id"] == wid
    for i in range(7):
        await b("/api/history", "POST", {"magnet": "%040x" % (100 + i), "file_index": 0})
    seen, before = [], None
    while True:
        q = {"limit": 3, **({"before": before} if before else {})}
        page = js(await b(f"/api/history?{urllib.parse.urlencode(q)}"))
        seen += [w["id"] for w in page["watches"]]
        before = page["next_before"]
        if not before:
            break
    assert len(seen) == len(set(seen)) == 9
    assert seen[-1] == first["id"]              # newest first: the first watch comes last
    popular = js(await b("/api/popular?days=30&limit=100"))
    counts = {t["infohash"]: (t["watches"], t["sessions"]) for t in popular["torrents"]}
    assert counts[IH] == (1, 1) and len(counts) == 9


@pytest.mark.parametrize("path, status", [
    ("/api/history?limit=0", 400), ("/api/history?limit=x", 400), ("/api/history?before=soon", 400),
    ("/api/popular?days=0", 400), ("/api/popular?days=99999", 400), ("/api/resume", 400),
    ("/api/resume?magnet=nope", 400),
])
async def test_bad_parameters(server: RunningServer, path: str, status: int) -> None:
    r = await call(server.url + path)
    assert r.code == status and "error" in js(r)


@pytest.mark.parametrize("body", [b"not json", b"[1]", json.dumps({"file_index": 0}).encode(),
                                  json.dumps({"magnet": IH, "position_s": -1}).encode(),
                                  json.dumps({"magnet": IH, "position_s": "NaN"}).encode(),
                                  json.dumps({"magnet": IH, "file_index": "x"}).encode(),
                                  json.dumps({"magnet": IH, "id": "123"}).encode()])
async def test_bad_bodies(server: RunningServer, body: bytes) -> None:
    r = await call(server.url + "/api/history", "POST", body)
    assert r.code == 400 and js(r)["error"]


@pytest.mark.slow
async def test_a_stream_records_one_watch_per_playback(server: RunningServer, make_swarm, make_file) -> None:
    movie = make_file("clip.mp4", 9 * PIECE + 123, seed=4)
    other = make_file("extra.mp4", 3 * PIECE, seed=5)
    swarm = make_swarm([movie, other], name="Two Clips")
    q = urllib.parse.urlencode({"magnet": swarm.magnet})
    size = movie.stat().st_size
    browser = Browser(server.url)
    await browser("/")                                   # the page sets the cookie
    for start in (0, size - 1000, 4 * PIECE, 100, 0):    # the requests a <video> makes
        r = await browser(f"/api/stream?{q}", headers={"Range": f"bytes={start}-{min(size - 1, start + PIECE)}"})
        assert r.code == 206
    head = await browser(f"/api/stream?{q}", "HEAD")
    assert head.code == 200
    # a player that keeps no cookies (VLC, mpv): many requests, one playback
    for start in (0, 2 * PIECE, 5 * PIECE):
        r = await call(f"{server.url}/api/stream?{q}", headers={"Range": f"bytes={start}-{start + 999}",
                                                                "User-Agent": "VLC/3.0"})
        assert r.code == 206
    await server.kit.history.flush()
    mine = js(await browser("/api/history"))["watches"]
    assert len(mine) == 1 and mine[0]["infohash"] == swarm.infohash and mine[0]["title"] == "Two Clips"
    assert mine[0]["file_path"].endswith("clip.mp4")
    popular = js(await browser("/api/popular"))["torrents"]
    assert [(t["infohash"], t["watches"], t["sessions"]) for t in popular] == [(swarm.infohash, 2, 2)]
    # another file of the torrent is another playback
    idx = next(i for i, f in enumerate(js(await browser(f"/api/info?{q}"))["files"])
               if f["path"].endswith("extra.mp4"))
    r = await browser(f"/api/stream?{q}&file_index={js(await browser(f'/api/info?{q}'))['files'][idx]['index']}")
    assert r.code == 200
    await server.kit.history.flush()
    assert len(js(await browser("/api/history"))["watches"]) == 2


async def test_health_reports_history(server: RunningServer) -> None:
    h = js(await call(server.url + "/api/health"))
    assert h["history"]["store"] == "sqlite" and h["history"]["migrated"] is True
    assert (Path(server.kit.settings.data_dir) / "secret").stat().st_mode & 0o077 == 0
