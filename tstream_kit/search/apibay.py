"""The Pirate Bay's public JSON API (apibay ``q.php?q=``), a public service: paced.

It answers a JSON array of rows with string fields (``id``, ``name``,
``info_hash``, ``seeders``, ``leechers``, ``size``, ``added`` as Unix time,
``category`` as a number). "No results" is not an empty array but one sentinel
row (id ``0``, name "No results returned", an all-zero infohash): it yields
zero results.
"""
from __future__ import annotations

import json
import time
from typing import Any

from ..magnets import MagnetError, make_magnet, normalise_infohash
from .base import ProviderParseError, Result
from .http import PUBLIC_MIN_INTERVAL, Fetcher
from .query import to_int, unix_to_iso

__all__ = ["ApibayProvider", "parse_apibay", "APIBAY_TRACKERS", "APIBAY_CATEGORIES"]

APIBAY_TRACKERS = (
    "udp://tracker.opentrackr.org:1337/announce",
    "udp://open.stealth.si:80/announce",
    "udp://tracker.torrent.eu.org:451/announce",
    "udp://tracker.bittor.pw:1337/announce",
    "udp://explodie.org:6969/announce",
)
APIBAY_CATEGORIES = {
    100: "Audio", 101: "Audio/Music", 200: "Video", 201: "Video/Movies", 202: "Video/Movies DVDR",
    203: "Video/Music videos", 205: "Video/TV shows", 207: "Video/HD Movies", 208: "Video/HD TV shows",
    209: "Video/3D", 211: "Video/UHD Movies", 212: "Video/UHD TV shows", 299: "Video/Other",
    300: "Applications", 400: "Games", 500: "Porn", 600: "Other", 601: "Other/E-books",
}
_ZERO = "0" * 40


def _category(value: Any) -> str | None:
    n = to_int(value)
    if n is None or n == 0:
        return None
    return APIBAY_CATEGORIES.get(n) or APIBAY_CATEGORIES.get(n - n % 100) or str(n)


def parse_apibay(body: bytes, provider: str = "apibay") -> list[Result]:
    try:
        rows = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: "[[[[..."
        snippet = body[:80].decode("utf-8", "replace")
        raise ProviderParseError(f"{provider} sent malformed JSON ({exc}): {snippet!r}") from None
    if not isinstance(rows, list):
        raise ProviderParseError(f"{provider} did not answer a JSON array")
    out: list[Result] = []
    for row in rows:
        if not isinstance(row, dict):
            raise ProviderParseError(f"{provider} sent a row that is not an object")
        raw_hash = str(row.get("info_hash") or "")
        if str(row.get("id")) == "0" or raw_hash.strip("0") == "":
            continue   # the "No results returned" sentinel
        try:
            infohash = normalise_infohash(raw_hash)
        except MagnetError:
            continue
        title = str(row.get("name") or "").strip() or infohash
        rid = to_int(row.get("id"))
        out.append(Result(
            title=title, infohash=infohash, magnet=make_magnet(infohash, title, APIBAY_TRACKERS),
            size=to_int(row.get("size")), seeders=to_int(row.get("seeders")),
            leechers=to_int(row.get("leechers")), provider=provider,
            published=unix_to_iso(row.get("added")), category=_category(row.get("category")),
            url=f"https://thepiratebay.org/description.php?id={rid}" if rid else None,
        ))
    return out


class ApibayProvider:
    def __init__(self, fetcher: Fetcher, *, base_url: str = "https://apibay.org", name: str = "apibay",
                 category: str = "0", timeout: float = 10.0, retries: int = 1,
                 min_interval: float = PUBLIC_MIN_INTERVAL) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.fetcher = fetcher
        self.category = category
        self.timeout = timeout
        self.retries = retries
        self.min_interval = min_interval

    async def search(self, query: str) -> list[Result]:
        deadline = time.monotonic() + self.timeout
        resp = await self.fetcher.get(f"{self.base_url}/q.php", [("q", query), ("cat", self.category)],
                                      deadline=deadline, retries=self.retries,
                                      min_interval=self.min_interval, accept="application/json")
        return parse_apibay(resp.body, self.name)
