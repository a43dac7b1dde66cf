"""PostgresHistory: psycopg 3 with a psycopg_pool connection pool.

Every wait on the network is bounded: ``connect_timeout`` for a new
connection, the pool's ``timeout`` for a free one, ``statement_timeout`` on
the server, and ``tcp_user_timeout`` plus keepalives so a silently dropped
link fails instead of hanging. A failure to reach the server is raised as
:class:`StoreUnavailable` (the outbox keeps the writes); broken connections
are dropped by the pool and replaced on the next use.

Migrations run in one transaction holding ``pg_advisory_xact_lock``, keyed on
the schema, so two processes starting at once apply them once: the second
waits, then finds them recorded in ``schema_migrations``.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .base import (Cursor, MigrationError, Popular, StoreUnavailable, Watch, dedupe_latest,
                   load_migrations, window_start)

log = logging.getLogger("tstream.history")

__all__ = ["PostgresHistory", "pg_conninfo_with_timeouts"]

CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15_000
#: unacknowledged data on a dead link fails after this long (libpq, Linux)
TCP_USER_TIMEOUT_MS = 10_000

_COLUMNS = ("id, session_id, infohash, magnet, title, file_index, file_path, "
            "position_s, duration_s, watched_at, updated_at")


def pg_conninfo_with_timeouts(url: str, *, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
                              application_name: str = "tstream") -> str:
    """The URL as a libpq conninfo with our timeouts added (the URL's own
    ``connect_timeout`` and ``options`` are kept)."""
    params = pg_conninfo.conninfo_to_dict(url)
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    params.setdefault("application_name", application_name)
    params.setdefault("keepalives", "1")
    params.setdefault("keepalives_idle", "10")
    params.setdefault("keepalives_interval", "5")
    params.setdefault("keepalives_count", "3")
    params.setdefault("tcp_user_timeout", str(TCP_USER_TIMEOUT_MS))
    options = str(params.get("options") or "")
    if "statement_timeout" not in options:
        options = (options + f" -c statement_timeout={int(statement_timeout_ms)}").strip()
    params["options"] = options
    return pg_conninfo.make_conninfo(**params)


def _row_to_watch(r: Sequence[Any]) -> Watch:
    return Watch(id=str(r[0]), session_id=r[1], infohash=r[2], magnet=r[3], title=r[4],
                 file_index=r[5], file_path=r[6], position_s=r[7], duration_s=r[8],
                 watched_at=r[9], updated_at=r[10])


class PostgresHistory:
    dialect = "postgres"

    def __init__(self, url: str, *, max_size: int = 8, pool_timeout_s: float = 5.0,
                 statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> None:
        self.url = url
        self.conninfo = pg_conninfo_with_timeouts(url, statement_timeout_ms=statement_timeout_ms)
        # min_size=0: no connection is made before one is needed, so a server
        # that is down at start-up costs nothing until the first write
        self.pool = ConnectionPool(
            self.conninfo, min_size=0, max_size=max_size, timeout=pool_timeout_s,
            open=False, check=ConnectionPool.check_connection, name="tstream-history",
            reconnect_timeout=pool_timeout_s * 2,
        )
        self.pool.open(wait=False)

    def __repr__(self) -> str:
        safe = pg_conninfo.conninfo_to_dict(self.url)
        return f"PostgresHistory(host={safe.get('host')!r}, dbname={safe.get('dbname')!r})"

    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction (committed on success);
        unreachable server -> StoreUnavailable."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(f"history database unreachable: {exc}") from exc
        except psycopg.OperationalError as exc:
            # connection refused or lost, server shutting down, timeouts
            raise StoreUnavailable(f"history database error: {str(exc).strip()[:300]}") from exc

    # ------------------------------------------------------------ migrations
    def migrate(self) -> list[int]:
        applied_now: list[int] = []
        with self._conn() as conn:
            # one lock per schema: tests and benches in their own schemas do not wait on each other
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('tstream.migrations:' || current_schema()))")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "version integer PRIMARY KEY, name text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for mg in load_migrations("postgres"):
                if mg.version in done:
                    continue
                try:
                    conn.execute(mg.sql)   # no parameters: sent as a simple query, many statements
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    raise MigrationError(f"postgres migration {mg.version:04d}_{mg.name} failed: {exc}") from exc
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (mg.version, mg.name))
                applied_now.append(mg.version)
        if applied_now:
            log.info("history schema: applied migrations %s", applied_now)
        return applied_now

    def schema_versions(self) -> list[int]:
        with self._conn() as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
            if exists is None:
                return []
            return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]

    # ----------------------------------------------------------------- writes
    def upsert(self, watches: Sequence[Watch]) -> int:
        ws = dedupe_latest(watches)
        if not ws:
            return 0
        cols = list(zip(*[(w.id, w.session_id, w.infohash, w.magnet, w.title, w.file_index, w.file_path,
                           w.position_s, w.duration_s, w.watched_at, w.updated_at) for w in ws]))
        with self._conn() as conn:
            rows = conn.execute(
                f"INSERT INTO watched_torrents AS w ({_COLUMNS}) "
                "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], "
                "%s::int[], %s::text[], %s::float8[], %s::float8[], %s::timestamptz[], %s::timestamptz[]) "
                "ON CONFLICT (id) DO UPDATE SET position_s = EXCLUDED.position_s, "
                "duration_s = coalesce(EXCLUDED.duration_s, w.duration_s), "
                "title = CASE WHEN EXCLUDED.title <> '' THEN EXCLUDED.title ELSE w.title END, "
                "updated_at = EXCLUDED.updated_at "
                # a watch id never moves between sessions, and an older update never wins
                "WHERE w.session_id = EXCLUDED.session_id AND w.updated_at <= EXCLUDED.updated_at "
                "RETURNING (xmax = 0)",
                [list(c) for c in cols]).fetchall()
        return sum(1 for (inserted,) in rows if inserted)

    # ------------------------------------------------------------------ reads
    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def get(self, watch_id: str) -> Watch | None:
        rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE id = %s", (str(watch_id),))
        return _row_to_watch(rows[0]) if rows else None

    def history(self, session_id: str, limit: int = 50, before: Cursor | None = None) -> list[Watch]:
        if before is None:
            rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = %s "
                             "ORDER BY watched_at DESC, id DESC LIMIT %s", (session_id, limit))
        elif before.id is None:
            rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = %s "
                             "AND watched_at < %s ORDER BY watched_at DESC, id DESC LIMIT %s",
                             (session_id, before.watched_at, limit))
        else:
            rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = %s "
                             "AND (watched_at, id) < (%s, %s::uuid) ORDER BY watched_at DESC, id DESC LIMIT %s",
                             (session_id, before.watched_at, before.id, limit))
        return [_row_to_watch(r) for r in rows]

    def resume(self, session_id: str, infohash: str, file_index: int | None) -> Watch | None:
        rows = self._all(f"SELECT {_COLUMNS} FROM watched_torrents WHERE session_id = %s AND infohash = %s "
                         "AND file_index IS NOT DISTINCT FROM %s::int ORDER BY updated_at DESC LIMIT 1",
                         (session_id, infohash, file_index))
        return _row_to_watch(rows[0]) if rows else None

    def popular(self, days: int = 30, limit: int = 20, now: datetime | None = None) -> list[Popular]:
        start = window_start(days, now)
        cutoff = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        rows = self._all(
            "WITH top AS (SELECT infohash, sum(watches)::bigint AS watches FROM watch_daily "
            "  WHERE day >= %(start)s GROUP BY infohash ORDER BY watches DESC, infohash LIMIT %(limit)s) "
            "SELECT t.infohash, last.title, last.magnet, t.watches, "
            "  (SELECT count(*) FROM watch_pairs p WHERE p.infohash = t.infohash AND p.last_at >= %(cutoff)s) "
            "FROM top t CROSS JOIN LATERAL (SELECT d.title, d.magnet FROM watch_daily d "
            "  WHERE d.infohash = t.infohash ORDER BY d.day DESC LIMIT 1) last "
            "ORDER BY t.watches DESC, t.infohash",
            {"start": start, "limit": limit, "cutoff": cutoff})
        return [Popular(infohash=r[0], title=r[1] or "", magnet=r[2] or "", watches=int(r[3]),
                        sessions=int(r[4])) for r in rows]

    def count(self) -> int:
        return int(self._all("SELECT count(*) FROM watched_torrents")[0][0])

    def query(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        with self._conn() as conn:
            cur = conn.execute(sql, params or {})
            cols = [d.name for d in cur.description or ()]
            return cols, cur.fetchall()

    def close(self) -> None:
        self.pool.close(timeout=5)
