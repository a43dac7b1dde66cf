"""Magnet parsing: tables of real-world spellings, the doctests, and round-trip properties."""

from __future__ import annotations

import base64
import doctest

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tstream_kit import magnets
from tstream_kit.magnets import (
    MAX_MAGNET_LENGTH,
    Magnet,
    MagnetError,
    is_infohash,
    make_magnet,
    normalise_infohash,
    parse_magnet,
)

HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
BASE32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"  # the same 20 bytes
OTHER_HEX = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c"


def test_fixture_base32_is_the_same_hash() -> None:
    assert base64.b32encode(bytes.fromhex(HEX)).decode() == BASE32


@pytest.mark.parametrize(
    "uri",
    [
        f"magnet:?xt=urn:btih:{HEX}",
        f"magnet:?xt=urn:btih:{HEX.upper()}",
        f"magnet:?xt=urn:btih:{BASE32}",
        f"magnet:?xt=urn:btih:{BASE32.lower()}",
        f"MAGNET:?XT=URN:BTIH:{HEX}",
        f"  magnet:?xt=urn:btih:{HEX}\n",  # pasted with whitespace
        f"magnet:?xt=urn%3Abtih%3A{HEX}",  # percent-encoded topic
        f"magnet:?dn=x&amp;xt=urn:btih:{HEX}",  # HTML-escaped separator
        f"magnet:?xt.1=urn:btih:{HEX}",  # numbered key
        f"magnet:?xt=urn:btmh:1220{'ab' * 32}&xt=urn:btih:{HEX}",  # hybrid: v2 first, v1 used
        f"magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{OTHER_HEX}",  # several btih: the first wins
        f"magnet:?xt=urn:ed2k:abc&xt=urn:btih:{HEX}",
        f"magnet:?&&xt=urn:btih:{HEX}&&",
    ],
)
def test_infohash_spellings(uri: str) -> None:
    magnet = parse_magnet(uri)
    assert magnet.infohash == HEX
    assert magnet.uri == uri


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("dn=Big+Buck+Bunny", "Big Buck Bunny"),
        ("dn=Big%20Buck%20Bunny", "Big Buck Bunny"),
        ("dn=C%2B%2B+%26+Rust", "C++ & Rust"),
        ("dn=%E6%97%A5%E6%9C%AC", "日本"),
        ("dn=caf%C3%A9.mkv", "café.mkv"),
        ("dn=bad%FFbyte", "bad\ufffdbyte"),  # invalid UTF-8 is replaced, not fatal
        ("dn=", None),
        ("dn=first&dn=second", "first"),
        ("", None),
    ],
)
def test_display_name(query: str, name: str | None) -> None:
    assert parse_magnet(f"magnet:?xt=urn:btih:{HEX}&{query}").name == name


