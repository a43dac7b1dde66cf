"""Each provider against a local server answering in its documented format:
real-looking result pages, empty results, malformed answers, HTTP 429/5xx,
answers slower than the timeout; queries URL-encoded, never spliced."""
from __future__ import annotations

import doctest
import time

import pytest

import tstream_kit.search.bencode
import tstream_kit.search.query
from tstream_kit.search.apibay import ApibayProvider
from tstream_kit.search.base import ProviderError, ProviderHTTPError, ProviderParseError
from tstream_kit.search.http import USER_AGENT, DeadlineExceeded, Fetcher
from tstream_kit.search.nyaa import NyaaProvider
from tstream_kit.search.torznab import TorznabIndexer, TorznabProvider
from tstream_kit.magnets import parse_magnet

from search_fakes import FakeIndexers

BBB = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"
SINTEL = "08ada5a7a6183aae1e09d831df6748d566095a10"
TOS = "209c8226b299b308beaf2b9cd3fb49212dbd13ec"
NASTY = 'a&b=c #frag? <x/> "q" 100% ü'


@pytest.fixture
async def fake():
    f = await FakeIndexers().start()
    yield f
    await f.stop()


@pytest.fixture
def fetcher():
    f = Fetcher()
    yield f
    f.close()


def torznab(fake: FakeIndexers, fetcher: Fetcher, url: str | None = None, **kw) -> TorznabProvider:
    return TorznabProvider(TorznabIndexer("jackett", url or fake.jackett_url("all"), "secret-key", (2000, 5000)),
                           fetcher, **{"timeout": 3.0, **kw})


def nyaa(fake: FakeIndexers, fetcher: Fetcher, **kw) -> NyaaProvider:
    return NyaaProvider(fetcher, base_url=fake.base + "/nyaa/", **{"timeout": 3.0, "min_interval": 0.0, **kw})


def apibay(fake: FakeIndexers, fetcher: Fetcher, **kw) -> ApibayProvider:
    return ApibayProvider(fetcher, base_url=fake.base + "/apibay", **{"timeout": 3.0, "min_interval": 0.0, **kw})


def test_doctests() -> None:
    for mod in (tstream_kit.search.query, tstream_kit.search.bencode):
        assert doctest.testmod(mod).failed == 0


# ------------------------------------------------------------------ Torznab
async def test_torznab_jackett_all_results(fake, fetcher) -> None:
    results = await torznab(fake, fetcher).search("big buck bunny")
    by_hash = {r.infohash: r for r in results}
    assert set(by_hash) == {BBB, SINTEL, TOS, fake.cosmos_infohash}
    bbb = by_hash[BBB]
    assert bbb.title == "Big Buck Bunny 2008 1080p BluRay x264"
    assert (bbb.size, bbb.seeders, bbb.leechers) == (928670754, 412, 38)   # peers 450 - seeders 412
    assert bbb.published == "2008-04-12T10:00:00Z" and bbb.category == "Movies/HD"
    assert bbb.provider == "jackett" and bbb.url == fake.base + "/details/101"
    assert "tracker.opentrackr.org" in bbb.magnet          # the item's own magnet, trackers kept
    # infohash attribute only: a magnet built from it
    assert parse_magnet(by_hash[SINTEL].magnet).infohash == SINTEL
    assert by_hash[SINTEL].category == "Movies"
    # Prowlarr-style magneturl: an HTTP redirect to the magnet, followed
    tos = by_hash[TOS]
    assert tos.magnet.startswith("magnet:?xt=urn:btih:" + TOS) and "127.0.0.1%3A1" in tos.magnet
    assert any(r.path == f"/redirect/{TOS}" for r in fake.of("redirect"))
    # only a .torrent enclosure: downloaded and hashed
    cosmos = by_hash[fake.cosmos_infohash]
    assert cosmos.size == 734003200 + 20480 and cosmos.title == "Cosmos Laundromat 2015 1080p"
    # the request: Jackett's all endpoint + /api, query URL-encoded, key and categories sent
    req = fake.of("torznab")[0]
    assert req.path == "/api/v2.0/indexers/all/results/torznab/api"
    assert req.args["t"] == "search" and req.args["q"] == "big buck bunny"
    assert req.args["apikey"] == "secret-key" and req.args["cat"] == "2000,5000"
    assert req.headers["User-Agent"] == USER_AGENT and "tstream" in USER_AGENT


async def test_torznab_prowlarr_url_and_caps(fake, fetcher) -> None:
    p = torznab(fake, fetcher, url=fake.prowlarr_url(3))
    caps = await p.caps()
    assert caps["title"] == "Jackett" and caps["limits"] == {"max": 100, "default": 100}
    assert caps["searching"]["search"] == {"available": True, "params": ["q"]}
    assert caps["categories"][5070] == "TV/Anime"
    assert fake.requests[-1].path == "/prowlarr/3/api" and fake.requests[-1].args["t"] == "caps"


async def test_torznab_query_is_encoded_not_spliced(fake, fetcher) -> None:
    await torznab(fake, fetcher).search(NASTY)
    req = fake.of("torznab")[0]
    assert req.args["q"] == NASTY
    assert set(req.args) == {"t", "q", "apikey", "cat", "limit", "extended"}


async def test_torznab_empty(fake, fetcher) -> None:
    fake.modes["torznab"] = "empty"
    assert await torznab(fake, fetcher).search("nothing") == []


