"""Parse, normalise and build magnet URIs (BEP 9). Pure: no libtorrent, no I/O.

A magnet link arrives from a person (pasted) or a search provider (scraped), so parsing is
tolerant where tolerance is harmless (case, percent-encoding, HTML-escaped ``&amp;``, bad peer
entries) and strict where a mistake would fetch the wrong torrent (the infohash).

Errors::

    ValueError
     └── MagnetError      any input we cannot turn into a v1 infohash; the message is for people

>>> m = parse_magnet("magnet:?xt=urn:btih:C12FE1C06BBA254A9DC9F519B335AA7C1367A88A&dn=Big+Buck+Bunny")
>>> m.infohash, m.name
('c12fe1c06bba254a9dc9f519b335aa7c1367a88a', 'Big Buck Bunny')
>>> m.to_uri()
'magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=Big%20Buck%20Bunny'
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

__all__ = [
    "MAX_MAGNET_LENGTH",
    "Magnet",
    "MagnetError",
    "is_infohash",
    "make_magnet",
    "normalise_infohash",
    "parse_magnet",
]

# Real magnets are a few hundred bytes; a few dozen trackers still fit in 8 KiB. The cap bounds
# the work done on a query parameter a stranger controls.
MAX_MAGNET_LENGTH = 8 * 1024

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_BASE32_32 = re.compile(r"[A-Za-z2-7]{32}")
# Hostnames and IPv4 addresses in x.pe; IPv6 must be bracketed, so no ':' here.
_PEER_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# Some writers number repeated keys (xt.1, tr.2) as the magnet draft allows.
_NUMBERED_KEY = re.compile(r"(xt|dn|tr)\.[0-9]+")

_BTIH_PREFIX = "urn:btih:"
_BTMH_PREFIX = "urn:btmh:"


class MagnetError(ValueError):
    """A magnet link or infohash we cannot use. The message says what was expected."""


@dataclass(frozen=True)
class Magnet:
    """A parsed magnet link: the v1 infohash plus the optional hints that speed up the start."""

    infohash: str  # 40 lowercase hex characters (BitTorrent v1)
    name: str | None = None  # dn: display name, a hint until the metadata arrives
    trackers: tuple[str, ...] = ()  # tr, in order, without duplicates
    peers: tuple[tuple[str, int], ...] = ()  # x.pe: (host, port); IPv6 hosts without brackets
    uri: str = ""  # the text this was parsed from; "" when built in code

    def __post_init__(self) -> None:
        # The infohash is the torrent's identity (cache keys, history rows), so one spelling only.
        if not (_HEX40.fullmatch(self.infohash) and self.infohash == self.infohash.lower()):
            raise MagnetError(f"Magnet.infohash must be 40 lowercase hex characters, got {self.infohash!r}")

    def to_uri(self) -> str:
        """The normalised magnet: lowercase hex xt, then dn, tr and x.pe, percent-encoded."""
        parts = [f"xt={_BTIH_PREFIX}{self.infohash}"]
        if self.name:
            parts.append("dn=" + quote(self.name, safe=""))
        parts.extend("tr=" + quote(tracker, safe="") for tracker in self.trackers)
        parts.extend("x.pe=" + quote(_format_peer(host, port), safe="[]:") for host, port in self.peers)
        return "magnet:?" + "&".join(parts)


def is_infohash(s: object) -> bool:
    """True for a v1 infohash spelled as 40 hex or 32 base32 characters (any case).

    >>> is_infohash("C12FE1C06BBA254A9DC9F519B335AA7C1367A88A"), is_infohash("abc")
    (True, False)
    """
    if not isinstance(s, str):
        return False
    return bool(_HEX40.fullmatch(s) or _BASE32_32.fullmatch(s))


def normalise_infohash(s: str) -> str:
    """40 lowercase hex characters from a hex or base32 infohash; MagnetError otherwise.

    >>> normalise_infohash("YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK")
    'c12fe1c06bba254a9dc9f519b335aa7c1367a88a'
    """
    if not isinstance(s, str):
        raise MagnetError(f"infohash must be a string, got {type(s).__name__}")
    s = s.strip()
    if _HEX40.fullmatch(s):
        return s.lower()
    if _BASE32_32.fullmatch(s):
        try:
            return base64.b32decode(s.upper()).hex()
        except binascii.Error as exc:  # unreachable for 32 valid characters; kept as a guard
            raise MagnetError(f"infohash is not valid base32: {s!r}") from exc
    if len(s) == 40:
        raise MagnetError("infohash of 40 characters must be hexadecimal (0-9, a-f)")
    if len(s) == 32:
        raise MagnetError("infohash of 32 characters must be base32 (A-Z, 2-7)")
    raise MagnetError(f"infohash must be 40 hex or 32 base32 characters, got {len(s)} characters")


def parse_magnet(uri: str) -> Magnet:
    """Parse a magnet link. Raises MagnetError (and only that) for any text that is not one.

    Accepts ``xt=urn:btih:`` with 40 hex or 32 base32 characters; with several ``xt`` the first
    btih wins (hybrid v1/v2 magnets carry a btmh too). Invalid ``x.pe`` peers are skipped.
    """
    if not isinstance(uri, str):
        raise MagnetError(f"a magnet link must be text, got {type(uri).__name__}")
    # Length in UTF-8 bytes is what crossed the wire; surrogatepass so odd text cannot raise here.
    if len(uri.encode("utf-8", "surrogatepass")) > MAX_MAGNET_LENGTH:
        raise MagnetError(f"magnet link is too long (more than {MAX_MAGNET_LENGTH} bytes)")
    text = uri.strip()
    scheme, colon, query = text.partition(":")
    if not colon or scheme.lower() != "magnet" or not query.startswith("?"):
        raise MagnetError("not a magnet link: expected 'magnet:?xt=urn:btih:...'")

    # Links copied out of HTML often keep the entity; '&amp;' is never meaningful in a magnet.
    query = query[1:].replace("&amp;", "&")
    infohash: str | None = None
    saw_v2_only_topic = False
    name: str | None = None
    trackers: list[str] = []
    peers: list[tuple[str, int]] = []
    for key, value in _query_pairs(query):
        if key == "xt":
            # Compare the prefix alone: lowercasing the whole value could shift non-ASCII text.
            topic = value[: len(_BTIH_PREFIX)].lower()
            if topic == _BTIH_PREFIX:
                if infohash is None:
                    infohash = _infohash_from_topic(value[len(_BTIH_PREFIX):])
            elif topic == _BTMH_PREFIX:
                saw_v2_only_topic = True
        elif key == "dn":
            if name is None and value.strip():
                name = value
        elif key == "tr":
            if value and value not in trackers:
                trackers.append(value)
        elif key == "x.pe":
            peer = _parse_peer(value)
            if peer is not None and peer not in peers:
                peers.append(peer)

    if infohash is None:
        if saw_v2_only_topic:
            raise MagnetError(
                "magnet has only a BitTorrent v2 hash (urn:btmh); a v1 'xt=urn:btih:...' is required"
            )
        raise MagnetError("magnet link has no 'xt=urn:btih:...' (the torrent's infohash)")
    if not infohash.strip("0"):   # libtorrent reads an all-zero hash as "no info-hash" and refuses it
        raise MagnetError("magnet link's infohash is all zeros: no torrent has it")
    return Magnet(infohash=infohash, name=name, trackers=tuple(trackers), peers=tuple(peers), uri=uri)


def make_magnet(
    infohash: str,
    name: str | None = None,
    trackers: Iterable[str] = (),
    peers: Iterable[tuple[str, int]] = (),
) -> str:
    """A normalised magnet link from parts. Raises MagnetError for a bad infohash or peer.

    >>> make_magnet("C12FE1C06BBA254A9DC9F519B335AA7C1367A88A", peers=[("::1", 6881)])
    'magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&x.pe=[::1]:6881'
    """
    checked_peers: list[tuple[str, int]] = []
    for host, port in peers:
        # Unlike parsing, a bad peer here is the caller's bug, so say so instead of dropping it.
        peer = _parse_peer(_format_peer(host, port)) if type(port) is int else None
        if peer is None:
            raise MagnetError(f"invalid peer {host!r}:{port!r}: expected a host and a port 1-65535")
        if peer not in checked_peers:
            checked_peers.append(peer)
    unique_trackers = tuple(dict.fromkeys(t for t in trackers if t))
    magnet = Magnet(
        infohash=normalise_infohash(infohash),
        name=name or None,
        trackers=unique_trackers,
        peers=tuple(checked_peers),
    )
    return magnet.to_uri()


def _query_pairs(query: str) -> Iterable[tuple[str, str]]:
    """Decoded (key, value) pairs; keys lowercased and de-numbered (tr.1 -> tr)."""
    for field in query.split("&"):
        if not field:
            continue
        raw_key, _, raw_value = field.partition("=")
        # '+' means space in query strings, and magnet writers use it in dn.
        key = unquote_plus(raw_key, errors="replace").strip().lower()
        numbered = _NUMBERED_KEY.fullmatch(key)
        if numbered:
            key = numbered.group(1)
        yield key, unquote_plus(raw_value, errors="replace").strip()


def _infohash_from_topic(value: str) -> str:
    try:
        return normalise_infohash(value)
    except MagnetError as exc:
        raise MagnetError(f"bad 'xt=urn:btih:' in magnet link: {exc}") from None


def _parse_peer(text: str) -> tuple[str, int] | None:
    """(host, port) from 'host:port' or '[ipv6]:port'; None when it is not one."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not _PEER_HOST.fullmatch(host):
            return None
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        return None
    port = int(port_text)
    if not 1 <= port <= 65535:
        return None
    return host, port


def _format_peer(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
