"""Who may call the API: the token, CORS, the public-address rule.

* Bound to loopback (the default) no token is needed; on any other address
  ``tstream serve`` refuses to start without ``TSTREAM_API_TOKEN`` (mounted in
  Jupyter, Jupyter's own auth decides instead).
* With a token set, every request carries it: ``Authorization: Bearer T``,
  ``X-Tstream-Token: T`` or the ``tstream_token`` cookie. Opening the player
  page as ``/?token=T`` sets that cookie (HttpOnly, SameSite=Strict), so the
  page's ``<video>`` requests carry it; the token never goes into a stream URL.
* CORS headers go only to the one configured origin (``TSTREAM_CORS_ORIGIN``).
"""
from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from .settings import is_loopback_host

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings

__all__ = ["COOKIE", "access_problems", "request_token", "token_ok", "cors_headers"]

COOKIE = "tstream_token"
HEADER = "X-Tstream-Token"


def access_problems(settings: "Settings") -> list[str]:
    if not settings.api_token and not is_loopback_host(settings.host or "0.0.0.0"):
        return [f"TSTREAM_HOST={settings.host or '0.0.0.0'} is reachable from the network: "
                "set TSTREAM_API_TOKEN (at least 16 characters, e.g. `openssl rand -hex 24`) "
                "or bind 127.0.0.1 behind a reverse proxy that authenticates"]
    return []


def request_token(headers: Any, cookie: str | None) -> str | None:
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    if headers.get(HEADER):
        return headers.get(HEADER).strip()
    return cookie


def token_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def cors_headers(configured: str, request_origin: str | None) -> dict[str, str]:
    """Headers for a request from ``request_origin``: none unless it is the configured one."""
    if not configured or not request_origin or request_origin.rstrip("/") != configured.rstrip("/"):
        return {}
    return {
        "Access-Control-Allow-Origin": request_origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges, Retry-After",
        "Vary": "Origin",
    }


PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, HEAD, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": f"Authorization, {HEADER}, Range, Content-Type",
    "Access-Control-Max-Age": "600",
}
