"""Local stand-ins for the indexers: one Tornado server on 127.0.0.1 (unused
port) answering in each provider's documented format from tests/fixtures/search.

Paths: Jackett ``/api/v2.0/indexers/<id>/results/torznab/api``, Prowlarr
``/prowlarr/<id>/api``, Nyaa ``/nyaa/?page=rss``, apibay ``/apibay/q.php``,
Prowlarr-style magnet redirects ``/redirect/<infohash>``, .torrent files
``/dl/<name>.torrent``. ``modes[service]`` picks the behaviour per service
(``torznab``, ``nyaa``, ``apibay``): ok, empty, malformed, error (Torznab error
element), entities (an XML bomb), 429, 500, 429-once, 500-once, slow.
Every request is recorded (service, path, decoded query arguments, headers,
monotonic time).
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import tornado.httpserver
import tornado.netutil
import tornado.web

from bencode_support import benc

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "search"


bencode = benc     # one bencoder for all tests (tests/bencode_support.py)


def make_torrent(name: str, files: list[tuple[str, int]], tracker: str = "http://127.0.0.1:1/announce") -> tuple[bytes, str]:
    """(.torrent bytes, v1 infohash) of a multi-file torrent (pieces are fake)."""
    info = {"name": name, "piece length": 262144, "pieces": b"\0" * 20,
            "files": [{"length": size, "path": path.split("/")} for path, size in files]}
    raw_info = bencode(info)
    return bencode({"announce": tracker, "info": info}), hashlib.sha1(raw_info).hexdigest()


@dataclass
class Req:
    service: str
    path: str
    args: dict[str, str]
    headers: dict[str, str]
    at: float


@dataclass
class FakeIndexers:
    modes: dict[str, str] = field(default_factory=dict)
    slow_seconds: float = 5.0
    latency: float = 0.0     # added to every answer (benchmark: a network-like delay)
    requests: list[Req] = field(default_factory=list)
    torrents: dict[str, bytes] = field(default_factory=dict)
    port: int = 0

    def __post_init__(self) -> None:
        self._closing = asyncio.Event()
        self._server: tornado.httpserver.HTTPServer | None = None
        self._counts: dict[str, int] = {}
        data, ih = make_torrent("Cosmos Laundromat 2015 1080p",
                                [("Cosmos.Laundromat.2015.1080p.mkv", 734003200), ("Subs/eng.srt", 20480)])
        self.torrents["cosmos"] = data
        self.cosmos_infohash = ih

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def jackett_url(self, indexer: str = "all") -> str:
        return f"{self.base}/api/v2.0/indexers/{indexer}/results/torznab/"

    def prowlarr_url(self, indexer: int = 1) -> str:
        return f"{self.base}/prowlarr/{indexer}/"

    def of(self, service: str) -> list[Req]:
        return [r for r in self.requests if r.service == service]

    async def start(self) -> "FakeIndexers":
        fake = self
        app = tornado.web.Application([
            (r"/api/v2\.0/indexers/([^/]+)/results/torznab/api", _Torznab, {"fake": fake}),
            (r"/prowlarr/([^/]+)/api", _Torznab, {"fake": fake}),
            (r"/nyaa/", _Nyaa, {"fake": fake}),
            (r"/apibay/q\.php", _Apibay, {"fake": fake}),
            (r"/redirect/([0-9a-f]{40})", _Redirect, {"fake": fake}),
            (r"/dl/([^/]+)\.torrent", _Download, {"fake": fake}),
        ], log_function=lambda h: None)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    async def pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def fixture(self, name: str) -> bytes:
        return (FIXTURES / name).read_bytes().replace(b"{BASE}", self.base.encode())


class _Base(tornado.web.RequestHandler):
    service = ""

    def initialize(self, fake: FakeIndexers) -> None:
        self.fake = fake

    def record(self) -> None:
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.fake.requests.append(Req(self.service, self.request.path, args,
                                      dict(self.request.headers), time.monotonic()))

    async def behave(self, ok: bytes, empty: bytes, content_type: str) -> None:
        self.record()
        mode = self.fake.modes.get(self.service, "ok")
        n = self.fake._counts[self.service] = self.fake._counts.get(self.service, 0) + 1
        if self.fake.latency:
            await self.fake.pause(self.fake.latency)
        if mode == "429" or (mode == "429-once" and n == 1):
            self.set_status(429)
            self.set_header("Retry-After", "0.2" if mode == "429-once" else "120")
            self.finish("Too Many Requests")
            return
        if mode == "500" or (mode == "500-once" and n == 1):
            self.set_status(503 if mode == "500" else 500)
            self.finish("<html><body>upstream error</body></html>")
            return
        if mode == "slow":
            await self.fake.pause(self.fake.slow_seconds)
        self.set_header("Content-Type", content_type)
        if mode == "empty":
            self.finish(empty)
        elif mode == "malformed":
            self.finish(ok[: len(ok) // 2])
        elif mode == "entities":
            self.finish(b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                        b"<rss><channel><item><title>&lol2;</title></item></channel></rss>")
        elif mode == "error":
            self.finish(self.fake.fixture("torznab_error.xml"))
        else:
            self.finish(ok)


class _Torznab(_Base):
    service = "torznab"

    async def get(self, indexer: str) -> None:
        if self.get_query_argument("t", "") == "caps":
            self.record()
            self.set_header("Content-Type", "application/xml")
            self.finish(self.fake.fixture("torznab_caps.xml"))
            return
        await self.behave(self.fake.fixture("torznab_search.xml"), self.fake.fixture("torznab_empty.xml"),
                          "application/rss+xml; charset=utf-8")


class _Nyaa(_Base):
    service = "nyaa"

    async def get(self) -> None:
        await self.behave(self.fake.fixture("nyaa_search.xml"), self.fake.fixture("nyaa_empty.xml"),
                          "application/xml; charset=utf-8")


class _Apibay(_Base):
    service = "apibay"

    async def get(self) -> None:
        await self.behave(self.fake.fixture("apibay_search.json"), self.fake.fixture("apibay_noresults.json"),
                          "application/json")


class _Redirect(_Base):
    service = "redirect"

    async def get(self, infohash: str) -> None:
        self.record()
        self.redirect(f"magnet:?xt=urn:btih:{infohash}&dn=Tears+of+Steel&tr=http%3A%2F%2F127.0.0.1%3A1%2Fannounce")


class _Download(_Base):
    service = "download"

    async def get(self, name: str) -> None:
        self.record()
        data = self.fake.torrents.get(name)
        if data is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/x-bittorrent")
        self.finish(data)
