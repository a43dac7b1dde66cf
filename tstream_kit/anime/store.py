"""The anime tables (``anime``, ``episode_torrents``) in the history database.

The tables come with the history store's migrations (``0003_anime``); this
module reads and writes them with a connection of its own, so the history
stores stay as they are. :func:`open_anime_store` picks PostgreSQL or SQLite
from the same ``TSTREAM_DATABASE_URL`` as :func:`~tstream_kit.store.history.open_store`.

Both tables are a cache: every row has a ``fetched_at`` and the anime row an
``expires_at`` (and ``torrents_expires_at`` for its episode torrents). The
service decides what is fresh; the store only keeps and returns rows. Methods
block (call them from a thread) and raise
:class:`~tstream_kit.store.history.StoreUnavailable` when the database is down.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from ..store.history import SQLITE_FILE, StoreUnavailable, store_kind
from ..store.history.base import from_micros, iso, parse_time, to_micros

__all__ = ["AnimeStore", "CachedAnime", "EpisodeTorrent", "open_anime_store", "PostgresAnimeStore",
           "SqliteAnimeStore"]


@dataclass
class EpisodeTorrent:
    """One torrent that holds one episode of a show (a row of ``episode_torrents``).
    ``file_index`` is the episode's file inside a batch (libtorrent's index);
    ``None`` for a single-episode torrent (its default file) or a batch whose
    file list is not known yet."""

    anime_id: int
    episode: int
    infohash: str
    title: str
    magnet: str
    file_index: int | None = None
    file_path: str | None = None
    resolution: str | None = None
    codec: str | None = None
    source: str | None = None
    release_group: str | None = None
    version: int | None = None
    batch: bool = False
    seeders: int | None = None
    leechers: int | None = None
    size: int | None = None
    trusted: bool | None = None
    remake: bool | None = None
    provider: str = ""
    fetched_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["fetched_at"] = iso(self.fetched_at) if self.fetched_at else None
        return d


_ET_COLS = [f.name for f in fields(EpisodeTorrent)]


@dataclass
class CachedAnime:
    data: dict[str, Any]
    fetched_at: datetime
    expires_at: datetime
    torrents_fetched_at: datetime | None = None
    torrents_expires_at: datetime | None = None


class AnimeStore(Protocol):
    dialect: str

    def get_anime(self, anime_id: int) -> CachedAnime | None: ...
    def put_anime(self, data: dict[str, Any], *, fetched_at: datetime, expires_at: datetime) -> None: ...
    def replace_torrents(self, anime_id: int, rows: Sequence[EpisodeTorrent], *, fetched_at: datetime,
                         expires_at: datetime) -> int:
        """Replace every torrent row of the show (one transaction) and mark
        when they expire. Resolved ``file_index`` values of batches already
        known are kept."""
    def torrents(self, anime_id: int, episode: int | None = None) -> list[EpisodeTorrent]: ...
    def set_file(self, anime_id: int, episode: int, infohash: str, file_index: int | None,
                 file_path: str | None) -> None: ...
    def purge(self, before: datetime) -> int:
        """Delete shows (and their torrents) whose expiry is older than ``before``."""
    def close(self) -> None: ...


def _anime_columns(data: dict[str, Any]) -> tuple[Any, ...]:
    title = data.get("title") or {}
    nxt = data.get("next_airing_episode") or {}
    airing = parse_time(nxt["airing_at"]) if nxt.get("airing_at") else None
    return (int(data["id"]), title.get("romaji"), title.get("english"), data.get("status"),
            data.get("episodes"), data.get("season"), data.get("season_year"), nxt.get("episode"), airing)


def _et_values(r: EpisodeTorrent, fetched_at: datetime) -> list[Any]:
    d = asdict(r)
    d["fetched_at"] = fetched_at
    return [d[c] for c in _ET_COLS]


# ------------------------------------------------------------------ PostgreSQL
class PostgresAnimeStore:
    dialect = "postgres"

    def __init__(self, url: str, *, max_size: int = 4, pool_timeout_s: float = 5.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        from ..store.history.postgres import pg_conninfo_with_timeouts
        self._psycopg = psycopg
        self.pool = ConnectionPool(pg_conninfo_with_timeouts(url, application_name="tstream-anime"),
                                   min_size=0, max_size=max_size, timeout=pool_timeout_s, open=False,
                                   check=ConnectionPool.check_connection, name="tstream-anime",
                                   reconnect_timeout=pool_timeout_s * 2)
        self.pool.open(wait=False)

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        from psycopg_pool import PoolTimeout
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(f"anime cache database unreachable: {exc}") from exc
        except self._psycopg.OperationalError as exc:
            raise StoreUnavailable(f"anime cache database error: {str(exc).strip()[:300]}") from exc

    def get_anime(self, anime_id: int) -> CachedAnime | None:
        with self._conn() as conn:
            row = conn.execute("SELECT data, fetched_at, expires_at, torrents_fetched_at, torrents_expires_at "
                               "FROM anime WHERE id = %s", (anime_id,)).fetchone()
        if row is None:
            return None
        return CachedAnime(row[0], row[1], row[2], row[3], row[4])

    def put_anime(self, data: dict[str, Any], *, fetched_at: datetime, expires_at: datetime) -> None:
        from psycopg.types.json import Jsonb
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO anime (id, title_romaji, title_english, status, episodes, season, season_year, "
                "next_episode, next_airing_at, data, fetched_at, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "title_romaji = EXCLUDED.title_romaji, title_english = EXCLUDED.title_english, "
                "status = EXCLUDED.status, episodes = EXCLUDED.episodes, season = EXCLUDED.season, "
                "season_year = EXCLUDED.season_year, next_episode = EXCLUDED.next_episode, "
                "next_airing_at = EXCLUDED.next_airing_at, data = EXCLUDED.data, "
                "fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at",
                (*_anime_columns(data), Jsonb(data), fetched_at, expires_at))

    def replace_torrents(self, anime_id: int, rows: Sequence[EpisodeTorrent], *, fetched_at: datetime,
                         expires_at: datetime) -> int:
        cols = ", ".join(_ET_COLS)
        marks = ", ".join(["%s"] * len(_ET_COLS))
        with self._conn() as conn:
            known = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(
                "SELECT episode, infohash, file_index, file_path FROM episode_torrents "
                "WHERE anime_id = %s AND file_index IS NOT NULL", (anime_id,))}
            conn.execute("DELETE FROM episode_torrents WHERE anime_id = %s", (anime_id,))
            values = []
            for r in rows:
                if r.file_index is None and (r.episode, r.infohash) in known:
                    r.file_index, r.file_path = known[(r.episode, r.infohash)]
                values.append(_et_values(r, fetched_at))
            if values:
                with conn.cursor() as cur:
                    cur.executemany(f"INSERT INTO episode_torrents ({cols}) VALUES ({marks}) "
                                    "ON CONFLICT DO NOTHING", values)
            cur2 = conn.execute("UPDATE anime SET torrents_fetched_at = %s, torrents_expires_at = %s "
                                "WHERE id = %s", (fetched_at, expires_at, anime_id))
            if cur2.rowcount == 0:
                raise LookupError(f"anime {anime_id} is not stored: put_anime first")
        return len(values)

    def torrents(self, anime_id: int, episode: int | None = None) -> list[EpisodeTorrent]:
        sql = f"SELECT {', '.join(_ET_COLS)} FROM episode_torrents WHERE anime_id = %s"
        params: list[Any] = [anime_id]
        if episode is not None:
            sql += " AND episode = %s"
            params.append(episode)
        with self._conn() as conn:
            rows = conn.execute(sql + " ORDER BY episode, seeders DESC NULLS LAST, infohash", params).fetchall()
        return [EpisodeTorrent(**dict(zip(_ET_COLS, r))) for r in rows]

    def set_file(self, anime_id: int, episode: int, infohash: str, file_index: int | None,
                 file_path: str | None) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE episode_torrents SET file_index = %s, file_path = %s "
                         "WHERE anime_id = %s AND episode = %s AND infohash = %s",
                         (file_index, file_path, anime_id, episode, infohash))

    def purge(self, before: datetime) -> int:
        with self._conn() as conn:
            return conn.execute("DELETE FROM anime WHERE expires_at < %s AND "
                                "coalesce(torrents_expires_at, expires_at) < %s", (before, before)).rowcount

    def close(self) -> None:
        self.pool.close(timeout=5)


# ---------------------------------------------------------------------- SQLite
def _us(t: datetime | None) -> int | None:
    return to_micros(t) if t is not None else None


def _dt(us: int | None) -> datetime | None:
    return from_micros(us) if us is not None else None


class SqliteAnimeStore:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_anime(self, anime_id: int) -> CachedAnime | None:
        with self._lock:
            row = self._db.execute("SELECT data, fetched_at, expires_at, torrents_fetched_at, torrents_expires_at "
                                   "FROM anime WHERE id = ?", (anime_id,)).fetchone()
        if row is None:
            return None
        return CachedAnime(json.loads(row[0]), from_micros(row[1]), from_micros(row[2]), _dt(row[3]), _dt(row[4]))

    def put_anime(self, data: dict[str, Any], *, fetched_at: datetime, expires_at: datetime) -> None:
        c = list(_anime_columns(data))
        c[8] = _us(c[8])
        with self._tx() as db:
            db.execute(
                "INSERT INTO anime (id, title_romaji, title_english, status, episodes, season, season_year, "
                "next_episode, next_airing_at, data, fetched_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "title_romaji = excluded.title_romaji, title_english = excluded.title_english, "
                "status = excluded.status, episodes = excluded.episodes, season = excluded.season, "
                "season_year = excluded.season_year, next_episode = excluded.next_episode, "
                "next_airing_at = excluded.next_airing_at, data = excluded.data, "
                "fetched_at = excluded.fetched_at, expires_at = excluded.expires_at",
                (*c, json.dumps(data), to_micros(fetched_at), to_micros(expires_at)))

    def replace_torrents(self, anime_id: int, rows: Sequence[EpisodeTorrent], *, fetched_at: datetime,
                         expires_at: datetime) -> int:
        cols = ", ".join(_ET_COLS)
        marks = ", ".join(["?"] * len(_ET_COLS))
        with self._tx() as db:
            known = {(r[0], r[1]): (r[2], r[3]) for r in db.execute(
                "SELECT episode, infohash, file_index, file_path FROM episode_torrents "
                "WHERE anime_id = ? AND file_index IS NOT NULL", (anime_id,))}
            db.execute("DELETE FROM episode_torrents WHERE anime_id = ?", (anime_id,))
            n = 0
            for r in rows:
                if r.file_index is None and (r.episode, r.infohash) in known:
                    r.file_index, r.file_path = known[(r.episode, r.infohash)]
                values = _et_values(r, fetched_at)
                values[_ET_COLS.index("fetched_at")] = to_micros(fetched_at)
                n += db.execute(f"INSERT OR IGNORE INTO episode_torrents ({cols}) VALUES ({marks})",
                                values).rowcount
            cur = db.execute("UPDATE anime SET torrents_fetched_at = ?, torrents_expires_at = ? WHERE id = ?",
                             (to_micros(fetched_at), to_micros(expires_at), anime_id))
            if cur.rowcount == 0:
                raise LookupError(f"anime {anime_id} is not stored: put_anime first")
        return len(rows)

    def torrents(self, anime_id: int, episode: int | None = None) -> list[EpisodeTorrent]:
        sql = f"SELECT {', '.join(_ET_COLS)} FROM episode_torrents WHERE anime_id = ?"
        params: list[Any] = [anime_id]
        if episode is not None:
            sql += " AND episode = ?"
            params.append(episode)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY episode, seeders IS NULL, seeders DESC, infohash",
                                    params).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_ET_COLS, r))
            for b in ("batch", "trusted", "remake"):
                d[b] = None if d[b] is None else bool(d[b])
            d["fetched_at"] = _dt(d["fetched_at"])
            out.append(EpisodeTorrent(**d))
        return out

    def set_file(self, anime_id: int, episode: int, infohash: str, file_index: int | None,
                 file_path: str | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE episode_torrents SET file_index = ?, file_path = ? "
                       "WHERE anime_id = ? AND episode = ? AND infohash = ?",
                       (file_index, file_path, anime_id, episode, infohash))

    def purge(self, before: datetime) -> int:
        b = to_micros(before)
        with self._tx() as db:
            return db.execute("DELETE FROM anime WHERE expires_at < ? AND "
                              "coalesce(torrents_expires_at, expires_at) < ?", (b, b)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_anime_store(database_url: str, data_dir: Path) -> AnimeStore:
    """The anime tables in the history database (migrated by the history store)."""
    url = (database_url or "").strip()
    if store_kind(url) == "postgres":
        return PostgresAnimeStore(url)
    path = Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else Path(data_dir) / SQLITE_FILE
    return SqliteAnimeStore(path)
