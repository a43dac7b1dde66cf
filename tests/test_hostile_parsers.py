"""Hostile input to the pure parsers (issue 9, item 2): magnets, Range headers, release names,
indexer feeds (Torznab/Nyaa RSS, apibay JSON) and .torrent bencode.

Each parser either answers with outputs that keep their invariants or raises its documented
error type (MagnetError, ValueError, ProviderError, BencodeError); never anything else, and
never slowly. tests/test_magnets.py and tests/test_ranges.py already hold the round-trip and
oracle properties; this file adds adversarial shapes (structure-aware junk, huge numbers,
pathological repetition) and time bounds. Hypothesis is derandomized: the same examples on
every run, so a loaded CI machine cannot make it flaky.
"""
from __future__ import annotations

import json
import time
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tstream_kit.anime.releases import Release, normalise_title, parse_release
from tstream_kit.magnets import MagnetError, is_infohash, parse_magnet
from tstream_kit.search.apibay import parse_apibay
from tstream_kit.search.base import ProviderError, Result
from tstream_kit.search.bencode import BencodeError, bdecode, torrent_meta
from tstream_kit.search.nyaa import parse_nyaa_feed
from tstream_kit.search.torznab import parse_caps, parse_torznab_feed
from tstream_kit.server.ranges import parse_range
from bencode_support import benc

FAST = settings(derandomize=True, deadline=None, max_examples=400,
                suppress_health_check=[HealthCheck.too_slow])
#: seconds one parse may take on any input here (a regex that backtracks takes minutes)
SLOW = 1.0

HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"


def timed(fn, *args):
    """fn(*args) -> (result or the exception raised, seconds)."""
    started = time.perf_counter()
    try:
        out = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the caller checks the type
        out = exc
    return out, time.perf_counter() - started


# --- magnets ---------------------------------------------------------------------------------

magnet_keys = st.sampled_from(["xt", "XT", "xt.1", "dn", "tr", "x.pe", "ws", "as", "xs", "kt", "", "=", "&"])
magnet_values = st.one_of(
    st.just(f"urn:btih:{HEX}"), st.just("urn:btih:"), st.text(max_size=60),
    st.from_regex(r"urn:bt[im]h:[0-9A-Za-z%]{0,70}", fullmatch=True),
    st.from_regex(r"\[?[0-9a-f:.]{0,45}\]?:-?[0-9]{0,7}", fullmatch=True),   # x.pe shapes
    st.text(alphabet="%0123456789abcdefABCDEF+", max_size=40),
)


@FAST
@given(pairs=st.lists(st.tuples(magnet_keys, magnet_values), max_size=12),
       sep=st.sampled_from(["&", "&amp;", ";", "&&"]))
@example(pairs=[("xt", f"urn:btih:{HEX}"), ("x.pe", "[::1]:99999")], sep="&")
@example(pairs=[("xt", f"urn:btih:{HEX}"), ("dn", "%ff%fe%00")], sep="&")
@example(pairs=[("xt", f"urn:btih:{HEX}"), ("tr", "%" * 500)], sep="&")
def test_structured_magnets_raise_only_magnet_error(pairs: list[tuple[str, str]], sep: str) -> None:
    uri = "magnet:?" + sep.join(f"{k}={v}" for k, v in pairs)
    out, took = timed(parse_magnet, uri)
    assert took < SLOW
    if isinstance(out, Exception):
        assert isinstance(out, MagnetError), repr(out)
        assert str(out)   # a message a person can act on
        return
    assert is_infohash(out.infohash) and len(out.infohash) == 40 and out.infohash == out.infohash.lower()
    for host, port in out.peers:
        assert isinstance(host, str) and host and 1 <= port <= 65535
    assert all(isinstance(t, str) and t for t in out.trackers)
    # what it prints parses back to the same torrent
    again = parse_magnet(out.to_uri())
    assert (again.infohash, again.peers) == (out.infohash, out.peers)


@pytest.mark.parametrize("uri", [
    "magnet:?" + "xt=urn:btih:&" * 20000,
    "magnet:?" + "&" * 100000 + f"xt=urn:btih:{HEX}",
    f"magnet:?xt=urn:btih:{HEX}&x.pe=" + "[" * 50000,
    "magnet:?dn=" + "%25" * 30000,
    "magnet:" * 40000,
])
def test_pathological_magnets_are_fast(uri: str) -> None:
    out, took = timed(parse_magnet, uri)
    assert took < SLOW
    assert isinstance(out, MagnetError) or is_infohash(out.infohash)


# --- Range headers ----------------------------------------------------------------------------

