"""make_app(kit) -> tornado Application; run() for ``tstream serve``.

The route table is built by :func:`routes`, which both the standalone app
and the Jupyter server extension use (with a ``/tstream`` prefix there).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..config import Settings
from ..kit import Kit
from .handlers.api import (
    HealthHandler, InfoHandler, PeersHandler, PiecesHandler, StreamsHandler, TorrentHandler,
    TorrentsHandler,
)
from .handlers.base import ApiError, BaseHandler
from .handlers.history import (HistoryHandler, PopularHandler, ResumeHandler, SessionHandler,
                               current_session)
from .handlers.media import (DownloadHandler, MediaHandler, MediaScriptHandler, SubtitlesHandler,
                             TranscodeHandler, TranscodesHandler)
from .handlers.anime import ANIME_ROUTES
from .handlers.search import SearchHandler
from .handlers.stream import StreamHandler
from .openapi import OpenApiHandler

log = logging.getLogger("tstream.http")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

__all__ = ["make_app", "routes", "serve", "RunningServer"]


class IndexHandler(BaseHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; script-src 'unsafe-inline' 'self'; "
                        "style-src 'unsafe-inline' 'self'; media-src 'self' blob:")
        current_session(self, strict=False)   # the page's video requests then carry the cookie
        self.finish((STATIC_DIR / "index.html").read_bytes())


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        raise ApiError(404, f"no such endpoint: {self.request.path}")


def routes(kit: Kit, prefix: str = "") -> list[tuple[str, type, dict[str, Any]]]:
    """(pattern, handler, kwargs) for every endpoint; the product spec's
    Node-edition paths answer too."""
    p = prefix.rstrip("/")
    kw = {"kit": kit}
    table: list[tuple[str, type]] = [
        (r"/", IndexHandler),
        (r"/api/stream", StreamHandler), (r"/stream", StreamHandler),
        (r"/api/info", InfoHandler), (r"/torrent/info", InfoHandler),
        (r"/api/streams", StreamsHandler), (r"/streams", StreamsHandler),
        (r"/api/torrent", TorrentHandler), (r"/torrent", TorrentHandler),
        (r"/api/torrents", TorrentsHandler),
        (r"/api/peers", PeersHandler),
        (r"/api/pieces", PiecesHandler),
        (r"/api/search", SearchHandler), (r"/api/torrents/search", SearchHandler),
        (r"/api/session", SessionHandler),
        (r"/api/history", HistoryHandler), (r"/history", HistoryHandler),
        (r"/api/resume", ResumeHandler),
        (r"/api/popular", PopularHandler), (r"/popular", PopularHandler),
        (r"/api/health", HealthHandler), (r"/health", HealthHandler),
        # media (issue 7): probe, fMP4 remux/transcode, subtitles, download, player script
        (r"/api/media", MediaHandler),
        (r"/api/transcode", TranscodeHandler), (r"/api/transcodes", TranscodesHandler),
        (r"/api/subtitles", SubtitlesHandler),
        (r"/api/download", DownloadHandler),
        (r"/media.js", MediaScriptHandler),
        # anime (issue 10): AniList catalogue, episode torrents, next episode
        *ANIME_ROUTES,
        # reliability (issue 9): this API as OpenAPI 3 (tstream_kit/server/openapi.py)
        (r"/api/openapi.json", OpenApiHandler),
    ]
    return [(p + path, cls, kw) for path, cls in table]


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # one structured line per request: status, bytes sent, duration (ops/logs.py)
    from ..ops.logs import log_request
    log_request(handler, log)


def make_app(kit: Kit, prefix: str = "") -> tornado.web.Application:
    return tornado.web.Application(
        routes(kit, prefix),
        default_handler_class=NotFoundHandler,
        default_handler_args={"kit": kit},
        log_function=_log_request,
        compress_response=False,   # never gzip video: Range offsets would break
    )


class RunningServer:
    """A started kit + HTTP server on the current loop (tests, demo, CLI)."""

    def __init__(self, kit: Kit, server: tornado.httpserver.HTTPServer, port: int) -> None:
        self.kit = kit
        self.server = server
        self.port = port

    @property
    def url(self) -> str:
        host = self.kit.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        self.server.stop()
        await self.kit.stop()


async def start_server(settings: Settings, kit: Kit | None = None) -> RunningServer:
    from ..config import ConfigError
    from ..ops.access import access_problems
    if access_problems(settings):   # a public address without a token: refuse to start
        raise ConfigError(access_problems(settings))
    kit = kit or Kit(settings)
    await kit.start()
    app = make_app(kit)
    server = tornado.httpserver.HTTPServer(
        app, idle_connection_timeout=settings.http_idle_timeout,
        body_timeout=settings.http_body_timeout,
        # bodies up to twice the limit are read and answered 413 with a message;
        # larger ones are refused by Tornado before the body is read
        max_body_size=2 * settings.max_upload_size,
        xheaders=settings.trust_proxy)
    try:
        sockets = tornado.netutil.bind_sockets(settings.port, settings.host)
    except OSError as exc:
        await kit.stop()
        raise OSError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from exc
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    return RunningServer(kit, server, port)


async def serve(settings: Settings, *, ready: Any = None) -> None:
    """Run until SIGINT/SIGTERM."""
    running = await start_server(settings)
    log.info("tstream serving on %s (data in %s)", running.url, settings.data_dir)
    if ready is not None:
        ready(running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    await stop.wait()
    started = time.monotonic()
    await running.stop()
    log.info("stopped in %.1fs", time.monotonic() - started)

