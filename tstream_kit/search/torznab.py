"""Torznab: the API Jackett and Prowlarr expose (one provider per indexer URL).

``t=caps`` describes the indexer; ``t=search&q=&apikey=&cat=`` answers RSS 2.0
whose items carry ``torznab:attr`` name/value pairs (seeders, peers, size,
infohash, magneturl, category). A result's magnet comes from, in order: a
``magnet:`` link in the item; ``magneturl`` when it is an HTTP link (Prowlarr
answers it with a redirect to the magnet), followed; the ``infohash``
attribute; the ``.torrent`` enclosure, downloaded and hashed. Jackett's
aggregate endpoint (``.../indexers/all/results/torznab/``) is just another URL.
"""
from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from ..magnets import MagnetError, make_magnet, parse_magnet
from .base import ProviderError, ProviderParseError, Result
from .bencode import BencodeError, torrent_meta
from .http import Fetcher
from .query import parse_size, rfc822_to_iso, to_int
from .xml import Element, parse_xml

log = logging.getLogger("tstream.search")

__all__ = ["TorznabIndexer", "TorznabProvider", "parse_torznab_feed", "parse_caps", "CATEGORY_NAMES"]

NS = "{http://torznab.com/schemas/2015/feed}"

#: the Newznab/Torznab standard categories (top level and common subcategories)
CATEGORY_NAMES = {
    1000: "Console", 2000: "Movies", 2030: "Movies/SD", 2040: "Movies/HD", 2045: "Movies/UHD",
    2060: "Movies/3D", 3000: "Audio", 4000: "PC", 5000: "TV", 5030: "TV/SD", 5040: "TV/HD",
    5045: "TV/UHD", 5070: "TV/Anime", 5080: "TV/Documentary", 6000: "XXX", 7000: "Books",
    8000: "Other",
}


@dataclass(frozen=True)
class TorznabIndexer:
    """One configured Torznab endpoint."""

    name: str
    url: str
    apikey: str = ""
    categories: tuple[int, ...] = ()

    @property
    def api_url(self) -> str:
        """The ``.../api`` URL: Jackett and Prowlarr are configured by their base."""
        parts = urllib.parse.urlsplit(self.url)
        path = parts.path if parts.path.endswith("/api") else parts.path.rstrip("/") + "/api"
        return urllib.parse.urlunsplit(parts._replace(path=path))


@dataclass
class _Item:
    result: Result
    magneturl: str | None = None
    torrent_url: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)


def category_name(value: str | int | None) -> str | None:
    n = to_int(value)
    if n is None:
        return None if value in (None, "") else str(value)
    return CATEGORY_NAMES.get(n) or CATEGORY_NAMES.get(n - n % 1000) or str(n)


def _check_error(root: Element, what: str) -> None:
    if root.tag == "error":
        code = root.get("code", "?")
        raise ProviderError(f"{what} refused the request: error {code}: {root.get('description', '')}".strip())


def parse_torznab_feed(body: bytes, provider: str) -> list[_Item]:
    """Items of a Torznab search answer (results not yet resolved to magnets)."""
    root = parse_xml(body, provider)
    _check_error(root, provider)
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ProviderParseError(f"{provider} did not answer Torznab RSS (root element <{root.tag}>)")
    items: list[_Item] = []
    for el in channel.findall("item"):
        attrs: dict[str, str] = {}
        for a in el.findall(f"{NS}attr"):
            name, value = a.get("name"), a.get("value")
            if name and value is not None:
                attrs.setdefault(name.lower(), value)
        title = (el.findtext("title") or "").strip()
        if not title:
            continue
        enclosure = el.find("enclosure")
        enc_url = enclosure.get("url") if enclosure is not None else None
        size = to_int(attrs.get("size")) or to_int(el.findtext("size")) or (
            to_int(enclosure.get("length")) if enclosure is not None else None)
        seeders = to_int(attrs.get("seeders"))
        peers = to_int(attrs.get("peers"))
        leechers = to_int(attrs.get("leechers"))
        if leechers is None and peers is not None:
            # Torznab's "peers" counts seeders and leechers together
            leechers = max(0, peers - (seeders or 0))
        link = (el.findtext("link") or "").strip() or None
        guid = (el.findtext("guid") or "").strip() or None
        comments = (el.findtext("comments") or "").strip() or None
        page = next((u for u in (comments, guid) if u and u.startswith("http")), None)
        cat = attrs.get("category") or el.findtext("category")
        result = Result(title=title, infohash="", magnet="", size=size, seeders=seeders,
                        leechers=leechers, provider=provider,
                        published=rfc822_to_iso(el.findtext("pubDate")),
                        category=category_name(cat), url=page)
        magnet_link = next((u for u in (attrs.get("magneturl"), link, enc_url, guid)
                            if u and u.startswith("magnet:")), None)
        if magnet_link:
            try:
                m = parse_magnet(magnet_link)
                result.infohash, result.magnet = m.infohash, m.to_uri()
            except MagnetError:
                pass
        if not result.infohash and attrs.get("infohash"):
            try:
                result.infohash = parse_magnet(f"magnet:?xt=urn:btih:{attrs['infohash']}").infohash
            except MagnetError:
                pass
        http_magnet = attrs.get("magneturl") if (attrs.get("magneturl") or "").startswith("http") else None
        torrent_url = next((u for u in (enc_url, link) if u and u.startswith("http")), None)
        items.append(_Item(result=result, magneturl=http_magnet, torrent_url=torrent_url, attrs=attrs))
    return items