range_specs = st.one_of(
    st.from_regex(r"-?[0-9]{0,25}-[0-9]{0,25}", fullmatch=True),
    st.from_regex(r"[ \t]*[0-9]{1,6}[ \t]*-[ \t]*[0-9]{0,6}[ \t]*", fullmatch=True),
    st.text(alphabet="0123456789-, =+e.x", max_size=20),
)


@FAST
@given(unit=st.sampled_from(["bytes", "BYTES", "Bytes", "bytes ", "items", "", "bytes=bytes"]),
       specs=st.lists(range_specs, min_size=0, max_size=12), size=st.integers(0, 2**63))
@example(unit="bytes", specs=["0-" + "9" * 4000], size=10)
@example(unit="bytes", specs=["-0"], size=0)
@example(unit="bytes", specs=["١٢-٣"], size=100)   # non-ASCII digits: str.isdigit says yes
def test_structured_ranges_give_a_sane_plan(unit: str, specs: list[str], size: int) -> None:
    header = f"{unit}=" + ",".join(specs)
    out, took = timed(parse_range, header, size)
    assert took < SLOW
    assert not isinstance(out, Exception), repr(out)
    assert out.status in (200, 206, 416)
    for start, end in out.ranges:
        assert 0 <= start <= end < size
    if out.status == 206:
        assert len(out.ranges) == 1
        (start, end), = out.ranges
        assert out.content_range == f"bytes {start}-{end}/{size}"
    if out.status == 416:
        assert out.ranges == () and out.content_range == f"bytes */{size}"
    if out.status == 200:
        assert out.ranges in ((), ((0, size - 1),)) and out.length == size


def test_huge_range_headers_are_fast() -> None:
    for header in ("bytes=" + "0-1," * 50000, "bytes=" + "1" * 100000 + "-", "bytes=" + " " * 100000 + "0-1"):
        out, took = timed(parse_range, header, 10**9)
        assert took < SLOW and not isinstance(out, Exception), repr(out)


@pytest.mark.parametrize("size", [-1, -(2**70)])
def test_negative_size_is_a_value_error(size: int) -> None:
    with pytest.raises(ValueError):
        parse_range("bytes=0-1", size)


# --- release names ----------------------------------------------------------------------------

RESOLUTIONS = {None, "2160p", "1080p", "720p", "480p"}
CODECS = {None, "AV1", "x265", "x264"}
SOURCES = {None, "BD", "WEB", "DVD", "TV"}
AUDIO = {"FLAC", "Opus", "TrueHD", "DTS", "E-AC3", "AC3", "AAC", "MP3"}

release_words = st.sampled_from([
    "[SubsPlease]", "[Judas]", "【字幕组】", "Sousou no Frieren", "Show.Name", "S01E05", "S2", "E12", "05v2",
    "-", " - ", "(01-12)", "[01~24 Fin]", "(1080p)", "[720p]", "2160p", "x265", "HEVC", "AV1", "BD", "WEB-DL",
    "Blu-Ray", "FLAC 2.0", "DD+5.1", "Dual Audio", "10bit", "Batch", "Complete", "Season 3", "2nd Season",
    "[A1B2C3D4]", "(2019)", ".mkv", ".torrent", "_", ".", "[", "]", "(", ")", "【", "】", "#9", "9999", "0",
    "1999-2000", "E-AC3", "Episode 7", "ep.03", "3x07", "~", "–", "\x00", "\n", " ",
])


@FAST
@given(name=st.one_of(st.lists(release_words, max_size=14).map("".join),
                      st.lists(release_words, max_size=14).map(" ".join),
                      st.text(max_size=120)))
@example(name="[" * 3000)
@example(name="(" + "1 - " * 2000 + ")")
@example(name="Show" + " - 1" * 3000)
@example(name="S01E" + "9" * 5000)
def test_release_names_never_raise_and_keep_invariants(name: str) -> None:
    r, took = timed(parse_release, name)
    assert took < SLOW, f"{took:.2f}s for {name[:60]!r}"
    assert isinstance(r, Release), repr(r)
    assert r.name == name
    assert isinstance(r.title, str) and r.title == r.title.strip() and "\x00" not in r.title
    assert r.resolution in RESOLUTIONS and r.codec in CODECS and r.source in SOURCES
    assert set(r.audio) <= AUDIO and len(set(r.audio)) == len(r.audio)
    assert r.bit_depth in (None, 8, 10)
    for n in (r.episode, r.episode_start, r.episode_end, r.season, r.version):
        assert n is None or (isinstance(n, int) and 0 <= n <= 9999)
    if r.episode is not None:
        assert r.episode_start is None and r.episode_end is None and r.covers(r.episode)
    assert (r.episode_start is None) == (r.episode_end is None)
    if r.episode_start is not None:
        assert r.batch
    assert r.checksum is None or (len(r.checksum) == 8 and r.checksum == r.checksum.upper())
    assert json.loads(json.dumps(r.to_dict()))["name"] == name   # the API sends it as JSON
    t = normalise_title(name)
    assert t == t.strip() and "  " not in t and t == t.lower()


