"""The anime API on a real server, with AniList and Nyaa as local servers in
their own formats (nothing leaves 127.0.0.1): catalogue, episodes with
availability and quality, torrents per episode (trusted first, remakes passed
over, a batch mapped to its file), the table cache in SQLite and PostgreSQL,
AniList's 429, indexers failing, and "next episode" from history."""
from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
import tornado.httpclient

from anime_fakes import AnimeFakes
from history_support import pg_schema, schema_url  # noqa: F401 - fixture
from search_fakes import make_torrent
from tstream_kit.config import Settings
from tstream_kit.search.bencode import torrent_meta
from tstream_kit.server.app import start_server

FRIEREN = 154587
A = lambda c: (c * 20)[:40]   # the fixture's infohashes: "a1" -> a1a1...

BATCH_FILES = [("Extras/NCOP.mkv", 50_000_000), ("[Judas] Sousou no Frieren - 01.mkv", 700_000_000),
               ("[Judas] Sousou no Frieren - 02.mkv", 700_000_000), ("[Judas] Sousou no Frieren - 03.mkv", 700_000_000),
               ("Subs/[Judas] Sousou no Frieren - 02.ass", 40_000)]


async def call(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None,
               timeout: float = 30) -> tuple[int, dict, dict]:
    client = tornado.httpclient.AsyncHTTPClient()
    resp = await client.fetch(url, method=method, raise_error=False, request_timeout=timeout,
                              connect_timeout=timeout, headers=headers,
                              body=json.dumps(body) if body is not None else None)
    return resp.code, json.loads(resp.body or b"null"), dict(resp.headers)


@pytest.fixture
async def fake():
    f = await AnimeFakes().start()
    yield f
    await f.stop()


def anime_settings(tmp_path: Path, fake: AnimeFakes, database_url: str = "") -> Settings:
    return Settings.from_env({}, data_dir=tmp_path / "data", port=0, anilist_url=fake.anilist_url,
                             nyaa_url=fake.nyaa_url, anime_providers="nyaa", search_timeout=5.0,
                             anilist_timeout=5.0, database_url=database_url).offline()


@pytest.fixture(params=["sqlite", "postgres"])
async def srv(request, tmp_path: Path, fake: AnimeFakes):
    url = "" if request.param == "sqlite" else schema_url(request.getfixturevalue("pg_schema"))
    _data, ih = make_torrent("Sousou no Frieren (01-03) [BD 1080p]", BATCH_FILES)
    fake.batch_infohash = ih
    running = await start_server(anime_settings(tmp_path, fake, url))
    running.batch_info = torrent_meta(_data).info
    yield running
    await running.stop()


async def test_catalogue_endpoints(srv, fake: AnimeFakes) -> None:
    code, body, _ = await call(f"{srv.url}/api/anime/search?query=frieren")
    assert code == 200 and [s["id"] for s in body["results"]] == [FRIEREN]
    assert body["results"][0]["title"]["english"] == "Frieren: Beyond Journey’s End"
    code, body, _ = await call(f"{srv.url}/api/anime/trending?per_page=5")
    assert code == 200 and len(body["results"]) == 3
    code, body, _ = await call(f"{srv.url}/api/anime/popular")
    assert code == 200 and body["results"][0]["id"] == 101922
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}")
    assert code == 200 and body["episodes"] == 28 and body["cached"] is False
    assert body["genres"] == ["Adventure", "Drama", "Fantasy"] and body["synonyms"][0] == "Frieren at the Funeral"
    n = len(fake.of("anilist"))
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}")
    assert code == 200 and body["cached"] is True and len(fake.of("anilist")) == n   # from the anime table
    # bad input and unknown shows
    assert (await call(f"{srv.url}/api/anime/search"))[0] == 400
    assert (await call(f"{srv.url}/api/anime/search?query=" + "x" * 300))[0] == 400
    assert (await call(f"{srv.url}/api/anime/trending?per_page=500"))[0] == 400
    code, body, _ = await call(f"{srv.url}/api/anime/424242")
    assert code == 404 and "424242" in body["error"]
    assert (await call(f"{srv.url}/api/anime/{FRIEREN}/torrents"))[0] == 400
    assert (await call(f"{srv.url}/api/anime/{FRIEREN}/torrents?episode=0"))[0] == 400
    assert (await call(f"{srv.url}/api/anime/abc"))[0] == 404


