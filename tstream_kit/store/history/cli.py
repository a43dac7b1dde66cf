"""``tstream history`` and ``tstream popular``: read the history store
directly (the server need not run), with the same settings as the server."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_history_commands"]


def _open(args: argparse.Namespace):
    from ...config import Settings
    from . import open_store
    settings = Settings.from_env(data_dir=getattr(args, "data_dir", None))
    store = open_store(settings.database_url, settings.data_dir)
    store.migrate()
    return settings, store


def _queued_note(data_dir: Path) -> None:
    from .service import OUTBOX_FILE
    path = data_dir / OUTBOX_FILE
    if path.exists():
        from ..outbox import Outbox
        box = Outbox(path)
        n = box.count()
        box.close()
        if n:
            print(f"note: {n} writes wait in the outbox ({path}) and are not shown; "
                  "the server delivers them when the database is reachable", file=sys.stderr)


def cmd_history(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    try:
        if args.session:
            rows = [w.to_json() for w in store.history(args.session, args.limit)]
        else:
            cols, data = store.query(
                ("SELECT id FROM watched_torrents ORDER BY watched_at DESC, id DESC LIMIT %(n)s"
                 if store.dialect == "postgres" else
                 "SELECT id FROM watched_torrents ORDER BY watched_at DESC, id DESC LIMIT :n"),
                {"n": args.limit})
            rows = [w.to_json() for (wid,) in data if (w := store.get(str(wid))) is not None]
    finally:
        store.close()
    _queued_note(settings.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no watches yet")
        return 0
    for r in rows:
        pos = _clock(r["position_s"]) + (f"/{_clock(r['duration_s'])}" if r["duration_s"] else "")
        print(f"{r['watched_at'][:19].replace('T', ' ')}  {pos:>17}  {r['session_id'][:8]}  "
              f"{r['title'] or r['infohash']}  [{r['file_path'] or r['file_index']}]")
    return 0


def cmd_popular(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    try:
        rows = [p.to_json() for p in store.popular(args.days, args.limit)]
    finally:
        store.close()
    _queued_note(settings.data_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no watches in the last {args.days} days")
        return 0
    print(f"{'watches':>8} {'sessions':>8}  title (last {args.days} days)")
    for r in rows:
        print(f"{r['watches']:>8} {r['sessions']:>8}  {r['title'] or r['infohash']}  {r['infohash']}")
    return 0


def _clock(seconds: Any) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def add_history_commands(sub: Any) -> None:
    p = sub.add_parser("history", help="recent watches (all sessions, or one with --session)")
    p.add_argument("--session", help="one session id (the part of the cookie before the dot)")
    p.add_argument("--limit", type=_positive, default=20)
    p.add_argument("--json", action="store_true", help="JSON instead of lines")
    p.add_argument("--data-dir", type=Path, help="TSTREAM_DATA_DIR (SQLite history lives there)")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("popular", help="most watched torrents: watches and distinct sessions")
    p.add_argument("--days", type=_positive, default=30, help="window in UTC days ending today (30)")
    p.add_argument("--limit", type=_positive, default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-dir", type=Path)
    p.set_defaults(func=cmd_popular)
