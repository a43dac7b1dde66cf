"""A durable local outbox for watch writes (SQLite file in the data dir).

Every watch write is appended here first (``synchronous=FULL``: it survives
a crash or power loss once :meth:`Outbox.append` returns), then delivered to
the history store in batches and deleted only after the store committed.

Exactly once: a crash between the store's commit and the delete delivers the
batch again, and the store's upsert on the watch id makes that a no-op (the
popularity aggregates count inserted rows only; an update with the same
``updated_at`` rewrites the same values). Several processes sharing a data
dir may deliver the same rows; the same argument holds.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Sequence

from .history.base import Watch

__all__ = ["Outbox"]

BATCH = 500


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox ("
                         "seq INTEGER PRIMARY KEY AUTOINCREMENT, watch_id TEXT NOT NULL, "
                         "session_id TEXT NOT NULL, payload TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_session ON outbox (session_id)")

    def append(self, watch: Watch) -> int:
        """Store one write durably; returns its sequence number."""
        with self._lock:
            cur = self._db.execute("INSERT INTO outbox (watch_id, session_id, payload) VALUES (?, ?, ?)",
                                   (watch.id, watch.session_id, json.dumps(watch.to_json())))
            return int(cur.lastrowid)

    def peek(self, limit: int = BATCH) -> list[tuple[int, Watch]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, Watch.from_json(json.loads(p))) for seq, p in rows]

    def pending(self, session_id: str | None = None) -> list[Watch]:
        """Writes not delivered yet (all, or one session's), oldest first."""
        with self._lock:
            if session_id is None:
                rows = self._db.execute("SELECT payload FROM outbox ORDER BY seq").fetchall()
            else:
                rows = self._db.execute("SELECT payload FROM outbox WHERE session_id = ? ORDER BY seq",
                                        (session_id,)).fetchall()
        return [Watch.from_json(json.loads(p)) for (p,) in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def remove_through(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")

    def deliver(self, write: Callable[[Sequence[Watch]], object], batch: int = BATCH) -> int:
        """Send everything pending through ``write`` (the store's upsert),
        batch by batch; returns how many writes were delivered. An exception
        from ``write`` leaves the batch in the outbox and propagates."""
        delivered = 0
        while True:
            items = self.peek(batch)
            if not items:
                return delivered
            write([w for _, w in items])
            self.remove_through([seq for seq, _ in items])
            delivered += len(items)

    def close(self) -> None:
        with self._lock:
            self._db.close()