def test_trackers_in_order_without_duplicates() -> None:
    uri = (
        f"magnet:?xt=urn:btih:{HEX}"
        "&tr=udp%3A%2F%2Ftracker.example.org%3A1337%2Fannounce"
        "&tr=https://t.example.com/announce?passkey=a%26b"
        "&tr.1=udp%3A%2F%2Ftracker.example.org%3A1337%2Fannounce"
        "&tr="
    )
    assert parse_magnet(uri).trackers == (
        "udp://tracker.example.org:1337/announce",
        "https://t.example.com/announce?passkey=a&b",
    )


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("10.0.0.1:6881", ("10.0.0.1", 6881)),
        ("peer.example.org:51413", ("peer.example.org", 51413)),
        ("[::1]:6881", ("::1", 6881)),
        ("%5B2001%3Adb8%3A%3A1%5D%3A6881", ("2001:db8::1", 6881)),
        ("localhost:1", ("localhost", 1)),
        ("localhost:65535", ("localhost", 65535)),
        # skipped, not fatal
        ("localhost:0", None),
        ("localhost:65536", None),
        ("localhost:", None),
        ("localhost", None),
        (":6881", None),
        ("::1:6881", None),  # IPv6 without brackets is ambiguous
        ("[::1]6881", None),
        ("[not-an-ip]:6881", None),
        ("[::1]:", None),
        ("host name:6881", None),
        ("host:68a1", None),
        ("host:-1", None),
        ("host:\u0661\u0662", None),  # non-ASCII digits
        ("host:0006881", None),
    ],
)
def test_peers(peer: str, expected: tuple[str, int] | None) -> None:
    magnet = parse_magnet(f"magnet:?xt=urn:btih:{HEX}&x.pe={peer}&x.pe=127.0.0.1:1")
    want = ((expected,) if expected else ()) + (("127.0.0.1", 1),)
    assert magnet.peers == want


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "not a magnet link: expected 'magnet:?xt=urn:btih:...'"),
        ("https://example.org/file.torrent", "not a magnet link"),
        (HEX, "not a magnet link"),
        ("magnet:xt=urn:btih:" + HEX, "not a magnet link"),  # no '?'
        ("magnetic:?xt=urn:btih:" + HEX, "not a magnet link"),
        ("magnet:?", "no 'xt=urn:btih:...'"),
        ("magnet:?dn=only+a+name", "no 'xt=urn:btih:...'"),
        ("magnet:?xt=urn:sha1:" + HEX, "no 'xt=urn:btih:...'"),
        ("magnet:?xt=urn:btmh:1220" + "ab" * 32, "only a BitTorrent v2 hash"),
        (
            "magnet:?xt=urn:btih:c12fe1c06bba",
            "infohash must be 40 hex or 32 base32 characters, got 12 characters",
        ),
        ("magnet:?xt=urn:btih:", "got 0 characters"),
        ("magnet:?xt=urn:btih:" + "g" * 40, "40 characters must be hexadecimal"),
        ("magnet:?xt=urn:btih:" + "1" * 32, "32 characters must be base32"),
        ("magnet:?xt=urn:btih:" + HEX + "00", "got 42 characters"),
        ("magnet:?xt=urn:btih:" + HEX + "&tr=" + "x" * MAX_MAGNET_LENGTH, "too long"),
    ],
)
def test_rejected(uri: str, message: str) -> None:
    with pytest.raises(MagnetError, match=message.replace("?", r"\?").replace(".", r"\.")):
        parse_magnet(uri)


