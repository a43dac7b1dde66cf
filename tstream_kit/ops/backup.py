"""``tstream backup`` / ``tstream restore``: the watch history as portable JSON Lines.

A backup is gzip-compressed JSON Lines: a header line
``{"format": "tstream-history", "version": 1, "store": "sqlite", "count": N, ...}``
then one watch per line (the store's own JSON form). The same file restores
into SQLite or PostgreSQL (so it also moves an install from one to the
other). Restoring is an upsert by watch id: running it twice, or into a store
that already has some of the rows, leaves each watch once, with the newer
position kept. Rows are read in pages by id, so memory stays flat.
"""
from __future__ import annotations

import gzip
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterator

from ..store.history import open_store
from ..store.history.base import Watch

__all__ = ["backup", "restore", "FORMAT"]

FORMAT = "tstream-history"
PAGE = 5000


def _pages(store: Any) -> Iterator[list[Watch]]:
    if store.dialect == "postgres":
        from ..store.history.postgres import _COLUMNS, _row_to_watch
        sql = (f"SELECT {_COLUMNS} FROM watched_torrents WHERE id::text > %s "
               "ORDER BY id::text LIMIT %s")
    else:
        from ..store.history.sqlite import _COLUMNS, _row_to_watch  # type: ignore[no-redef]
        sql = f"SELECT {_COLUMNS} FROM watched_torrents WHERE id > ? ORDER BY id LIMIT ?"
    last = ""
    while True:
        rows = store._all(sql, (last, PAGE))
        if not rows:
            return
        yield [_row_to_watch(r) for r in rows]
        last = str(rows[-1][0])


def _open_out(path: str) -> IO[bytes]:
    if path == "-":
        return gzip.GzipFile(fileobj=sys.stdout.buffer, mode="wb")
    return gzip.open(path, "wb")


def backup(database_url: str, data_dir: Path, path: str) -> int:
    """Write every watch to ``path`` (``-`` = stdout); returns the count."""
    store = open_store(database_url, data_dir)
    try:
        store.migrate()
        total = store.count()
        tmp = path if path == "-" else path + ".partial"
        n = 0
        with _open_out(tmp) as out:
            header = {"format": FORMAT, "version": 1, "store": store.dialect, "count": total,
                      "schema_versions": store.schema_versions(),
                      "created_at": datetime.now(timezone.utc).isoformat()}
            out.write((json.dumps(header) + "\n").encode())
            for page in _pages(store):
                out.write("".join(json.dumps(w.to_json()) + "\n" for w in page).encode())
                n += len(page)
        if path != "-":
            Path(tmp).replace(path)   # a backup file is complete or absent
        return n
    finally:
        store.close()


def restore(database_url: str, data_dir: Path, path: str) -> int:
    """Upsert every watch of a backup into the configured store; returns the count."""
    opener = (lambda: gzip.GzipFile(fileobj=sys.stdin.buffer, mode="rb")) if path == "-" \
        else (lambda: gzip.open(path, "rb"))
    store = open_store(database_url, data_dir)
    try:
        store.migrate()
        n = 0
        with opener() as fh:
            first = fh.readline()
            try:
                header = json.loads(first)
            except ValueError:
                header = None
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError(f"{path} is not a tstream history backup (no {FORMAT} header)")
            if header.get("version") != 1:
                raise ValueError(f"{path}: backup version {header.get('version')} is newer than this tstream")
            batch: list[Watch] = []
            for line in fh:
                if line.strip():
                    batch.append(Watch.from_json(json.loads(line)))
                if len(batch) >= 1000:
                    store.upsert(batch)
                    n += len(batch)
                    batch = []
            if batch:
                store.upsert(batch)
                n += len(batch)
        return n
    finally:
        store.close()
