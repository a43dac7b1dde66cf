"""History API: /api/session, /api/history, /api/resume, /api/popular.

Sessions (see :mod:`tstream_kit.sessions`): a signed ``session_id`` cookie
issued here, or the same token sent explicitly in ``X-Session-Id`` (or
``?session=``). A session only ever reads and writes its own watches.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from ...engine import Torrent
from ...magnets import Magnet, MagnetError, normalise_infohash, parse_magnet
from ...media import FileEntry
from ...sessions import COOKIE, COOKIE_MAX_AGE_S, HEADER, PARAM, Session
from ...store.history.base import Cursor, StoreUnavailable, Watch
from .base import ApiError, BaseHandler

log = logging.getLogger("tstream.http")

__all__ = ["SessionHandler", "HistoryHandler", "ResumeHandler", "PopularHandler",
           "current_session", "record_stream_start"]

MAX_LIMIT = 500


def current_session(handler: BaseHandler, *, strict: bool = True) -> Session:
    """The request's session. An explicit token that does not verify is a
    401 (``strict``) or ignored; a missing or forged cookie gets a fresh
    session, whose cookie is set on this response."""
    signer = handler.kit.history.signer
    if signer is None:
        raise ApiError(503, "history is not started")
    explicit = handler.request.headers.get(HEADER)
    source = "header"
    if not explicit:
        explicit = handler.get_query_argument(PARAM, None)
        source = "param"
    if explicit:
        sid = signer.verify(explicit)
        if sid is not None:
            return Session(sid, explicit.strip(), fresh=False, source=source)
        if strict:
            raise ApiError(401, f"invalid session token in {HEADER if source == 'header' else PARAM!r}: "
                                "use the token from POST /api/session (or the session_id cookie)")
    cookie = handler.get_cookie(COOKIE)
    sid = signer.verify(cookie)
    if sid is not None:
        return Session(sid, cookie or "", fresh=False, source="cookie")
    session = signer.new()
    handler.set_cookie(COOKIE, session.token, path="/", httponly=True, samesite="Lax",
                       secure=handler.request.protocol == "https", max_age=COOKIE_MAX_AGE_S)
    return session


def clean_magnet(text: str) -> Magnet:
    """Parse a magnet (or infohash); the stored link drops ``x.pe`` peers,
    which are addresses of the moment, not part of what was watched."""
    text = (text or "").strip()
    if not text:
        raise MagnetError("missing magnet: pass magnet=magnet:?xt=urn:btih:... or an infohash")
    if text.lower().startswith("magnet:"):
        m = parse_magnet(text)
        return Magnet(infohash=m.infohash, name=m.name, trackers=m.trackers)
    return Magnet(infohash=normalise_infohash(text))


def record_stream_start(handler: BaseHandler, torrent: Torrent, f: FileEntry, magnet_text: str) -> None:
    """Called by the stream handler for every GET with a body: records one
    watch when a playback starts (the service ignores the Range requests
    that follow). Never raises: history must not break a stream."""
    try:
        session = current_session(handler, strict=False)
        try:
            m = clean_magnet(magnet_text)
            magnet = Magnet(infohash=torrent.infohash, name=m.name or torrent.name, trackers=m.trackers).to_uri()
        except MagnetError:
            magnet = Magnet(infohash=torrent.infohash, name=torrent.name).to_uri()
        client_key = None
        if session.fresh:
            # a player that keeps no cookies gets a new session per request:
            # its requests for this file still make one playback
            client_key = (handler.request.remote_ip, handler.request.headers.get("User-Agent", ""))
        handler.kit.history.playback(
            session.id, torrent.infohash, f.index, magnet=magnet, title=torrent.name,
            file_path=f.path, duration_s=getattr(f, "duration_s", None), client_key=client_key)
    except Exception:   # noqa: BLE001
        log.exception("history: recording a playback failed")


class _HistoryBase(BaseHandler):
    def arg_limit(self, default: int) -> int:
        limit = self.arg_int("limit", default=default, minimum=1)
        assert limit is not None
        return min(limit, MAX_LIMIT)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, StoreUnavailable):
            queued = self.kit.history.outbox.count() if self.kit.history.outbox else 0
            e = ApiError(503, f"history database unavailable ({e}); {queued} writes are queued "
                              "and will be saved when it is back")
        super()._handle_request_exception(e)


class SessionHandler(_HistoryBase):
    """GET: this request's session (sets the cookie if new). POST: a new
    session token for an API client (sent back in X-Session-Id)."""

    async def get(self) -> None:
        s = current_session(self)
        self.write_json({"session_id": s.id, "token": s.token, "fresh": s.fresh, "source": s.source})

    async def post(self) -> None:
        signer = self.kit.history.signer
        assert signer is not None
        s = signer.new()
        self.write_json({"session_id": s.id, "token": s.token, "header": HEADER}, status=201)


class HistoryHandler(_HistoryBase):
    async def get(self) -> None:
        session = current_session(self)
        limit = self.arg_limit(50)
        raw = self.get_query_argument("before", None)
        try:
            before = Cursor.parse(raw) if raw else None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        watches = await self.kit.history.history(session.id, limit + 1, before)
        more = len(watches) > limit
        watches = watches[:limit]
        nxt = Cursor(watches[-1].watched_at, watches[-1].id).encode() if more else None
        self.write_json({"session_id": session.id, "watches": [_public(w) for w in watches],
                         "next_before": nxt})

    async def post(self) -> None:
        session = current_session(self)
        body = _json_body(self)
        m = clean_magnet(str(body.get("magnet") or body.get("infohash") or ""))
        file_index = _opt_int(body, "file_index", minimum=0)
        position = _opt_float(body, "position_s", minimum=0.0) or 0.0
        duration = _opt_float(body, "duration_s", minimum=0.0)
        title = str(body.get("title") or m.name or "")[:500]
        file_path = body.get("file_path")
        watch_id = body.get("id")
        if watch_id is not None:
            try:
                import uuid
                watch_id = str(uuid.UUID(str(watch_id)))
            except ValueError:
                raise ApiError(400, f"id must be a UUID, got {str(watch_id)[:60]!r}") from None
        try:
            watch, delivered = await self.kit.history.position(
                session.id, infohash=m.infohash, magnet=m.to_uri(), file_index=file_index,
                position_s=position, duration_s=duration, title=title,
                file_path=str(file_path)[:1000] if file_path is not None else None, watch_id=watch_id)
        except LookupError as exc:
            raise ApiError(404, str(exc)) from None
        self.write_json({"watch": _public(watch), "saved": delivered, "queued": not delivered},
                        status=200 if delivered else 202)


class ResumeHandler(_HistoryBase):
    async def get(self) -> None:
        session = current_session(self)
        m = clean_magnet(self.magnet_arg())
        file_index = self.arg_int("file_index", minimum=0)
        watch = await self.kit.history.resume(session.id, m.infohash, file_index)
        if watch is None:
            self.write_json({"found": False, "infohash": m.infohash, "file_index": file_index,
                             "position_s": 0.0, "duration_s": None, "watch_id": None})
            return
        self.write_json({"found": True, "infohash": m.infohash, "file_index": file_index,
                         "position_s": watch.position_s, "duration_s": watch.duration_s,
                         "watch_id": watch.id, "updated_at": _public(watch)["updated_at"]})


class PopularHandler(_HistoryBase):
    async def get(self) -> None:
        days = self.arg_int("days", default=30, minimum=1)
        assert days is not None
        if days > 3660:
            raise ApiError(400, f"days must be <= 3660, got {days}")
        limit = self.arg_limit(20)
        rows = await self.kit.history.popular(days, limit)
        self.write_json({"days": days, "torrents": [r.to_json() for r in rows]})


# ------------------------------------------------------------------ helpers
def _public(w: Watch) -> dict[str, Any]:
    d = w.to_json()
    d.pop("session_id", None)
    return d


def _json_body(handler: BaseHandler) -> dict[str, Any]:
    ctype = handler.request.headers.get("Content-Type", "")
    looks_json = (handler.request.body or b"").lstrip()[:1] in (b"{", b"[")
    if not looks_json and ("application/x-www-form-urlencoded" in ctype or "multipart/form-data" in ctype):
        return {k: handler.get_body_argument(k) for k in handler.request.body_arguments}
    try:
        body = json.loads(handler.request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body must be a JSON object, e.g. "
                            '{"magnet": "magnet:?xt=urn:btih:...", "file_index": 0, "position_s": 12.5}') from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _opt_int(body: dict[str, Any], name: str, *, minimum: int) -> int | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
        if isinstance(raw, float) and raw != value:
            raise ValueError
    except (TypeError, ValueError, OverflowError):   # OverflowError: 1e400 reads as inf
        raise ApiError(400, f"{name} must be an integer, got {str(raw)[:40]!r}") from None
    if value < minimum:
        raise ApiError(400, f"{name} must be >= {minimum}, got {value}")
    if value > 2**63 - 1:   # SQLite's and PostgreSQL's largest integer
        raise ApiError(400, f"{name} must be < 2**63, got {str(raw)[:40]}")
    return value


def _opt_float(body: dict[str, Any], name: str, *, minimum: float) -> float | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a number of seconds, got {str(raw)[:40]!r}") from None
    if not (value >= minimum) or value == float("inf"):
        raise ApiError(400, f"{name} must be a finite number >= {minimum}, got {raw!r}")
    return value
