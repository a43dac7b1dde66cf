"""Limits (issue 8): rate limit, max torrents and streams, upload size, disk
quota eviction, HTTP timeouts. Real servers on unused ports, real swarms."""
from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from conftest import PIECE, sha256
from tstream_kit.config import Settings
from tstream_kit.engine import FileReader
from tstream_kit.magnets import make_magnet
from tstream_kit.ops.limits import LimitExceeded, RateLimiter, disk_usage
from tstream_kit.server.app import start_server


async def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
               timeout: float = 30) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, method=method, body=body, headers=headers or {},
                                         raise_error=False, request_timeout=timeout,
                                         allow_nonstandard_methods=True)


def make_settings(tmp_path: Path, **kw) -> Settings:
    return Settings.from_env({}, data_dir=tmp_path / "data", port=0).offline().replace(**kw)


@pytest.fixture
async def limited(tmp_path: Path, request):
    running = await start_server(make_settings(tmp_path, **request.param))
    yield running
    await running.stop()


def test_token_bucket_burst_refill_and_retry_after() -> None:
    now = [0.0]
    rl = RateLimiter(60, burst=3, clock=lambda: now[0])      # one a second
    assert [rl.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.take("a") == pytest.approx(1.0)
    assert rl.take("b") == 0.0                                 # per client
    with pytest.raises(LimitExceeded) as e:
        rl.check("a")
    assert e.value.status == 429 and e.value.retry_after >= 1 and "TSTREAM_RATE_LIMIT" in str(e.value)
    now[0] += 1.0
    assert rl.take("a") == 0.0
    assert RateLimiter(0).take("x") == 0.0                     # 0 = off


@pytest.mark.parametrize("limited", [{"rate_limit": 60, "trust_proxy": True}], indirect=True)
async def test_rate_limit_429_per_client_with_retry_after(limited) -> None:
    url = limited.url + "/api/health"
    a = {"X-Real-IP": "203.0.113.7"}
    codes = [(await call(url, headers=a)).code for _ in range(10)]      # burst: max(10, 60/6)
    assert codes == [200] * 10
    r = await call(url, headers=a)
    assert r.code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "too many requests" in json.loads(r.body)["error"]
    assert (await call(url, headers={"X-Real-IP": "203.0.113.8"})).code == 200   # another client
    assert (await call(url)).code == 200                                         # loopback: not limited


@pytest.mark.parametrize("limited", [{"rate_limit": 60, "trust_proxy": True}], indirect=True)
async def test_range_requests_of_a_playing_stream_are_not_counted(limited, make_file, make_swarm) -> None:
    src = make_file("film.mp4", 8 * PIECE + 5, seed=3)
    data = src.read_bytes()
    swarm = make_swarm([src])
    q = urllib.parse.quote(swarm.magnet, safe="")
    client = {"X-Real-IP": "198.51.100.4"}
    first = await call(f"{limited.url}/api/stream?magnet={q}", headers={**client, "Range": "bytes=0-"})
    assert first.code == 206 and sha256(first.body) == sha256(data)
    # a player seeking around: 40 Range requests, far beyond the burst of 10
    for i in range(40):
        start = (i * 7919 * 13) % len(data)
        r = await call(f"{limited.url}/api/stream?magnet={q}",
                       headers={**client, "Range": f"bytes={start}-{start + 999}"})
        assert r.code == 206, (i, r.code, r.body[:200])
        assert r.body == data[start:start + 1000]
    # other API calls from that client are still counted
    codes = [(await call(limited.url + "/api/health", headers=client)).code for _ in range(12)]
    assert 429 in codes


@pytest.mark.parametrize("limited", [{"max_torrents": 1}], indirect=True)
async def test_max_torrents_503_with_a_clear_message(limited, make_file, make_swarm) -> None:
    s1 = make_swarm([make_file("a.mp4", 2 * PIECE, seed=1)])
    r = await call(f"{limited.url}/api/info?magnet={urllib.parse.quote(s1.magnet, safe='')}")
    assert r.code == 200
    other = make_magnet("%040x" % 0xC0FFEE, name="other", peers=[("127.0.0.1", 1)])
    r = await call(f"{limited.url}/api/info?magnet={urllib.parse.quote(other, safe='')}")
    assert r.code == 503 and r.headers["Retry-After"]
    assert "TSTREAM_MAX_TORRENTS" in json.loads(r.body)["error"]
    # the torrent already there still answers
    assert (await call(f"{limited.url}/api/info?magnet={s1.infohash}")).code == 200


@pytest.mark.parametrize("limited", [{"max_streams": 1}], indirect=True)
async def test_max_streams_503_but_a_seek_by_the_same_viewer_passes(limited, make_file, make_swarm) -> None:
    swarm = make_swarm([make_file("b.mp4", 3 * PIECE, seed=2)])
    kit = limited.kit
    torrent = await kit.torrent_with_metadata(swarm.magnet)
    f = kit.pick_file(torrent, None)
    first = kit.open_reader(torrent, f, client="10.0.0.1")
    try:
        second = kit.open_reader(torrent, f, client="10.0.0.1")    # the same viewer seeking
        second.close()
        with pytest.raises(LimitExceeded) as e:
            kit.open_reader(torrent, f, client="10.0.0.2")
        assert e.value.status == 503 and "TSTREAM_MAX_STREAMS" in str(e.value)
        r = await call(f"{limited.url}/api/stream?magnet={swarm.infohash}", headers={"Range": "bytes=0-9"})
        assert r.code == 503 and "TSTREAM_MAX_STREAMS" in json.loads(r.body)["error"]
    finally:
        first.close()
    r = await call(f"{limited.url}/api/stream?magnet={swarm.infohash}", headers={"Range": "bytes=0-9"})
    assert r.code == 206


@pytest.mark.parametrize("limited", [{"max_upload_size": 4096}], indirect=True)
async def test_request_bodies_over_the_upload_limit_get_413(limited) -> None:
    r = await call(limited.url + "/api/history", "POST", b"x" * 5000,
                   headers={"Content-Type": "application/json"})
    assert r.code == 413
    assert "TSTREAM_MAX_UPLOAD_SIZE" in json.loads(r.body)["error"]
    # far beyond: refused before the body is read (connection closed or 400)
    r = await call(limited.url + "/api/history", "POST", b"x" * 100_000)
    assert r.code in (400, 413, 599)
    assert (await call(limited.url + "/api/health")).code == 200


@pytest.mark.parametrize("limited", [{"http_body_timeout": 0.5, "http_idle_timeout": 0.5}], indirect=True)
async def test_slow_bodies_and_idle_connections_are_closed(limited) -> None:
    loop = asyncio.get_running_loop()

    def closed_within(payload: bytes, limit: float) -> float:
        with socket.create_connection(("127.0.0.1", limited.port), timeout=10) as s:
            s.sendall(payload)
            t0 = time.monotonic()
            s.settimeout(limit)
            while s.recv(65536):
                pass
            return time.monotonic() - t0

    # a body that never finishes arriving
    took = await loop.run_in_executor(None, closed_within,
                                      b"POST /api/history HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Content-Length: 100\r\n\r\nabc", 5)
    assert took < 3
    # a connection that never sends a request
    took = await loop.run_in_executor(None, closed_within, b"", 5)
    assert took < 3


async def test_disk_quota_evicts_least_recently_watched_idle_torrent(tmp_path: Path, make_file, make_swarm) -> None:
    size = 16 * PIECE
    srcs = [make_file(f"m{i}.mp4", size, seed=40 + i) for i in range(3)]
    swarms = [make_swarm([s]) for s in srcs]
    running = await start_server(make_settings(tmp_path))
    kit = running.kit
    try:
        torrents = []
        for s, src in zip(swarms, srcs):
            t = await kit.torrent_with_metadata(s.magnet)
            r = FileReader(t, t.file(0), piece_timeout=20)
            assert sha256(await r.read_exact(0, size)) == sha256(src.read_bytes())
            r.close()
            torrents.append(t)
        await kit.engine.save_all_resume_data(5)   # flushes writes: usage is what is on disk
        old, recent, playing = torrents
        old.last_read_at, recent.last_read_at = time.time() - 3600, time.time() - 60
        reader = FileReader(playing, playing.file(0), piece_timeout=20)   # someone is watching
        playing.last_read_at = time.time() - 7200                          # ... longest ago, even
        try:
            used = disk_usage(kit.engine.download_dir)
            assert used >= 3 * size
            kit.settings = kit.settings.replace(disk_quota=used - size // 2)    # one must go
            evicted = await kit.housekeeper.run_once()
            assert evicted == [old.infohash]
            kit.settings = kit.settings.replace(disk_quota=size // 2)        # all idle must go
            evicted = await kit.housekeeper.run_once()
            assert evicted == [recent.infohash]
            assert [t.infohash for t in kit.engine.torrents()] == [playing.infohash]
            deadline = time.monotonic() + 10
            while (kit.engine.download_dir / "m0.mp4").exists():
                assert time.monotonic() < deadline, "evicted files were not deleted"
                await asyncio.sleep(0.05)
            assert (kit.engine.download_dir / "m2.mp4").exists()
            assert not (kit.engine.resume.path(old.infohash)).exists()
        finally:
            reader.close()
    finally:
        await running.stop()
