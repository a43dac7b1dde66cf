"""Viewer sessions: a random id, signed with the server's secret.

The token is ``<id>.<signature>``: ``id`` is 128 random bits (base64url) and
``signature`` is HMAC-SHA256(secret, "tstream-session-v1:" + id). The
server sends it as the ``session_id`` cookie (HttpOnly, SameSite=Lax,
Secure behind https); API clients may send the same token explicitly in the
``X-Session-Id`` header or a ``session`` query parameter (get one from
``POST /api/session``). A token that does not verify is never trusted:
from a cookie it is replaced by a fresh session, sent explicitly it is a 401.
Every id in the history was issued here, so nobody can name another's.

The secret is ``TSTREAM_SECRET`` or, when unset, 32 random bytes kept in
``<data dir>/secret`` (mode 0600, created once even when two processes start
together). Changing it ends every session.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SessionSigner", "Session", "load_secret", "COOKIE", "HEADER", "PARAM", "InvalidSession"]

COOKIE = "session_id"
HEADER = "X-Session-Id"
PARAM = "session"
SECRET_FILE = "secret"
#: the cookie lives a year; history is what it unlocks
COOKIE_MAX_AGE_S = 365 * 24 * 3600
_CONTEXT = b"tstream-session-v1:"


class InvalidSession(ValueError):
    """An explicit session token that does not verify."""


@dataclass(frozen=True)
class Session:
    id: str
    token: str
    #: True when the server made it for this request (no valid cookie came)
    fresh: bool = False
    #: where it came from: "cookie", "header", "param" or "new"
    source: str = "new"


def load_secret(data_dir: Path, configured: str = "") -> bytes:
    if configured:
        return configured.encode("utf-8")
    path = Path(data_dir) / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)      # atomic, and fails if another process won the race
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < 32:
        raise ValueError(f"{path} holds a secret shorter than 32 characters; delete it to make a new one")
    return text.encode("utf-8")


class SessionSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes (TSTREAM_SECRET)")
        self._key = hashlib.sha256(b"tstream-session-key:" + secret).digest()

    def _sign(self, session_id: str) -> str:
        mac = hmac.new(self._key, _CONTEXT + session_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def new(self, source: str = "new") -> Session:
        sid = secrets.token_urlsafe(16)
        return Session(sid, f"{sid}.{self._sign(sid)}", fresh=True, source=source)

    def token_for(self, session_id: str) -> str:
        return f"{session_id}.{self._sign(session_id)}"

    def verify(self, token: str | None) -> str | None:
        """The session id of a genuine token, else None."""
        if not token or len(token) > 200:
            return None
        sid, dot, sig = token.strip().partition(".")
        if not dot or not sid or not sig:
            return None
        try:
            expected = self._sign(sid)
        except UnicodeEncodeError:
            return None
        return sid if hmac.compare_digest(expected, sig) else None
