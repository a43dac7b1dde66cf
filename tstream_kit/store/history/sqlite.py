"""SqliteHistory: the embedded default, one file in the data directory.

One connection guarded by a lock (calls come from worker threads); WAL so
readers in other processes (``tstream history``) do not block the server.
Migrations run inside ``BEGIN IMMEDIATE``: a second process starting at the
same time waits on the write lock (``busy_timeout``), then finds the
versions applied and does nothing.
"""
from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .base import (Cursor, MigrationError, Popular, StoreUnavailable, Watch, dedupe_latest,
                   from_micros, load_migrations, to_micros, utcnow, window_start)

__all__ = ["SqliteHistory"]

#: how long a writer waits for another process's lock before failing
BUSY_TIMEOUT_S = 30.0

_COLUMNS = ("id, session_id, infohash, magnet, title, file_index, file_path, "
            "position_s, duration_s, watched_at, updated_at")


def _row_to_watch(row: Sequence[Any]) -> Watch:
    return Watch(id=row[0], session_id=row[1], infohash=row[2], magnet=row[3], title=row[4],
                 file_index=row[5], file_path=row[6], position_s=row[7], duration_s=row[8],
                 watched_at=from_micros(row[9]), updated_at=from_micros(row[10]))


class SqliteHistory:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the history database {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteHistory({str(self.path)!r})"

    # ------------------------------------------------------------ migrations
    def migrate(self) -> list[int]:
        applied_now: list[int] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")   # the write lock: concurrent starts queue here
            try:
                db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
                done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
                for mg in load_migrations("sqlite"):
                    if mg.version in done:
                        continue
                    try:
                        # executescript would COMMIT first; run statement by statement
                        for stmt in _split_sql(mg.sql):
                            db.execute(stmt)
                    except sqlite3.Error as exc:
                        raise MigrationError(f"sqlite migration {mg.version:04d}_{mg.name} failed: {exc}") from exc
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                               (mg.version, mg.name, to_micros(utcnow())))
                    applied_now.append(mg.version)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return applied_now

    def schema_versions(self) -> list[int]:
        with self._lock:
            try:
                return [r[0] for r in self._db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
            except sqlite3.OperationalError:
                return []

    # ----------------------------------------------------------------- writes
    def upsert(self, watches: Sequence[Watch]) -> int:
        rows = [(w.id, w.session_id, w.infohash, w.magnet, w.title, w.file_index, w.file_path,
                 w.position_s, w.duration_s, to_micros(w.watched_at), to_micros(w.updated_at))
                for w in dedupe_latest(watches)]
        if not rows:
            return 0
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                new = 0
                for row in rows:
                    cur = db.execute(f"INSERT INTO watched_torrents ({_COLUMNS}) VALUES "
                                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", row)
                    if cur.rowcount == 1:
                        new += 1
                        continue
                    db.execute(
                        "UPDATE watched_torrents SET position_s = ?, "
                        "duration_s = coalesce(?, duration_s), "
                        "title = CASE WHEN ? <> '' THEN ? ELSE title END, updated_at = ? "
                        "WHERE id = ? AND session_id = ? AND updated_at <= ?",
                        (row[7], row[8], row[4], row[4], row[10], row[0], row[1], row[10]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return new

    # ------------------------------------------------------------------ reads
    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def get(self, watch_id: str) -> Watch | None:
        rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE id = ?", (str(watch_id),))
        return _row_to_watch(rows[0]) if rows else None

    def history(self, session_id: str, limit: int = 50, before: Cursor | None = None) -> list[Watch]:
        if before is None:
            rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = ? "
                             "ORDER BY watched_at DESC, id DESC LIMIT ?", (session_id, limit))
        elif before.id is None:
            rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = ? "
                             "AND watched_at < ? ORDER BY watched_at DESC, id DESC LIMIT ?",
                             (session_id, to_micros(before.watched_at), limit))
        else:
            rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = ? "
                             "AND (watched_at, id) < (?, ?) ORDER BY watched_at DESC, id DESC LIMIT ?",
                             (session_id, to_micros(before.watched_at), before.id, limit))
        return [_row_to_watch(r) for r in rows]

    def resume(self, session_id: str, infohash: str, file_index: int | None) -> Watch | None:
        rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = ? AND infohash = ? "
                         "AND file_index IS ? ORDER BY updated_at DESC LIMIT 1",
                         (session_id, infohash, file_index))
        return _row_to_watch(rows[0]) if rows else None

    def popular(self, days: int = 30, limit: int = 20, now: datetime | None = None) -> list[Popular]:
        start = window_start(days, now)
        cutoff = to_micros(datetime(start.year, start.month, start.day, tzinfo=timezone.utc))
        rows = self._all(
            "WITH top AS (SELECT infohash, sum(watches) AS watches FROM watch_daily "
            "WHERE day >= ? GROUP BY infohash ORDER BY watches DESC, infohash LIMIT ?) "
            "SELECT t.infohash, "
            "(SELECT d.title FROM watch_daily d WHERE d.infohash = t.infohash ORDER BY d.day DESC LIMIT 1), "
            "(SELECT d.magnet FROM watch_daily d WHERE d.infohash = t.infohash ORDER BY d.day DESC LIMIT 1), "
            "t.watches, "
            "(SELECT count(*) FROM watch_pairs p WHERE p.infohash = t.infohash AND p.last_at >= ?) "
            "FROM top t ORDER BY t.watches DESC, t.infohash",
            (start.isoformat(), limit, cutoff))
        return [Popular(infohash=r[0], title=r[1] or "", magnet=r[2] or "", watches=int(r[3]),
                        sessions=int(r[4])) for r in rows]

    def count(self) -> int:
        return int(self._all("SELECT count(*) FROM watched_torrents")[0][0])

    def query(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self._lock:
            cur = self._db.execute(sql, params or {})
            cols = [d[0] for d in cur.description or ()]
            return cols, cur.fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _split_sql(script: str) -> list[str]:
    """Statements of a migration: ``;`` ends a statement except inside a
    ``CREATE TRIGGER ... END;`` body. Comments are dropped."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    out: list[str] = []
    buf: list[str] = []
    in_trigger = False
    for ln in lines:
        buf.append(ln)
        s = ln.strip().upper()
        if s.startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if s == "END;":
                out.append("\n".join(buf))
                buf, in_trigger = [], False
        elif s.endswith(";"):
            out.append("\n".join(buf))
            buf = []
    if "\n".join(buf).strip():
        out.append("\n".join(buf))
    if in_trigger:
        raise MigrationError("unterminated CREATE TRIGGER in a sqlite migration")
    return out