@pytest.mark.parametrize("mode", ["malformed", "entities"])
async def test_torznab_malformed_xml(fake, fetcher, mode) -> None:
    fake.modes["torznab"] = mode
    with pytest.raises(ProviderParseError):
        await torznab(fake, fetcher).search("x")


async def test_torznab_error_element(fake, fetcher) -> None:
    fake.modes["torznab"] = "error"
    with pytest.raises(ProviderError, match="error 100: Invalid API Key"):
        await torznab(fake, fetcher).search("x")


# --------------------------------------------------------------------- Nyaa
async def test_nyaa_results(fake, fetcher) -> None:
    results = await nyaa(fake, fetcher).search("big buck bunny")
    assert [r.infohash for r in results] == [BBB, "565db305a27ffb321fcc7b064afd7bd73aedda2b", SINTEL]
    r = results[0]
    assert r.title == "[Blender] Big Buck Bunny (2008) [1080p][x264][FLAC]"
    assert (r.seeders, r.leechers, r.size) == (530, 12, int(885.7 * 2**20))
    assert results[1].size == int(1.2 * 2**30)
    assert r.category == "Anime - Raw" and r.published == "2024-09-08T14:05:01Z"
    assert r.url == fake.base + "/nyaa/view/1754321"
    m = parse_magnet(r.magnet)
    assert m.infohash == BBB and m.name == r.title and m.trackers
    assert results[2].title == "[Blender] Sintel (2010) [BD 1080p] & Extras"
    req = fake.of("nyaa")[0]
    assert req.args == {"page": "rss", "q": "big buck bunny", "c": "0_0", "f": "0"}
    assert req.headers["User-Agent"] == USER_AGENT


async def test_nyaa_empty_malformed_and_encoding(fake, fetcher) -> None:
    fake.modes["nyaa"] = "empty"
    assert await nyaa(fake, fetcher).search(NASTY) == []
    assert fake.of("nyaa")[0].args["q"] == NASTY
    fake.modes["nyaa"] = "malformed"
    with pytest.raises(ProviderParseError, match="malformed XML"):
        await nyaa(fake, fetcher).search("x")


# ------------------------------------------------------------------- apibay
async def test_apibay_results(fake, fetcher) -> None:
    results = await apibay(fake, fetcher).search("blender")
    assert [r.infohash for r in results] == [BBB, TOS, "3f8f219568b8b229581dddd7bc5a5e889e906a9b"]
    r = results[0]
    assert (r.seeders, r.leechers, r.size) == (688, 31, 928670754)
    assert r.published == "2008-05-31T00:00:00Z" and r.category == "Video/HD Movies"
    assert results[2].category == "Video/Movies"
    assert parse_magnet(r.magnet).infohash == BBB
    assert fake.of("apibay")[0].args == {"q": "blender", "cat": "0"}


async def test_apibay_no_results_sentinel_is_zero_results(fake, fetcher) -> None:
    fake.modes["apibay"] = "empty"
    assert await apibay(fake, fetcher).search(NASTY) == []
    assert fake.of("apibay")[0].args["q"] == NASTY


async def test_apibay_malformed_json(fake, fetcher) -> None:
    fake.modes["apibay"] = "malformed"
    with pytest.raises(ProviderParseError, match="malformed JSON"):
        await apibay(fake, fetcher).search("x")


# ------------------------------------------------- HTTP failures, all providers
PROVIDERS = {"torznab": torznab, "nyaa": nyaa, "apibay": apibay}


@pytest.mark.parametrize("service", list(PROVIDERS))
async def test_429_and_5xx_are_errors_after_one_retry(fake, fetcher, service) -> None:
    fake.modes[service] = "429"
    with pytest.raises(ProviderHTTPError) as err:
        await PROVIDERS[service](fake, fetcher, retries=1).search("x")
    # Retry-After: 120 does not fit in the 3 s budget: no wait, the real reason at once
    assert err.value.status == 429 and "429" in str(err.value)
    assert len(fake.of(service)) == 1
    fake.modes[service] = "500"
    fake.requests.clear()
    with pytest.raises(ProviderHTTPError) as err:
        await PROVIDERS[service](fake, fetcher, retries=1).search("x")
    assert err.value.status == 503 and len(fake.of(service)) == 2


@pytest.mark.parametrize("service", list(PROVIDERS))
@pytest.mark.parametrize("mode", ["429-once", "500-once"])
async def test_one_transient_failure_is_retried(fake, fetcher, service, mode) -> None:
    fake.modes[service] = mode
    results = await PROVIDERS[service](fake, fetcher, retries=1).search("x")
    assert results and len(fake.of(service)) == 2
    if mode == "429-once":   # Retry-After: 0.2 was honoured
        a, b = fake.of(service)
        assert b.at - a.at >= 0.19


@pytest.mark.parametrize("service", list(PROVIDERS))
async def test_slow_answer_times_out_within_budget(fake, fetcher, service) -> None:
    fake.modes[service] = "slow"
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await PROVIDERS[service](fake, fetcher, timeout=0.5).search("x")
    assert time.monotonic() - started < 1.0


async def test_unreachable_indexer_is_an_error(fetcher) -> None:
    import socket
    with socket.socket() as s:   # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = NyaaProvider(fetcher, base_url=f"http://127.0.0.1:{port}/", timeout=2.0, min_interval=0.0, retries=0)
    with pytest.raises(ProviderError, match="cannot reach"):
        await p.search("x")