def parse_caps(body: bytes, provider: str) -> dict[str, Any]:
    """``t=caps``: server title, limits, search modes and categories."""
    root = parse_xml(body, provider)
    _check_error(root, provider)
    if root.tag != "caps":
        raise ProviderParseError(f"{provider} did not answer Torznab caps (root element <{root.tag}>)")
    server = root.find("server")
    limits = root.find("limits")
    searching = root.find("searching")
    cats: dict[int, str] = {}
    for c in root.iter("category"):
        cid = to_int(c.get("id"))
        if cid is not None:
            cats[cid] = c.get("name", "")
        for s in c.findall("subcat"):
            sid = to_int(s.get("id"))
            if sid is not None:
                cats[sid] = s.get("name", "")
    return {
        "title": server.get("title") if server is not None else None,
        "limits": {"max": to_int(limits.get("max")), "default": to_int(limits.get("default"))}
        if limits is not None else {},
        "searching": {s.tag: {"available": s.get("available") == "yes",
                              "params": [p for p in (s.get("supportedParams") or "").split(",") if p]}
                      for s in (searching if searching is not None else [])},
        "categories": cats,
    }


class TorznabProvider:
    #: at most this many items are resolved (redirects followed, .torrent fetched)
    MAX_RESOLVE = 50
    #: at most this many resolutions at once, per search
    RESOLVE_CONCURRENCY = 8

    def __init__(self, indexer: TorznabIndexer, fetcher: Fetcher, *, timeout: float = 10.0,
                 retries: int = 1, min_interval: float = 0.0, limit: int = 100) -> None:
        self.indexer = indexer
        self.name = indexer.name
        self.fetcher = fetcher
        self.timeout = timeout
        self.retries = retries
        self.min_interval = min_interval
        self.limit = limit

    def _params(self, **kw: str) -> list[tuple[str, str]]:
        params = list(kw.items())
        if self.indexer.apikey:
            params.append(("apikey", self.indexer.apikey))
        return params

    async def caps(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        resp = await self.fetcher.get(self.indexer.api_url, self._params(t="caps"), deadline=deadline,
                                      retries=self.retries, min_interval=self.min_interval)
        return parse_caps(resp.body, self.name)

    async def search(self, query: str) -> list[Result]:
        deadline = time.monotonic() + self.timeout
        params = self._params(t="search", q=query, limit=str(self.limit), extended="1")
        if self.indexer.categories:
            params.append(("cat", ",".join(str(c) for c in self.indexer.categories)))
        resp = await self.fetcher.get(self.indexer.api_url, params, deadline=deadline,
                                      retries=self.retries, min_interval=self.min_interval,
                                      accept="application/rss+xml, application/xml")
        items = parse_torznab_feed(resp.body, self.name)
        sem = asyncio.Semaphore(self.RESOLVE_CONCURRENCY)

        async def resolve(item: _Item) -> Result | None:
            async with sem:
                return await self._resolve(item, deadline)

        resolved = await asyncio.gather(*(resolve(i) for i in items[:self.MAX_RESOLVE]))
        return [r for r in resolved if r is not None]

    async def _resolve(self, item: _Item, deadline: float) -> Result | None:
        r = item.result
        if r.magnet:
            return r
        if item.magneturl:
            try:
                magnet = await self._follow_to_magnet(item.magneturl, deadline)
                if magnet:
                    m = parse_magnet(magnet)
                    if not r.infohash or r.infohash == m.infohash:
                        r.infohash, r.magnet = m.infohash, m.to_uri()
                        return r
            except (ProviderError, MagnetError, BencodeError) as exc:
                log.debug("%s: magneturl of %r not followed: %s", self.name, r.title, exc)
        if r.infohash:
            r.magnet = make_magnet(r.infohash, r.title)
            return r
        if item.torrent_url:
            try:
                resp = await self.fetcher.get(item.torrent_url, deadline=deadline, retries=0,
                                              min_interval=self.min_interval)
                meta = torrent_meta(resp.body)
                r.infohash = meta.infohash
                r.magnet = make_magnet(meta.infohash, meta.name, meta.trackers)
                r.size = r.size or meta.size
                return r
            except (ProviderError, BencodeError, MagnetError) as exc:
                log.debug("%s: .torrent of %r not usable: %s", self.name, r.title, exc)
        return None

    async def _follow_to_magnet(self, url: str, deadline: float) -> str | None:
        """Follow HTTP redirects by hand until a ``magnet:`` Location (tornado
        will not follow a redirect to a non-HTTP scheme), or a .torrent body."""
        for _ in range(5):
            resp = await self.fetcher.get(url, deadline=deadline, retries=0, follow_redirects=False,
                                          min_interval=self.min_interval)
            if 300 <= resp.status < 400:
                location = resp.headers.get("Location", "")
                if location.startswith("magnet:"):
                    return location
                if not location:
                    return None
                url = urllib.parse.urljoin(url, location)
                continue
            if resp.body.startswith(b"magnet:"):
                return resp.body.decode("utf-8", "replace").strip()
            meta = torrent_meta(resp.body)
            return make_magnet(meta.infohash, meta.name, meta.trackers)
        raise ProviderError("too many redirects")


