"""/api/search end to end: a real server, the fake indexers, Redis, the
catalogue fed by real torrents on a loopback swarm, the client and the CLI."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import tornado.httpclient

from tstream_kit.client import ApiError, Client
from tstream_kit.config import Settings
from tstream_kit.search.http import PUBLIC_MIN_INTERVAL, Fetcher
from tstream_kit.search.nyaa import NyaaProvider
from tstream_kit.search.settings import build_providers
from tstream_kit.search.catalog import Catalog
from tstream_kit.server.app import start_server

from search_fakes import FakeIndexers, make_torrent
from test_cache import OwnRedis, _need_redis, own_redis  # noqa: F401  (fixture)

BBB = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
TSTREAM = [sys.executable, "-m", "tstream_kit.cli"]


async def get(url: str, timeout: float = 20) -> tuple[int, dict]:
    client = tornado.httpclient.AsyncHTTPClient()
    resp = await client.fetch(url, raise_error=False, request_timeout=timeout, connect_timeout=timeout)
    return resp.code, json.loads(resp.body)


def q(**params) -> str:
    return urllib.parse.urlencode(params)


@pytest.fixture
async def fake():
    f = await FakeIndexers().start()
    yield f
    await f.stop()


def search_settings(tmp_path: Path, fake: FakeIndexers, **kw) -> Settings:
    return Settings.from_env({}, data_dir=tmp_path / "data", port=0, **{
        "search_providers": "catalog,nyaa,apibay",
        "nyaa_url": fake.base + "/nyaa/", "apibay_url": fake.base + "/apibay",
        "torznab": f"jackett={fake.jackett_url('all')}|secret", "search_timeout": 1.5, **kw}).offline()


@pytest.fixture
async def srv(tmp_path: Path, fake: FakeIndexers):
    running = await start_server(search_settings(tmp_path, fake))
    yield running
    await running.stop()


async def test_search_merges_ranks_and_reports_each_provider(srv, fake) -> None:
    code, body = await get(f"{srv.url}/api/search?" + q(query="big buck bunny"))
    assert code == 200
    assert set(body["providers"]) == {"catalog", "nyaa", "apibay", "jackett"}
    assert all(p["status"] == "ok" and p["cached"] is False for p in body["providers"].values())
    assert body["providers"]["nyaa"]["count"] == 3 and body["providers"]["jackett"]["count"] == 4
    hashes = [r["infohash"] for r in body["results"]]
    assert len(hashes) == len(set(hashes)) == body["count"]           # de-duplicated
    top = body["results"][0]
    assert top["infohash"] == BBB and top["seeders"] == 688            # the highest count of three
    assert set(top["providers"]) == {"jackett", "nyaa", "apibay"}
    assert top["category"] and top["published"] and top["size"] == 928670754
    seeders = [r["seeders"] for r in body["results"]]
    assert seeders == sorted(seeders, reverse=True)
    for r in body["results"]:
        assert set(r) >= {"title", "size", "magnet", "infohash", "seeders", "leechers", "provider",
                          "published", "category"}
        assert r["magnet"].startswith("magnet:?xt=urn:btih:" + r["infohash"])
    code, limited = await get(f"{srv.url}/api/torrents/search?" + q(query="big buck bunny", limit=2, provider="nyaa"))
    assert code == 200 and limited["count"] == 2 and set(limited["providers"]) == {"nyaa"}


async def test_second_search_is_served_from_the_cache(srv, fake) -> None:
    await get(f"{srv.url}/api/search?" + q(query="Big Buck Bunny"))
    await srv.kit.search.service.drain()
    asked = len(fake.requests)
    code, body = await get(f"{srv.url}/api/search?" + q(query="  big   BUCK bunny "))   # same normalised query
    assert code == 200
    assert {n: p["cached"] for n, p in body["providers"].items()} == \
        {"catalog": False, "nyaa": True, "apibay": True, "jackett": True}
    assert len(fake.requests) == asked
    assert body["results"][0]["infohash"] == BBB


async def test_a_slow_or_failing_provider_never_fails_or_delays_the_search(srv, fake) -> None:
    fake.modes.update(nyaa="slow", apibay="500", torznab="malformed")
    started = time.monotonic()
    code, body = await get(f"{srv.url}/api/search?" + q(query="sintel"))
    elapsed = time.monotonic() - started
    assert code == 200
    st = body["providers"]
    assert st["nyaa"]["status"] == "timeout" and 1400 <= st["nyaa"]["ms"] < 2000
    assert st["apibay"]["status"] == "error" and "503" in st["apibay"]["error"]
    assert st["jackett"]["status"] == "error" and "malformed" in st["jackett"]["error"]
    assert st["catalog"]["status"] == "ok"
    assert elapsed < 2.5, f"search took {elapsed:.1f}s with a 1.5s provider timeout"
    # failures are not cached: the next search asks again
    fake.modes.clear()
    code, body = await get(f"{srv.url}/api/search?" + q(query="sintel"))
    assert all(p["status"] == "ok" and not p["cached"] for p in body["providers"].values())
    assert body["count"] > 0


@pytest.mark.parametrize("raw,message", [
    ("query=", "empty query"),
    ("query=%20%20", "empty query"),
    ("", "missing query"),
    ("query=" + "a" * 513, "too long"),
    ("query=caf%FF", "not valid UTF-8"),
    ("query=a%00b", "control character"),
    ("query=a%0Ab", "control character"),
    ("query=x&provider=google", "unknown provider"),
    ("query=x&limit=0", "limit"),
    ("query=x&limit=many", "limit"),
    ("query=x&sort=random", "sort"),
])
async def test_bad_input_is_a_clear_400(srv, fake, raw, message) -> None:
    code, body = await get(f"{srv.url}/api/search?{raw}")
    assert code == 400 and message in body["error"], body
    assert fake.requests == []          # nothing reached an indexer


async def test_512_characters_are_fine(srv, fake) -> None:
    code, body = await get(f"{srv.url}/api/search?" + q(query="é" * 512))
    assert code == 200 and fake.of("nyaa")[0].args["q"] == "é" * 512


async def test_polite_rate_limit_per_public_host(fake) -> None:
    assert PUBLIC_MIN_INTERVAL >= 2.0
    fetcher = Fetcher()
    try:
        p = NyaaProvider(fetcher, base_url=fake.base + "/nyaa/", timeout=5.0, min_interval=PUBLIC_MIN_INTERVAL)
        await p.search("one")
        await p.search("two")
        a, b = fake.of("nyaa")
        assert b.at - a.at >= PUBLIC_MIN_INTERVAL - 0.01
        # a third request would have to wait past a 0.5 s budget: refused at once, nothing sent
        p.timeout = 0.5
        started = time.monotonic()
        with pytest.raises(Exception, match="rate limit"):
            await p.search("three")
        assert time.monotonic() - started < 0.2 and len(fake.of("nyaa")) == 2
    finally:
        fetcher.close()
    # the kit paces the real public hosts, not a mirror on this machine
    s = Settings.from_env({}, search_providers="nyaa,apibay")
    assert [p.min_interval for p in build_providers(s, Fetcher(), Catalog(Path("/nonexistent")))] == [2.0, 2.0]
    s = Settings.from_env({}, search_providers="nyaa", nyaa_url=fake.base + "/nyaa/")
    assert build_providers(s, Fetcher(), Catalog(Path("/nonexistent")))[0].min_interval == 0.0


# ------------------------------------------------------------------ Redis
async def test_redis_down_search_still_works_and_health_says_so(tmp_path, fake, own_redis) -> None:  # noqa: F811
    settings = search_settings(tmp_path, fake, redis_url=own_redis.url, search_providers="nyaa", torznab="")
    running = await start_server(settings)
    cache = running.kit.search.cache
    cache.monitor_interval = cache.retry_interval = 0.2
    try:
        _, health = await get(f"{running.url}/api/health")
        assert health["redis"] == "up" and health["cache"]["backend"] == "redis"
        _, first = await get(f"{running.url}/api/search?" + q(query="bunny"))
        await running.kit.search.service.drain()
        _, again = await get(f"{running.url}/api/search?" + q(query="bunny"))
        assert again["providers"]["nyaa"]["cached"] is True

        own_redis.stop()
        code, down = await get(f"{running.url}/api/search?" + q(query="bunny"))
        assert code == 200 and down["providers"]["nyaa"] == {**down["providers"]["nyaa"], "status": "ok", "cached": False}
        assert down["count"] == 3
        _, health = await get(f"{running.url}/api/health")
        assert health["redis"] == "down" and health["status"] == "ok"

        own_redis.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _, health = await get(f"{running.url}/api/health")
            if health["redis"] == "up":
                break
            await asyncio.sleep(0.1)
        assert health["redis"] == "up"
        await get(f"{running.url}/api/search?" + q(query="bunny"))
        await running.kit.search.service.drain()
        _, back = await get(f"{running.url}/api/search?" + q(query="bunny"))
        assert back["providers"]["nyaa"]["cached"] is True          # caching resumed
    finally:
        await running.stop()


# -------------------------------------------------------------- catalogue
@pytest.mark.slow
async def test_catalogue_remembers_streamed_torrents_and_info_needs_no_swarm(tmp_path, fake, make_file, make_swarm) -> None:
    _need_redis()
    src = make_file("Night.of.the.Living.Dead.1968.mp4", 700_000, seed=5)
    swarm = make_swarm([src])
    prefix = f"tstream-test-{uuid.uuid4().hex[:12]}:"
    settings = search_settings(tmp_path, fake, search_providers="catalog", torznab="",
                               redis_url="redis://127.0.0.1:6379/0", cache_prefix=prefix)
    running = await start_server(settings)
    try:
        code, info = await get(f"{running.url}/api/info?" + q(magnet=swarm.magnet))
        assert code == 200 and info["infohash"] == swarm.infohash
        code, body = await get(f"{running.url}/api/search?" + q(query="living dead 1968"))
        assert code == 200 and body["count"] == 1
        hit = body["results"][0]
        assert hit["infohash"] == swarm.infohash and hit["provider"] == "catalog"
        assert hit["size"] == 700_000 and "x.pe=" in hit["magnet"]     # the magnet as added, with its peer
        await asyncio.sleep(0.1)
        assert await running.kit.search.cache.get(f"magnet:{swarm.infohash}")   # metadata cached in Redis
    finally:
        await running.stop()
    swarm.close()                                     # no peer any more
    for source in ("catalogue", "redis"):
        s = settings
        if source == "redis":                         # a fresh data dir: only Redis knows it
            s = settings.replace(data_dir=tmp_path / "other")
        running = await start_server(s.replace(metadata_timeout=3))
        try:
            started = time.monotonic()
            code, info = await get(f"{running.url}/api/info?" + q(magnet=swarm.infohash))
            assert code == 200 and info["files"][0]["path"].endswith("Living.Dead.1968.mp4"), (source, info)
            assert time.monotonic() - started < 1.0
            if source == "catalogue":
                _, body = await get(f"{running.url}/api/search?" + q(query="night"))
                assert body["count"] == 1                # persisted in the data dir
        finally:
            if source == "redis":
                assert await running.kit.search.cache.clear() >= 1   # our keys, deleted
            await running.stop()


async def test_catalogue_folder_of_torrent_files(tmp_path, fake) -> None:
    folder = tmp_path / "torrents"
    folder.mkdir()
    data, ih = make_torrent("Charade (1963)", [("Charade.1963.720p.mkv", 1_000_000), ("extras/trailer.mp4", 5000)])
    (folder / "charade.torrent").write_bytes(data)
    (folder / "broken.torrent").write_bytes(b"d4:infoi3e")
    running = await start_server(search_settings(tmp_path, fake, search_providers="catalog", torznab="",
                                                 catalog_dir=str(folder)))
    try:
        _, body = await get(f"{running.url}/api/search?" + q(query="trailer"))   # a file name
        assert [r["infohash"] for r in body["results"]] == [ih]
        assert body["results"][0]["size"] == 1_005_000
        data2, ih2 = make_torrent("His Girl Friday", [("His.Girl.Friday.1940.mkv", 10)])
        (folder / "friday.torrent").write_bytes(data2)
        os.utime(folder, (time.time() + 5, time.time() + 5))
        _, body = await get(f"{running.url}/api/search?" + q(query="girl friday"))
        assert [r["infohash"] for r in body["results"]] == [ih2]              # re-read when it changed
    finally:
        await running.stop()


# ------------------------------------------------------------ client, CLI
async def test_client_search_info_health(srv, fake, make_file, make_swarm) -> None:
    swarm = make_swarm([make_file("clip.webm", 300_000, seed=9)])
    client = Client(srv.url, timeout=20)
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(None, lambda: client.search("big buck bunny", provider="apibay", limit=1))
    assert answer["count"] == 1 and answer["results"][0]["infohash"] == BBB
    assert answer["providers"]["apibay"]["status"] == "ok"
    info = await loop.run_in_executor(None, client.info, swarm.magnet)
    assert info["infohash"] == swarm.infohash
    health = await loop.run_in_executor(None, client.health)
    assert health["redis"] == "not configured" and health["cache"]["backend"] == "memory"
    with pytest.raises(ApiError) as err:
        await loop.run_in_executor(None, client.search, "")
    assert err.value.status == 400 and "empty query" in err.value.message


def test_cli_search(tmp_path: Path) -> None:
    folder = tmp_path / "torrents"
    folder.mkdir()
    data, ih = make_torrent("Big Buck Bunny", [("bbb_sunflower_1080p_30fps.mp4", 276134947)])
    (folder / "bbb.torrent").write_bytes(data)
    env = {**os.environ, "TSTREAM_CATALOG_DIR": str(folder), "TSTREAM_DATA_DIR": str(tmp_path / "d")}
    r = subprocess.run(TSTREAM + ["search", "sunflower"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Big Buck Bunny" in r.stdout and f"btih:{ih}" in r.stdout and "263.3 MiB" in r.stdout
    assert "catalog: ok" in r.stderr
    r = subprocess.run(TSTREAM + ["search", "sunflower", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(r.stdout)["results"][0]["infohash"] == ih
    r = subprocess.run(TSTREAM + ["search", "nothing here"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "no results" in r.stdout
    r = subprocess.run(TSTREAM + ["search", "a\x01b"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "control character" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_demo_clip_is_found_by_search(tmp_path: Path) -> None:
    from test_cli import _env, _stop, _wait_line
    proc = subprocess.Popen(TSTREAM + ["demo", "--port", "0", "--seconds", "4", "--data-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path))
    try:
        magnet = _wait_line(proc, r"magnet:\s+(\S+)", 120).group(1)
        url = _wait_line(proc, r"search:\s+(\S+)", 10).group(1)
        body = json.loads(__import__("urllib.request").request.urlopen(url, timeout=30).read())
        assert body["results"] and body["results"][0]["magnet"] == magnet
        assert body["results"][0]["provider"] == "catalog"
    finally:
        _stop(proc)