async def test_episodes_and_torrents(srv, fake: AnimeFakes) -> None:
    await srv.kit.search.cache.set(f"magnet:{fake.batch_infohash}", srv.batch_info, 60)
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/episodes")
    assert code == 200, body
    eps = {e["episode"]: e for e in body["episodes"]}
    assert len(eps) == 28 and body["aired"] == 28
    assert [e for e in eps if eps[e]["available"]] == [1, 2, 3]     # 29 and "2nd Season" are not this show's
    assert set(eps[1]["qualities"]) == {"1080p", "720p"}
    assert set(eps[2]["qualities"]) == {"1080p", "480p"}
    # Nyaa's trusted release beats more seeders; the remake (5000 seeders) is passed over
    assert eps[1]["best"]["infohash"] == A("a1") and eps[1]["best"]["trusted"] is True
    assert eps[2]["best"]["infohash"] == A("a4")
    assert eps[3]["best"]["infohash"] == A("a9") and eps[3]["best"]["version"] == 2
    assert not eps[4]["available"] and eps[4]["best"] is None
    nyaa = fake.of("nyaa")
    assert nyaa and all(r["c"] == "1_0" for r in nyaa)               # Nyaa's anime category
    assert {r["q"] for r in nyaa} == {"Sousou no Frieren", "Frieren Beyond Journey’s End"}

    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/torrents?episode=2")
    assert code == 200 and body["cached"] is True                    # from episode_torrents
    hashes = [t["infohash"] for q in body["qualities"].values() for t in q]
    assert A("a5") not in hashes                                     # the remake
    assert [t["infohash"] for t in body["qualities"]["1080p"]] == [A("a4"), fake.batch_infohash]
    batch = body["qualities"]["1080p"][1]
    assert batch["batch"] is True and batch["file_index"] == 2
    assert batch["file_path"].endswith("[Judas] Sousou no Frieren - 02.mkv")
    assert batch["codec"] == "x265" and batch["source"] == "BD" and batch["release_group"] == "Judas"
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/torrents?episode=3")
    t3 = {t["infohash"]: t for q in body["qualities"].values() for t in q}
    assert t3[A("a8")]["source"] == "WEB" and t3[A("a8")]["release_group"] == "VARYG"   # the English title, scene style
    assert t3[fake.batch_infohash]["file_index"] == 3
    # a second look at the episodes asks nobody
    n_nyaa, n_anilist = len(fake.of("nyaa")), len(fake.of("anilist"))
    assert (await call(f"{srv.url}/api/anime/{FRIEREN}/episodes"))[1]["cached"] is True
    assert (len(fake.of("nyaa")), len(fake.of("anilist"))) == (n_nyaa, n_anilist)


async def test_stale_rows_are_served_when_the_indexers_fail(srv, fake: AnimeFakes) -> None:
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/episodes")
    assert code == 200 and body["cached"] is False
    fake.modes["nyaa"] = "malformed"
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/episodes?refresh=1")
    assert code == 200 and body["stale"] is True
    assert body["providers"]["nyaa-anime"][0]["status"] == "error"
    assert [e["episode"] for e in body["episodes"] if e["available"]] == [1, 2, 3]


async def test_anilist_rate_limit_is_a_503_with_retry_after(srv, fake: AnimeFakes) -> None:
    fake.modes["anilist"] = "429"
    fake.retry_after = "40"
    code, body, headers = await call(f"{srv.url}/api/anime/trending")
    assert code == 503 and "rate limit" in body["error"]
    assert 30 <= int(headers["Retry-After"]) <= 40
    fake.modes["anilist"] = "malformed"
    srv.kit.anime.anilist.blocked_until = 0
    code, body, _ = await call(f"{srv.url}/api/anime/search?query=zzz")
    assert code == 502 and "AniList" in body["error"]


async def test_next_episode_follows_history(srv, fake: AnimeFakes) -> None:
    await srv.kit.search.cache.set(f"magnet:{fake.batch_infohash}", srv.batch_info, 60)
    code, tok, _ = await call(f"{srv.url}/api/session", "POST", body={})
    headers = {"X-Session-Id": tok["token"], "Content-Type": "application/json"}
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/next", headers=headers)
    assert code == 200, body
    assert body["episode"] == 1 and body["reason"] == "not started" and body["torrent"]["infohash"] == A("a1")

    # episode 1 watched to the end: next is 2
    magnet = f"magnet:?xt=urn:btih:{A('a1')}"
    code, _, _ = await call(f"{srv.url}/api/history", "POST", headers=headers,
                            body={"magnet": magnet, "file_index": 0, "position_s": 1400, "duration_s": 1420,
                                  "title": "Frieren - 01"})
    assert code in (200, 201, 202)
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/next", headers=headers)
    assert body["episode"] == 2 and body["resume_at"] == 0 and body["last_watched"]["episode"] == 1

    # episode 2 from the batch, stopped half-way: next is episode 2 again, same file, from there
    batch = f"magnet:?xt=urn:btih:{fake.batch_infohash}"
    await call(f"{srv.url}/api/history", "POST", headers=headers,
               body={"magnet": batch, "file_index": 2, "position_s": 600, "duration_s": 1420})
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/next", headers=headers)
    assert body["episode"] == 2 and body["resume_at"] == 600
    assert body["torrent"]["infohash"] == fake.batch_infohash and body["torrent"]["file_index"] == 2

    # another session has its own place
    code, tok2, _ = await call(f"{srv.url}/api/session", "POST", body={})
    code, body, _ = await call(f"{srv.url}/api/anime/{FRIEREN}/next", headers={"X-Session-Id": tok2["token"]})
    assert body["episode"] == 1


async def test_airing_show_expires_sooner_and_stops_at_the_next_airing_episode(srv, fake: AnimeFakes) -> None:
    code, body, _ = await call(f"{srv.url}/api/anime/161645/episodes")
    assert code == 200 and body["aired"] == 5
    eps = body["episodes"]
    assert len(eps) == 24 and eps[4]["aired"] is True and eps[5]["aired"] is False
    assert eps[5]["airing_at"] == "2023-11-14T22:13:20Z"
    s = srv.kit.settings
    cached = srv.kit.anime.store.get_anime(161645)
    assert (cached.expires_at - cached.fetched_at).total_seconds() == pytest.approx(s.anime_airing_ttl)
    srv.kit.anime.store.get_anime(FRIEREN)   # not stored yet: no error
    await call(f"{srv.url}/api/anime/{FRIEREN}")
    cached = srv.kit.anime.store.get_anime(FRIEREN)
    assert (cached.expires_at - cached.fetched_at).total_seconds() == pytest.approx(s.anime_finished_ttl)