# --- indexer feeds ----------------------------------------------------------------------------

NYAA = "https://nyaa.si/xmlns/nyaa"
TORZNAB = "http://torznab.com/schemas/2015/feed"

# the field values an indexer might send, including junk in every number field
feed_values = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
    st.sampled_from(["", "0", "-1", "1e400", "inf", "-inf", "nan", "1" * 400, "9" * 30, "1.2 GiB", "1,5 GB",
                     "12 QiB", "999999999999999999 TiB", "Sun, 08 Sep 2024 14:05:01 -0000",
                     "Mon, 01 Jan 0001 00:00:00 +0100", "Fri, 31 Dec 9999 23:59:59 -1200", "Yes", "No",
                     HEX, HEX.upper(), "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK", "0" * 40,
                     f"magnet:?xt=urn:btih:{HEX}", "magnet:?xt=urn:btih:zz", "http://127.0.0.1:9/x.torrent"]),
)


def _xml_item(fields: dict[str, str]) -> str:
    out = []
    for tag, value in fields.items():
        if tag.startswith("@"):   # a torznab:attr
            out.append(f"<torznab:attr name={quoteattr(tag[1:])} value={quoteattr(value)}/>")
        elif tag == "enclosure":
            out.append(f"<enclosure url={quoteattr(value)} length={quoteattr(value)}/>")
        else:
            out.append(f"<{tag}>{escape(value)}</{tag}>")
    return "<item>" + "".join(out) + "</item>"


item_fields = st.dictionaries(
    st.sampled_from(["title", "link", "guid", "comments", "pubDate", "size", "category", "enclosure",
                     "nyaa:infoHash", "nyaa:seeders", "nyaa:leechers", "nyaa:size", "nyaa:category",
                     "nyaa:trusted", "nyaa:remake", "@size", "@seeders", "@peers", "@leechers",
                     "@magneturl", "@infohash", "@category"]),
    feed_values, max_size=12)


def rss(items: list[dict[str, str]]) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:nyaa="{NYAA}" '
            f'xmlns:torznab="{TORZNAB}"><channel><title>t</title>'
            + "".join(_xml_item(i) for i in items) + "</channel></rss>").encode()


def check_results(results: list[Result]) -> None:
    for r in results:
        assert isinstance(r, Result)
        assert r.title and isinstance(r.title, str)
        assert is_infohash(r.infohash) and len(r.infohash) == 40
        assert parse_magnet(r.magnet).infohash == r.infohash
        for n in (r.size, r.seeders, r.leechers):
            assert n is None or isinstance(n, int)
        assert r.published is None or (len(r.published) == 20 and r.published.endswith("Z"))
        json.dumps(r.to_dict() if hasattr(r, "to_dict") else r.__dict__)


@FAST
@given(items=st.lists(item_fields, max_size=5))
@example(items=[{"title": "x", "nyaa:infoHash": HEX, "nyaa:size": "1" * 400, "pubDate": "Mon, 01 Jan 0001 00:00:00 +0100"}])
@example(items=[{"title": "x", "nyaa:infoHash": HEX, "nyaa:seeders": "1e400", "nyaa:size": "1e400"}])
def test_nyaa_feed(items: list[dict[str, str]]) -> None:
    out, took = timed(parse_nyaa_feed, rss(items))
    assert took < SLOW
    assert not isinstance(out, Exception) or isinstance(out, ProviderError), repr(out)
    if not isinstance(out, Exception):
        check_results(out)


@FAST
@given(items=st.lists(item_fields, max_size=5))
@example(items=[{"title": "x", "@infohash": HEX, "@size": "inf", "@seeders": "1e400", "@peers": "-inf"}])
@example(items=[{"title": "x", "@magneturl": f"magnet:?xt=urn:btih:{HEX}", "@category": "1e400"}])
def test_torznab_feed(items: list[dict[str, str]]) -> None:
    out, took = timed(parse_torznab_feed, rss(items), "idx")
    assert took < SLOW
    assert not isinstance(out, Exception) or isinstance(out, ProviderError), repr(out)
    if isinstance(out, Exception):
        return
    for item in out:
        r = item.result
        assert r.title
        assert r.infohash == "" or is_infohash(r.infohash)
        assert r.magnet == "" or parse_magnet(r.magnet).infohash == r.infohash
        for n in (r.size, r.seeders, r.leechers):
            assert n is None or isinstance(n, int)
        assert r.leechers is None or item.attrs.get("leechers") is not None or r.leechers >= 0


