"""A small, strict bencode reader: enough to take a .torrent file apart
(name, files, infohash) without libtorrent, so search never imports it.

>>> t = b"d8:announce3:url4:infod6:lengthi5e4:name5:a.mp412:piece lengthi16384e6:pieces20:" + b"x" * 20 + b"ee"
>>> meta = torrent_meta(t)
>>> meta.name, meta.files, meta.infohash
('a.mp4', [('a.mp4', 5)], '8093bfebd47bd614e43dac2c36e5fcb6bacf5f4e')
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

__all__ = ["BencodeError", "bdecode", "TorrentMeta", "torrent_meta", "info_meta"]


class BencodeError(ValueError):
    """Not valid bencode, or not a torrent."""


def _decode(data: bytes, i: int, depth: int = 0) -> tuple[Any, int]:
    if depth > 64:
        raise BencodeError("bencode nested too deeply")
    if i >= len(data):
        raise BencodeError("bencode ends early")
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        try:
            return int(data[i + 1:end]), end + 1
        except ValueError:
            raise BencodeError(f"bad integer at {i}") from None
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            v, i = _decode(data, i, depth + 1)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        d: dict[bytes, Any] = {}
        while data[i:i + 1] != b"e":
            k, i = _decode(data, i, depth + 1)
            if not isinstance(k, bytes):
                raise BencodeError("dictionary key is not a string")
            start = i
            v, i = _decode(data, i, depth + 1)
            d[k] = v
            if k == b"info" and depth == 0:
                d[b"\0info-span"] = (start, i)
        return d, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        end = colon + 1 + n
        if end > len(data):
            raise BencodeError("string runs past the end")
        return data[colon + 1:end], end
    raise BencodeError(f"unexpected byte {c!r} at {i}")


def bdecode(data: bytes) -> Any:
    try:
        value, end = _decode(bytes(data), 0)
    except (IndexError, ValueError) as exc:
        raise BencodeError(str(exc) or "invalid bencode") from None
    if end != len(data):
        raise BencodeError("trailing bytes after bencode")
    return value


@dataclass
class TorrentMeta:
    infohash: str               # v1, 40 hex
    name: str
    files: list[tuple[str, int]]  # (path, size)
    trackers: list[str]
    info: bytes                 # the bencoded info dictionary (metadata cache)

    @property
    def size(self) -> int:
        return sum(s for _, s in self.files)


def _text(b: Any) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


def info_meta(info: bytes, trackers: list[str] | None = None) -> TorrentMeta:
    """Name and files of a bencoded info dictionary."""
    d = bdecode(info)
    if not isinstance(d, dict) or b"name" not in d:
        raise BencodeError("not a torrent info dictionary (no name)")
    try:
        return _info_meta(d, info, trackers)
    except (TypeError, AttributeError, ValueError) as exc:   # a list where a dict belongs, ...
        raise BencodeError(f"not a torrent info dictionary ({exc})") from None


def _info_meta(d: dict, info: bytes, trackers: list[str] | None) -> TorrentMeta:
    name = _text(d.get(b"name.utf-8", d[b"name"]))
    files: list[tuple[str, int]] = []
    if b"files" in d:
        for f in d[b"files"]:
            attr = f.get(b"attr", b"")
            if isinstance(attr, bytes) and b"p" in attr:   # BEP 47 pad file
                continue
            parts = f.get(b"path.utf-8", f.get(b"path", []))
            files.append(("/".join([name] + [_text(p) for p in parts]), int(f.get(b"length", 0))))
    elif b"length" in d:
        files.append((name, int(d[b"length"])))
    else:
        raise BencodeError("v2-only torrents are not supported (no length or files)")
    return TorrentMeta(infohash=hashlib.sha1(info).hexdigest(), name=name, files=files,
                       trackers=trackers or [], info=bytes(info))


def torrent_meta(data: bytes) -> TorrentMeta:
    """Infohash, name, files and trackers of .torrent bytes; BencodeError if not one."""
    d = bdecode(data)
    if not isinstance(d, dict) or b"\0info-span" not in d:
        raise BencodeError("not a .torrent file (no info dictionary)")
    start, end = d[b"\0info-span"]
    trackers: list[str] = []
    if isinstance(d.get(b"announce"), bytes):
        trackers.append(_text(d[b"announce"]))
    tiers = d.get(b"announce-list")
    for tier in tiers if isinstance(tiers, list) else []:
        for t in tier if isinstance(tier, list) else []:
            if isinstance(t, bytes) and _text(t) not in trackers:
                trackers.append(_text(t))
    return info_meta(bytes(data[start:end]), trackers)
