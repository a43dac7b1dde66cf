"""Watch history: the HistoryStore protocol and its two stores.

``open_store(database_url, data_dir)`` picks one: PostgreSQL for a
``postgresql://`` URL, SQLite (``history.sqlite3`` in the data directory, or
the path of a ``sqlite:///`` URL) otherwise. :mod:`.service` adds the outbox,
the one-watch-per-playback recorder and the asyncio side.
"""
from __future__ import annotations

from pathlib import Path

from .base import (Cursor, HistoryError, HistoryStore, MigrationError, Popular, StoreUnavailable,
                   Watch, new_watch_id, utcnow)

__all__ = ["open_store", "store_kind", "Cursor", "HistoryError", "HistoryStore", "MigrationError",
           "Popular", "StoreUnavailable", "Watch", "new_watch_id", "utcnow", "SQLITE_FILE"]

SQLITE_FILE = "history.sqlite3"


def store_kind(database_url: str) -> str:
    """``postgres`` or ``sqlite``; ValueError for a URL we cannot use."""
    url = (database_url or "").strip()
    if not url:
        return "sqlite"
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgres"
    if scheme == "sqlite":
        return "sqlite"
    raise ValueError("expected postgresql://user@host:port/dbname or sqlite:///path (empty: SQLite in the data dir)")


def open_store(database_url: str, data_dir: Path, **kw) -> HistoryStore:
    kind = store_kind(database_url)
    if kind == "postgres":
        from .postgres import PostgresHistory   # psycopg is imported only when configured
        return PostgresHistory(database_url, **kw)
    from .sqlite import SqliteHistory
    url = (database_url or "").strip()
    path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else Path(data_dir) / SQLITE_FILE
    return SqliteHistory(path)
