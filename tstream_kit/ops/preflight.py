"""Start-up checks of ``tstream serve``: every mistake at once, one line each.

Problems stop the start (exit 2; a port in use alone exits 1 as before);
warnings do not: an unreachable database is one - the server starts on the
outbox (watches are kept on disk and delivered when the database answers).
"""
from __future__ import annotations

import os
import socket
import tempfile
from typing import TYPE_CHECKING

from .access import access_problems

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings

__all__ = ["preflight"]


def port_problem(settings: "Settings") -> str | None:
    if settings.port == 0:
        return None
    import tornado.netutil
    try:
        for s in tornado.netutil.bind_sockets(settings.port, settings.host or None):
            s.close()
    except OSError as exc:
        return (f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} "
                "(TSTREAM_PORT / --port; another tstream running?)")
    return None


def preflight(settings: "Settings") -> tuple[list[str], list[str]]:
    """(problems, warnings) for a server about to start."""
    problems = list(access_problems(settings))
    warnings: list[str] = []
    d = settings.data_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".write-test-"):
            pass
    except OSError as exc:
        problems.append(f"TSTREAM_DATA_DIR={d}: not writable ({exc.strerror or exc}); "
                        "downloads, resume data and the history outbox live there")
    port = port_problem(settings)
    if port:
        problems.append(port)
    if settings.database_url.startswith(("postgres://", "postgresql://")):
        try:
            import psycopg
            with psycopg.connect(settings.database_url, connect_timeout=3) as c:
                c.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means "not now"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.append(f"database unreachable at start ({first}): starting anyway; watches "
                            f"wait in the outbox in {d} and are delivered when it answers")
    if settings.redis_url:
        try:
            import redis
            r = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
            r.ping()
            r.close()
        except Exception as exc:  # noqa: BLE001
            warnings.append(f"Redis unreachable at start ({exc}): starting anyway; the cache is "
                            "skipped until it answers")
    if settings.disk_quota:
        try:
            free = os.statvfs(d).f_bavail * os.statvfs(d).f_frsize
            if free < settings.disk_quota // 10:
                from .settings import format_size
                warnings.append(f"only {format_size(free)} free in {d}; TSTREAM_DISK_QUOTA is "
                                f"{format_size(settings.disk_quota)}")
        except OSError:
            pass
    try:
        socket.getaddrinfo(settings.host or "0.0.0.0", None)
    except OSError as exc:
        problems.append(f"TSTREAM_HOST={settings.host}: not an address of this machine ({exc})")
    return problems, warnings