@FAST
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
@example(body=b"<error code='100' description='bad key'/>")
@example(body=b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><rss><channel>&a;</channel></rss>")
@example(body=b"<rss>" + b"<x>" * 5000 + b"</rss>")
def test_any_bytes_to_the_xml_parsers(body: bytes) -> None:
    for fn in (lambda b: parse_nyaa_feed(b), lambda b: parse_torznab_feed(b, "idx"), lambda b: parse_caps(b, "idx")):
        out, took = timed(fn, body)
        assert took < SLOW
        assert not isinstance(out, Exception) or isinstance(out, ProviderError), repr(out)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         feed_values)
apibay_rows = st.dictionaries(
    st.sampled_from(["id", "name", "info_hash", "seeders", "leechers", "size", "added", "category", "extra"]),
    json_scalars, max_size=9)


@FAST
@given(rows=st.one_of(st.lists(apibay_rows, max_size=6), st.lists(json_scalars, max_size=3),
                      st.dictionaries(st.text(max_size=5), json_scalars, max_size=3), json_scalars))
@example(rows=[{"id": "1", "info_hash": HEX, "added": "1e20", "size": "inf"}])
@example(rows=[{"id": "1", "info_hash": HEX, "added": 1e300, "seeders": "1e400"}])
@example(rows=[{"id": "1", "info_hash": HEX, "added": "-1e20", "category": "inf"}])
def test_apibay_json(rows: object) -> None:
    out, took = timed(parse_apibay, json.dumps(rows).encode())
    assert took < SLOW
    assert not isinstance(out, Exception) or isinstance(out, ProviderError), repr(out)
    if not isinstance(out, Exception):
        check_results(out)


@pytest.mark.parametrize("body", [b"[" * 100000, b"[" * 5000 + b"]" * 5000, b'{"a":' * 100000, b"\xff\xfe",
                                  b"", b"null", b"[1e999]"])
def test_apibay_junk_bodies(body: bytes) -> None:
    out, took = timed(parse_apibay, body)
    assert took < SLOW
    assert not isinstance(out, Exception) or isinstance(out, ProviderError), repr(out)


# --- .torrent bencode (search's reader: catalogue, uploads' metadata) --------------------------

bvalues = st.recursive(
    st.one_of(st.integers(-(2**70), 2**70), st.binary(max_size=12), st.sampled_from([b"name", b"path", b"length"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from([b"name", b"files", b"length", b"path", b"attr",
                                                             b"path.utf-8", b"name.utf-8", b"x"]), inner, max_size=5)),
    max_leaves=20)


@FAST
@given(info=bvalues, extra=st.dictionaries(st.sampled_from([b"announce", b"announce-list", b"comment"]), bvalues,
                                           max_size=3))
@example(info={b"name": b"a", b"files": 5}, extra={})
@example(info={b"name": b"a", b"files": [5]}, extra={})
@example(info={b"name": b"a", b"files": [{b"path": 7, b"length": 1}]}, extra={})
@example(info={b"name": b"a", b"files": [{b"path": [b"x"], b"length": b"zz"}]}, extra={})
@example(info={b"name": b"a", b"length": [1]}, extra={b"announce-list": 3})
def test_torrent_meta_raises_only_bencode_error(info: object, extra: dict[bytes, object]) -> None:
    data = benc({b"info": info, **extra})
    out, took = timed(torrent_meta, data)
    assert took < SLOW
    if isinstance(out, Exception):
        assert isinstance(out, BencodeError), repr(out)
        return
    assert is_infohash(out.infohash) and isinstance(out.name, str)
    for path, size in out.files:
        assert isinstance(path, str) and isinstance(size, int)


@FAST
@given(data=st.binary(max_size=200))
@example(data=b"l" * 100000)
@example(data=b"i" + b"9" * 5000 + b"e")
@example(data=b"99999999999999999999:x")
@example(data=b"d4:infod4:name1:a6:lengthi1_0eee")
def test_bdecode_any_bytes(data: bytes) -> None:
    out, took = timed(bdecode, data)
    assert took < SLOW
    assert not isinstance(out, Exception) or isinstance(out, BencodeError), repr(out)


@pytest.mark.parametrize("topic", ["0" * 40, "A" * 32])   # hex and base32 spellings of 20 zero bytes
def test_all_zero_infohash_is_a_magnet_error(topic: str) -> None:
    # libtorrent refuses it ("missing info-hash from URI"): before this was a 500 from the API
    with pytest.raises(MagnetError, match="all zeros"):
        parse_magnet(f"magnet:?xt=urn:btih:{topic}")
