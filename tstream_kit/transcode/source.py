"""The loopback source ffmpeg reads a torrent's file from: HTTP with Range, through a FileReader.

ffmpeg's HTTP client sends ``Range: bytes=N-`` and opens a new request whenever it seeks (an MP4's
``moov`` at the end, an MKV's cues, ``-ss`` to a time nobody downloaded yet), so every byte it
reads goes through a :class:`FileReader`: the pieces under its read head get deadlines, exactly
as for a browser, and nothing waits for the whole file.

Why a server of its own rather than the public ``/api/stream``: the kit does not know the public
address (port 0, a reverse proxy, the Jupyter mount under ``/tstream`` behind Jupyter's auth or an
API token), and ffmpeg's reads are not playbacks to record in the watch history. It listens on
127.0.0.1 on a free port and answers only paths that carry its random token.
"""
from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from tornado.iostream import StreamClosedError

from ..engine import FileReader, PieceError, ReaderClosed, ReadTimeout
from ..server.streaming import write_range
from ..server.ranges import parse_range

if TYPE_CHECKING:  # pragma: no cover
    from ..kit import Kit

log = logging.getLogger("tstream.media")

__all__ = ["SourceServer"]

#: most bytes handed to Tornado per write
CHUNK = 1024 * 1024


class _SourceHandler(tornado.web.RequestHandler):
    _reader: FileReader | None = None

    def initialize(self, source: "SourceServer") -> None:
        self.source = source

    async def head(self, token: str, infohash: str, index: str) -> None:
        await self._serve(token, infohash, int(index), body=False)

    async def get(self, token: str, infohash: str, index: str) -> None:
        await self._serve(token, infohash, int(index), body=True)

    async def _serve(self, token: str, infohash: str, index: int, *, body: bool) -> None:
        if not secrets.compare_digest(token, self.source.token):
            raise tornado.web.HTTPError(403)
        kit = self.source.kit
        torrent = kit.engine.get(infohash)
        f = torrent.file(index) if torrent is not None and torrent.has_metadata else None
        if f is None:
            raise tornado.web.HTTPError(404)
        plan = parse_range(self.request.headers.get("Range"), f.size)
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_status(plan.status)
        for name, value in plan.headers().items():
            self.set_header(name, value)
        if plan.status == 416 or not body or not plan.ranges:
            self.finish()
            return
        start, end = plan.ranges[0]
        purpose = self.get_query_argument("purpose", "ffmpeg")
        reader = kit.open_reader(torrent, f, client="ffmpeg", purpose=purpose,
                                 range=f"{start}-{end}", method="GET")
        self._reader = reader
        try:
            await write_range(self, reader, start, end, CHUNK)
        except StreamClosedError:
            return
        except ReaderClosed:
            return   # ffmpeg closed the connection (it seeks by opening another)
        except (ReadTimeout, PieceError) as exc:
            log.warning("media source %s#%d ended at %d: %s", infohash, index, reader.position, exc)
            self.request.connection.stream.close()
            return
        finally:
            reader.close()
        self.finish()

    def on_connection_close(self) -> None:
        if self._reader is not None:
            self._reader.close(reason="ffmpeg closed the connection")

    def on_finish(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)


class SourceServer:
    """Started on first use, on the kit's loop; ``url(torrent, file)`` is what ffmpeg opens."""

    def __init__(self, kit: "Kit") -> None:
        self.kit = kit
        self.token = secrets.token_urlsafe(18)
        self.port: int | None = None
        self._server: tornado.httpserver.HTTPServer | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        app = tornado.web.Application(
            [(r"/src/([^/]+)/([0-9a-f]{40})/(\d+)", _SourceHandler, {"source": self})],
            log_function=lambda h: None)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=60)
        server.add_sockets(sockets)
        self._server = server
        self.port = sockets[0].getsockname()[1]

    def url(self, infohash: str, index: int, purpose: str = "ffmpeg") -> str:
        self.start()
        return f"http://127.0.0.1:{self.port}/src/{self.token}/{infohash}/{index}?purpose={purpose}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
