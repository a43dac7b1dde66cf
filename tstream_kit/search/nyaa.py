"""Nyaa's RSS search (``/?page=rss&q=&c=&f=``), a public service: paced.

Items carry ``nyaa:seeders``, ``nyaa:leechers``, ``nyaa:infoHash``,
``nyaa:size`` ("1.2 GiB"), ``nyaa:category`` and ``nyaa:trusted`` /
``nyaa:remake`` (Yes/No: kept as ``Result.trusted`` / ``remake``); ``<link>`` is the .torrent
download and ``<guid>`` the view page. Magnets are built from the infohash
with Nyaa's own tracker.
"""
from __future__ import annotations

import time

from ..magnets import MagnetError, make_magnet, normalise_infohash
from .base import ProviderParseError, Result
from .http import PUBLIC_MIN_INTERVAL, Fetcher
from .query import parse_size, rfc822_to_iso, to_int
from .xml import parse_xml

__all__ = ["NyaaProvider", "parse_nyaa_feed", "NYAA_TRACKERS"]

NS = "{https://nyaa.si/xmlns/nyaa}"
NYAA_TRACKERS = (
    "http://nyaa.tracker.wf:7777/announce",
    "udp://open.stealth.si:80/announce",
    "udp://tracker.opentrackr.org:1337/announce",
    "udp://exodus.desync.com:6969/announce",
)


def parse_nyaa_feed(body: bytes, provider: str = "nyaa") -> list[Result]:
    root = parse_xml(body, provider)
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ProviderParseError(f"{provider} did not answer RSS (root element <{root.tag}>)")
    out: list[Result] = []
    for el in channel.findall("item"):
        title = (el.findtext("title") or "").strip()
        raw_hash = (el.findtext(f"{NS}infoHash") or "").strip()
        if not title or not raw_hash:
            continue
        try:
            infohash = normalise_infohash(raw_hash)
        except MagnetError:
            continue
        if not infohash.strip("0"):
            continue   # no torrent has it; its magnet would be refused
        guid = (el.findtext("guid") or "").strip()
        out.append(Result(
            title=title, infohash=infohash,
            magnet=make_magnet(infohash, title, NYAA_TRACKERS),
            size=parse_size(el.findtext(f"{NS}size")),
            size_exact=False,
            seeders=to_int(el.findtext(f"{NS}seeders")),
            leechers=to_int(el.findtext(f"{NS}leechers")),
            provider=provider,
            published=rfc822_to_iso(el.findtext("pubDate")),
            category=(el.findtext(f"{NS}category") or "").strip() or None,
            url=guid if guid.startswith("http") else None,
            trusted=_yes_no(el.findtext(f"{NS}trusted")),
            remake=_yes_no(el.findtext(f"{NS}remake")),
        ))
    return out


def _yes_no(text: str | None) -> bool | None:
    value = (text or "").strip().lower()
    return True if value == "yes" else False if value == "no" else None


class NyaaProvider:
    def __init__(self, fetcher: Fetcher, *, base_url: str = "https://nyaa.si", name: str = "nyaa",
                 category: str = "0_0", filter: str = "0", timeout: float = 10.0, retries: int = 1,
                 min_interval: float = PUBLIC_MIN_INTERVAL) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/") + "/"
        self.fetcher = fetcher
        self.category = category
        self.filter = filter
        self.timeout = timeout
        self.retries = retries
        self.min_interval = min_interval

    async def search(self, query: str) -> list[Result]:
        deadline = time.monotonic() + self.timeout
        resp = await self.fetcher.get(
            self.base_url,
            [("page", "rss"), ("q", query), ("c", self.category), ("f", self.filter)],
            deadline=deadline, retries=self.retries, min_interval=self.min_interval,
            accept="application/rss+xml, application/xml")
        return parse_nyaa_feed(resp.body, self.name)
