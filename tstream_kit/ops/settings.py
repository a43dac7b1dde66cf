"""The operations settings' parsing and checks, and the optional ``.env`` file.

``.env`` (or the file ``TSTREAM_ENV_FILE`` names) holds ``KEY=VALUE`` lines as
docker compose reads them: ``#`` comments, an optional ``export``, single or
double quotes. The process environment wins over the file, so ``docker run -e``
and a shell's ``TSTREAM_X=... tstream serve`` still override it.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings

__all__ = ["parse_size", "ops_problems", "read_dotenv", "environ_with_dotenv", "is_loopback_host",
           "format_size"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
          "tib": 1 << 40}
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_size(raw: Any) -> int:
    """Bytes from ``123``, ``10M``, ``1.5G``, ``500MiB`` (powers of 1024).

    >>> parse_size("10M"), parse_size("1.5g"), parse_size(42), parse_size("0")
    (10485760, 1610612736, 42, 0)
    """
    if isinstance(raw, int):
        return raw
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(raw))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError("expected a size in bytes, e.g. 500M, 50G, 1T (K/M/G/T are powers of 1024)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n: float) -> str:
    """>>> format_size(10485760)
    '10.0 MiB'"""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def ops_problems(s: "Settings") -> list[str]:
    """Static mistakes in the operations settings (no I/O): one line each."""
    out: list[str] = []
    for name in ("max_torrents", "max_streams", "disk_quota", "rate_limit"):
        if getattr(s, name) < 0:
            out.append(f"TSTREAM_{name.upper()} must be >= 0 (0 = no limit)")
    if s.max_upload_size < 1024:
        out.append("TSTREAM_MAX_UPLOAD_SIZE must be at least 1K (a .torrent file is a few KiB or more)")
    if s.log_format not in ("text", "json"):
        out.append(f"TSTREAM_LOG_FORMAT={s.log_format!r}: expected text or json")
    if s.log_level.lower() not in LOG_LEVELS:
        out.append(f"TSTREAM_LOG_LEVEL={s.log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
    for name in ("shutdown_timeout", "resume_interval", "http_idle_timeout", "http_body_timeout"):
        if getattr(s, name) <= 0:
            out.append(f"TSTREAM_{name.upper()} must be > 0 seconds")
    if s.api_token and len(s.api_token) < 16:
        out.append("TSTREAM_API_TOKEN must be at least 16 characters (try: openssl rand -hex 24)")
    if s.cors_origin:
        u = urllib.parse.urlsplit(s.cors_origin)
        if u.scheme not in ("http", "https") or not u.netloc or u.path not in ("", "/") or u.query:
            out.append(f"TSTREAM_CORS_ORIGIN={s.cors_origin!r}: expected an origin like "
                       "https://app.example.org (scheme, host, optional port; no path)")
    if s.database_url and "://" in s.database_url:
        u = urllib.parse.urlsplit(s.database_url)
        if u.scheme.startswith("postgres") and not (u.hostname or "host=" in u.query):
            out.append("TSTREAM_DATABASE_URL: no host in the PostgreSQL URL "
                       "(postgresql://USER:PASSWORD@HOST:5432/DB)")
    return out


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a .env file (compose's syntax, without interpolation)."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            logging.getLogger("tstream.config").warning("%s:%d: not KEY=VALUE; ignored", path, n)
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def environ_with_dotenv(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The environment over ``TSTREAM_ENV_FILE`` (default ``./.env``) when it exists."""
    environ = os.environ if environ is None else environ
    path = Path(environ.get("TSTREAM_ENV_FILE") or ".env")
    if not path.is_file():
        return environ
    try:
        values = read_dotenv(path)
    except OSError:
        return environ
    return {**values, **environ}
