"""Shared handler behaviour: JSON errors, Host checks, parameter parsing.

Every error leaves as ``{"error": "..."}`` with a 4xx/5xx status and a
message a person understands; the mapping from our exceptions to statuses is
:data:`ERROR_STATUS`, in one place.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import tornado.web

from ...engine.session import TorrentBusy, TorrentLimitReached
from ...engine import EngineError, MetadataTimeout, PieceError, ReaderClosed, ReadTimeout
from ...kit import FileNotInTorrent, Kit, UnknownTorrent
from ...magnets import MagnetError
from ...ops import access
from ...ops.limits import LimitExceeded, is_active_stream_request
from ...ops.settings import is_loopback_host

log = logging.getLogger("tstream.http")

#: exception class -> HTTP status; the first match in order wins
ERROR_STATUS: list[tuple[type[BaseException], int]] = [
    (MagnetError, 400),
    (UnknownTorrent, 404),
    (FileNotInTorrent, 404),
    (MetadataTimeout, 504),
    (TorrentLimitReached, 503),
    (TorrentBusy, 503),
    (LimitExceeded, 503),   # its own status (429 or 503) and Retry-After: see _handle_request_exception
    (ReadTimeout, 504),
    (ReaderClosed, 410),
    (PieceError, 502),
    (EngineError, 500),
    (ValueError, 400),
]

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}   # kept on the error response (e.g. WWW-Authenticate)


class BaseHandler(tornado.web.RequestHandler):
    """JSON API handler. Subclasses use ``self.kit``."""

    kit: Kit

    def initialize(self, kit: Kit) -> None:
        self.kit = kit

    def set_default_headers(self) -> None:
        super().set_default_headers()   # Jupyter's security headers, when mounted there
        self.set_header("X-Content-Type-Options", "nosniff")
        self._apply_cors()

    def _apply_cors(self) -> None:
        """CORS headers only for the configured origin (ops/access.py). Called
        from set_default_headers (after clear() on errors) and prepare()
        (the first call, in __init__, comes before initialize() sets the kit)."""
        origin = getattr(self, "kit", None) and self.kit.settings.cors_origin
        if origin:
            for name, value in access.cors_headers(origin, self.request.headers.get("Origin")).items():
                self.set_header(name, value)

    #: bytes of body handed to the connection (the request log's ``bytes``)
    bytes_sent = 0

    def flush(self, include_footers: bool = False) -> Any:
        self.bytes_sent += sum(len(c) for c in self._write_buffer)
        return super().flush(include_footers)

    async def options(self, *args: Any) -> None:
        """CORS preflight: allowed methods and headers for the configured origin."""
        if access.cors_headers(self.kit.settings.cors_origin, self.request.headers.get("Origin")):
            for name, value in access.PREFLIGHT_HEADERS.items():
                self.set_header(name, value)
        self.set_status(204)
        self.finish()

    def prepare(self) -> None:
        self._apply_cors()
        self._check_host()
        self._check_limits_and_token()

    def _check_limits_and_token(self) -> None:
        """Deployment checks (ops/): body size, API token, per-client rate limit."""
        s = self.kit.settings
        if self.request.method == "OPTIONS":
            return   # a CORS preflight carries no credentials
        length = self.request.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > s.max_upload_size:
            from ...ops.settings import format_size
            raise ApiError(413, f"request body of {format_size(int(length))} is larger than "
                           f"{format_size(s.max_upload_size)} (TSTREAM_MAX_UPLOAD_SIZE)")
        if s.api_token:
            given = access.request_token(self.request.headers, self.get_cookie(access.COOKIE))
            if given is None and self.request.path == "/":   # the player page: set the cookie
                given = self.get_query_argument("token", None)
                if given and access.token_ok(s.api_token, given):
                    self.set_cookie(access.COOKIE, given, httponly=True, samesite="Strict",
                                    secure=self.request.protocol == "https")
            if not access.token_ok(s.api_token, given):
                raise ApiError(401, "an API token is required: send `Authorization: Bearer TOKEN` "
                               f"or `{access.HEADER}: TOKEN`, or open /?token=TOKEN once in a browser",
                               {"WWW-Authenticate": 'Bearer realm="tstream"'})
        client = self.request.remote_ip or ""
        if s.rate_limit and not is_loopback_host(client) and not is_active_stream_request(
                self.kit, self.request.method or "", self.request.path, self.request.headers,
                self.get_query_argument("magnet", None) or self.get_query_argument("infohash", None),
                client):
            self.kit.limiter.check(client)

    def _check_host(self) -> None:
        """Refuse Host names we do not serve: a web page that rebinds its
        DNS name to 127.0.0.1 must not read this API."""
        allowed = self.kit.settings.allowed_hosts
        if "*" in allowed:
            return
        host = (self.request.host_name or "").lower()
        bind = self.kit.settings.host.lower()
        if host in LOOPBACK_NAMES or host == bind or host in allowed:
            return
        if bind in ("0.0.0.0", "::", ""):
            # bound to every interface: any literal address of this host is fine
            if _is_ip_literal(host):
                return
        raise ApiError(403, f"Host {host!r} is not allowed; add it to TSTREAM_ALLOWED_HOSTS")

    # ------------------------------------------------------------ parameters
    def arg_int(self, name: str, *, default: int | None = None, minimum: int | None = None) -> int | None:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"{name} must be an integer, got {raw[:40]!r}") from None
        if minimum is not None and value < minimum:
            raise ApiError(400 if name != "file_index" else 404,
                           f"{name} must be >= {minimum}, got {value}")
        if value > 2**63 - 1:   # SQLite, PostgreSQL and libtorrent integers end here
            raise ApiError(400 if name != "file_index" else 404,
                           f"{name} must be < 2**63, got {raw[:40]}")
        return value

    def arg_bool(self, name: str, default: bool = False) -> bool:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        text = raw.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ApiError(400, f"{name} must be true or false, got {raw[:40]!r}")

    def magnet_arg(self) -> str:
        value = self.get_query_argument("magnet", None) or self.get_query_argument("infohash", None)
        if not value:
            raise ApiError(400, "missing magnet: pass ?magnet=magnet:?xt=urn:btih:... (or a known infohash)")
        return value

    # ----------------------------------------------------------------- output
    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(obj, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info:
            exc = exc_info[1]
            if isinstance(exc, ApiError):
                message = exc.message
            elif isinstance(exc, tornado.web.HTTPError):
                message = exc.log_message or self._reason
        self.clear_header("Content-Range")
        self.clear_header("Content-Disposition")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))

    def send_error_for(self, exc: BaseException) -> None:
        """Answer with the status our exception maps to."""
        status = 500
        for cls, code in ERROR_STATUS:
            if isinstance(exc, cls):
                status = code
                break
        message = str(exc) or type(exc).__name__
        if status >= 500 and not isinstance(exc, (MetadataTimeout, ReadTimeout)):
            log.error("%s %s: %s", self.request.method, self.request.uri, message)
        self.clear()
        self.set_status(status)
        if status == 503:
            self.set_header("Retry-After", "5")
        self.write_error(status, exc_info=(type(exc), ApiError(status, message), None))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, LimitExceeded):
            if not self._finished:
                self.clear()
                self.set_status(e.status)
                self.set_header("Retry-After", str(int(e.retry_after)))
                self.write_error(e.status, exc_info=(type(e), ApiError(e.status, str(e)), None))
            return
        if isinstance(e, ApiError):
            if not self._finished:
                self.clear()
                self.set_status(e.status)
                for name, value in e.headers.items():
                    self.set_header(name, value)
                self.write_error(e.status, exc_info=(type(e), e, None))
            return
        if isinstance(e, tornado.web.HTTPError):
            return super()._handle_request_exception(e)
        if isinstance(e, asyncio.CancelledError):
            return
        if any(isinstance(e, cls) for cls, _ in ERROR_STATUS):
            if not self._finished:
                self.send_error_for(e)
            return
        super()._handle_request_exception(e)


def _is_ip_literal(host: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False