def test_length_limit_is_in_bytes_and_inclusive() -> None:
    head = f"magnet:?xt=urn:btih:{HEX}&dn="
    assert parse_magnet(head + "a" * (MAX_MAGNET_LENGTH - len(head))).infohash == HEX
    with pytest.raises(MagnetError, match="too long"):
        parse_magnet(head + "a" * (MAX_MAGNET_LENGTH - len(head) + 1))
    with pytest.raises(MagnetError, match="too long"):  # 'é' is two bytes
        parse_magnet(head + "é" * ((MAX_MAGNET_LENGTH - len(head)) // 2 + 1))


def test_non_text_is_rejected_with_magnet_error() -> None:
    with pytest.raises(MagnetError, match="must be text"):
        parse_magnet(b"magnet:?xt=urn:btih:" + HEX.encode())  # type: ignore[arg-type]


def test_magnet_error_is_a_value_error() -> None:
    assert issubclass(MagnetError, ValueError)


def test_to_uri_is_normalised() -> None:
    uri = (
        f"magnet:?tr=udp://t.example:1/a&dn=My+Movie+(2024)&XT=urn:btih:{BASE32}"
        "&x.pe=[::1]:7000&x.pe=10.0.0.2:7001&x.pe=bogus"
    )
    assert parse_magnet(uri).to_uri() == (
        f"magnet:?xt=urn:btih:{HEX}&dn=My%20Movie%20%282024%29"
        "&tr=udp%3A%2F%2Ft.example%3A1%2Fa&x.pe=[::1]:7000&x.pe=10.0.0.2:7001"
    )


def test_magnet_rejects_non_normal_infohash() -> None:
    with pytest.raises(MagnetError):
        Magnet(infohash=HEX.upper())
    with pytest.raises(MagnetError):
        Magnet(infohash=BASE32)


def test_make_magnet() -> None:
    uri = make_magnet(
        BASE32,
        name="a b",
        trackers=["udp://t:1", "udp://t:1", ""],
        peers=[("127.0.0.1", 6881), ("::1", 6882)],
    )
    assert uri == (
        f"magnet:?xt=urn:btih:{HEX}&dn=a%20b&tr=udp%3A%2F%2Ft%3A1"
        "&x.pe=127.0.0.1:6881&x.pe=[::1]:6882"
    )
    assert make_magnet(HEX) == f"magnet:?xt=urn:btih:{HEX}"
    assert make_magnet(HEX, name="") == f"magnet:?xt=urn:btih:{HEX}"


@pytest.mark.parametrize("peer", [("127.0.0.1", 0), ("127.0.0.1", 70000), ("", 1), ("a b", 1), ("h", True)])
def test_make_magnet_rejects_bad_peers(peer: tuple[str, int]) -> None:
    with pytest.raises(MagnetError, match="invalid peer"):
        make_magnet(HEX, peers=[peer])


def test_make_magnet_rejects_bad_infohash() -> None:
    with pytest.raises(MagnetError, match="got 3 characters"):
        make_magnet("abc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (HEX, True),
        (HEX.upper(), True),
        (BASE32, True),
        (BASE32.lower(), True),
        (HEX[:-1], False),
        (HEX + "0", False),
        ("g" * 40, False),
        ("1" * 32, False),
        ("", False),
        (f" {HEX}", False),  # is_infohash is exact; normalise_infohash trims
        (None, False),
        (bytes.fromhex(HEX), False),
    ],
)
def test_is_infohash(value: object, expected: bool) -> None:
    assert is_infohash(value) is expected


@pytest.mark.parametrize("value", [HEX, HEX.upper(), BASE32, BASE32.lower(), f"  {HEX}\t"])
def test_normalise_infohash(value: str) -> None:
    assert normalise_infohash(value) == HEX


@pytest.mark.parametrize("value", ["", "abc", "g" * 40, "1" * 32, HEX + "a", None, 42])
def test_normalise_infohash_rejects(value: object) -> None:
    with pytest.raises(MagnetError):
        normalise_infohash(value)  # type: ignore[arg-type]


def test_doctests() -> None:
    result = doctest.testmod(magnets)
    assert result.attempted >= 5
    assert result.failed == 0


def test_all_names_exist() -> None:
    for name in magnets.__all__:
        assert hasattr(magnets, name)


# --- properties ---------------------------------------------------------------------------------

# all zeros is refused (libtorrent reads it as "no info-hash"): test_hostile_parsers covers it
infohash_bytes = st.binary(min_size=20, max_size=20).filter(any)


@given(raw=infohash_bytes)
def test_base32_and_hex_forms_agree(raw: bytes) -> None:
    hex_form = raw.hex()
    base32_form = base64.b32encode(raw).decode()
    assert is_infohash(hex_form) and is_infohash(base32_form)
    assert normalise_infohash(base32_form) == normalise_infohash(hex_form.upper()) == hex_form
    assert parse_magnet(f"magnet:?xt=urn:btih:{base32_form}").infohash == hex_form


@given(text=st.text(max_size=300))
@example("magnet:?xt=urn:btih:\udcff")
@example("magnet:?xt=urn:btih:" + "İ" * 40)
@example("magnet:?x.pe=[" + "1" * 500 + "]:1")
def test_arbitrary_text_raises_only_magnet_error(text: str) -> None:
    for candidate in (text, "magnet:?" + text, f"magnet:?xt=urn:btih:{HEX}&" + text):
        try:
            magnet = parse_magnet(candidate)
        except MagnetError:
            continue
        assert is_infohash(magnet.infohash) and len(magnet.infohash) == 40


peer_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
)


@given(
    raw=infohash_bytes,
    name=st.one_of(st.none(), st.text(min_size=1).filter(lambda s: s.strip() == s and s)),
    trackers=st.lists(st.text(min_size=1).filter(lambda s: s.strip() == s and s), max_size=4, unique=True),
    peers=st.lists(st.tuples(peer_hosts, st.integers(1, 65535)), max_size=4, unique=True),
)
def test_make_then_parse_round_trips(
    raw: bytes, name: str | None, trackers: list[str], peers: list[tuple[str, int]]
) -> None:
    uri = make_magnet(raw.hex(), name=name, trackers=trackers, peers=peers)
    magnet = parse_magnet(uri)
    assert (magnet.infohash, magnet.name, magnet.trackers, magnet.peers) == (
        raw.hex(),
        name,
        tuple(trackers),
        tuple(peers),
    )
    assert magnet.to_uri() == uri
