"""Local stand-ins for AniList (GraphQL over POST) and Nyaa (RSS), one Tornado
server on 127.0.0.1 (unused port), answering in their documented formats from
tests/fixtures/anime.

AniList: ``POST /graphql`` with ``{"query", "variables"}``; ``Media(id:)``
answers ``anilist_media_<id>.json`` or AniList's 404 error, ``Page`` answers
``anilist_page.json`` (filtered by ``search``). Nyaa: ``GET /nyaa/?page=rss``
answers ``nyaa_frieren.xml`` for queries naming Frieren, an empty feed
otherwise. ``modes["anilist"|"nyaa"]``: ok, empty, malformed, 429, 429-once,
500. Every request is recorded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "anime"


@dataclass
class AnimeFakes:
    modes: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    batch_infohash: str = "b" * 40
    retry_after: str = "0.3"
    port: int = 0

    def __post_init__(self) -> None:
        self._server: tornado.httpserver.HTTPServer | None = None
        self._counts: dict[str, int] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def anilist_url(self) -> str:
        return f"{self.base}/graphql"

    @property
    def nyaa_url(self) -> str:
        return f"{self.base}/nyaa/"

    def of(self, service: str) -> list[dict[str, Any]]:
        return [r for s, r in self.requests if s == service]

    async def start(self) -> "AnimeFakes":
        app = tornado.web.Application([(r"/graphql", _AniList, {"fake": self}), (r"/nyaa/", _Nyaa, {"fake": self})],
                                      log_function=lambda h: None)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self._server = tornado.httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    def mode(self, service: str) -> str:
        n = self._counts[service] = self._counts.get(service, 0) + 1
        mode = self.modes.get(service, "ok")
        if mode == "429-once":
            return "429" if n == 1 else "ok"
        return mode


class _AniList(tornado.web.RequestHandler):
    def initialize(self, fake: AnimeFakes) -> None:
        self.fake = fake

    def post(self) -> None:
        try:
            doc = json.loads(self.request.body)
            query, variables = doc["query"], doc.get("variables") or {}
        except (ValueError, KeyError):
            self.set_status(400)
            self.finish({"errors": [{"message": "Invalid request", "status": 400}], "data": None})
            return
        self.fake.requests.append(("anilist", {"query": query, "variables": variables,
                                               "content_type": self.request.headers.get("Content-Type")}))
        mode = self.fake.mode("anilist")
        self.set_header("Content-Type", "application/json")
        self.set_header("X-RateLimit-Limit", "90")
        self.set_header("X-RateLimit-Remaining", "59")
        if mode == "429":
            self.set_status(429)
            self.set_header("Retry-After", self.fake.retry_after)
            self.set_header("X-RateLimit-Remaining", "0")
            self.finish((FIXTURES / "anilist_429.json").read_bytes())
            return
        if mode == "500":
            self.set_status(500)
            self.finish(b'{"errors":[{"message":"Internal Server Error","status":500}],"data":null}')
            return
        if mode == "malformed":
            self.finish(b'{"data": {"Page": ')
            return
        if "Media(id" in query:
            path = FIXTURES / f"anilist_media_{int(variables.get('id', 0))}.json"
            if not path.exists() or mode == "empty":
                self.set_status(404)
                self.finish((FIXTURES / "anilist_not_found.json").read_bytes())
                return
            self.finish(path.read_bytes())
            return
        page = json.loads((FIXTURES / ("anilist_empty.json" if mode == "empty" else "anilist_page.json")).read_text())
        search = (variables.get("search") or "").lower()
        if search:
            media = page["data"]["Page"]["media"]
            page["data"]["Page"]["media"] = [m for m in media if search in json.dumps(m["title"]).lower()
                                             or any(search in s.lower() for s in m["synonyms"])]
        elif "POPULARITY_DESC" == (variables.get("sort") or [""])[0]:
            page["data"]["Page"]["media"].sort(key=lambda m: -m["popularity"])
        self.finish(json.dumps(page))


class _Nyaa(tornado.web.RequestHandler):
    def initialize(self, fake: AnimeFakes) -> None:
        self.fake = fake

    def get(self) -> None:
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        self.fake.requests.append(("nyaa", args))
        mode = self.fake.mode("nyaa")
        if mode == "429":
            self.set_status(429)
            self.set_header("Retry-After", "120")
            self.finish("Too Many Requests")
            return
        if mode == "500":
            self.set_status(503)
            self.finish("<html><body>upstream error</body></html>")
            return
        self.set_header("Content-Type", "application/rss+xml; charset=utf-8")
        if mode == "malformed":
            self.finish((FIXTURES / "nyaa_malformed.xml").read_bytes())
            return
        name = "nyaa_frieren.xml" if "frieren" in args.get("q", "").lower() and mode != "empty" else "nyaa_empty.xml"
        body = (FIXTURES / name).read_bytes().replace(b"{BASE}", self.fake.base.encode())
        self.finish(body.replace(b"{BATCH_IH}", self.fake.batch_infohash.encode()))
