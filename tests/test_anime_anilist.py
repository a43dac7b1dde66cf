"""The AniList client against a local server answering in AniList's GraphQL
format: shapes, caching, HTTP 429 with Retry-After, empty, malformed and
not-found answers."""
from __future__ import annotations

import time

import pytest

from anime_fakes import AnimeFakes
from tstream_kit.anime.anilist import (AniListClient, AniListError, AniListNotFound, AniListParseError,
                                       AniListRateLimited)
from tstream_kit.store.cache import MemoryCache


@pytest.fixture
async def fake():
    f = await AnimeFakes().start()
    yield f
    await f.stop()


def client(fake: AnimeFakes, **kw) -> AniListClient:
    kw.setdefault("timeout", 5.0)
    return AniListClient(fake.anilist_url, **kw)


async def test_search_trending_popular_shapes(fake: AnimeFakes) -> None:
    c = client(fake)
    try:
        found = await c.search("frieren")
        assert found["has_next_page"] is False and found["page"] == 1
        [show] = found["results"]
        assert show["id"] == 154587
        assert show["title"] == {"romaji": "Sousou no Frieren", "english": "Frieren: Beyond Journey’s End",
                                 "native": "葬送のフリーレン"}
        assert show["synonyms"] == ["Frieren at the Funeral", "장송의 프리렌"]
        assert (show["episodes"], show["status"], show["season"], show["season_year"]) == (28, "FINISHED", "FALL", 2023)
        assert show["genres"] == ["Adventure", "Drama", "Fantasy"] and show["score"] == 90
        assert show["cover_url"].startswith("https://s4.anilist.co/") and show["next_airing_episode"] is None
        trending = await c.trending(per_page=10)
        assert [s["id"] for s in trending["results"]] == [154587, 161645, 101922]
        airing = trending["results"][1]
        assert airing["next_airing_episode"] == {"episode": 6, "airing_at": "2023-11-14T22:13:20Z",
                                                 "time_until_airing": 86400}
        popular = await c.popular()
        assert [s["id"] for s in popular["results"]] == [101922, 154587, 161645]
        # a GraphQL POST in AniList's documented request shape
        req = fake.of("anilist")[0]
        assert req["content_type"] == "application/json"
        assert req["variables"]["search"] == "frieren" and req["variables"]["page"] == 1
        assert "Page(page: $page, perPage: $perPage)" in req["query"]
    finally:
        c.close()


async def test_details_and_not_found(fake: AnimeFakes) -> None:
    c = client(fake)
    try:
        show = await c.details(161645)
        assert show["title"]["english"] == "The Apothecary Diaries" and show["status"] == "RELEASING"
        assert show["next_airing_episode"]["episode"] == 6
        assert fake.of("anilist")[-1]["variables"] == {"id": 161645}
        with pytest.raises(AniListNotFound):
            await c.details(1)
    finally:
        c.close()


async def test_answers_are_cached(fake: AnimeFakes) -> None:
    c = client(fake, cache=MemoryCache(), ttl=60)
    try:
        a = await c.search("frieren")
        b = await c.search("frieren")
        assert a == b and len(fake.of("anilist")) == 1
        await c.search("kimetsu")
        assert len(fake.of("anilist")) == 2
    finally:
        c.close()


async def test_429_once_waits_for_retry_after_then_answers(fake: AnimeFakes) -> None:
    fake.modes["anilist"] = "429-once"
    fake.retry_after = "0.4"
    c = client(fake)
    try:
        started = time.monotonic()
        found = await c.trending()
        elapsed = time.monotonic() - started
        assert found["results"] and len(fake.of("anilist")) == 2
        assert elapsed >= 0.35, elapsed      # it waited as AniList asked
    finally:
        c.close()


async def test_429_that_does_not_fit_fails_fast_and_blocks(fake: AnimeFakes) -> None:
    fake.modes["anilist"] = "429"
    fake.retry_after = "30"
    c = client(fake, timeout=3.0)
    try:
        started = time.monotonic()
        with pytest.raises(AniListRateLimited) as info:
            await c.trending()
        assert time.monotonic() - started < 2.0
        assert 25 <= info.value.retry_after <= 30
        # while blocked, AniList is not asked at all
        n = len(fake.of("anilist"))
        with pytest.raises(AniListRateLimited):
            await c.search("frieren")
        assert len(fake.of("anilist")) == n
    finally:
        c.close()


async def test_empty_malformed_and_500(fake: AnimeFakes) -> None:
    c = client(fake, retries=0)
    try:
        fake.modes["anilist"] = "empty"
        assert (await c.search("nothing"))["results"] == []
        fake.modes["anilist"] = "malformed"
        with pytest.raises(AniListParseError):
            await c.search("frieren")
        fake.modes["anilist"] = "500"
        with pytest.raises(AniListError, match="HTTP 500"):
            await c.trending()
    finally:
        c.close()


async def test_unreachable_is_an_error_within_the_timeout() -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    c = AniListClient(f"http://127.0.0.1:{port}/graphql", timeout=2.0)
    try:
        started = time.monotonic()
        with pytest.raises(AniListError, match="cannot reach AniList"):
            await c.trending()
        assert time.monotonic() - started < 3.0
    finally:
        c.close()
