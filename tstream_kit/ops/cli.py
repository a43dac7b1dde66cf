"""``tstream backup``, ``tstream restore``, ``tstream health`` (the Docker health check)."""
from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["add_ops_commands"]


def _settings(args: argparse.Namespace):
    from ..config import Settings
    return Settings.from_env(data_dir=getattr(args, "data_dir", None))


def cmd_backup(args: argparse.Namespace) -> int:
    from .backup import backup
    s = _settings(args)
    n = backup(s.database_url, s.data_dir, args.file)
    print(f"backed up {n} watches to {args.file}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .backup import restore
    s = _settings(args)
    try:
        n = restore(s.database_url, s.data_dir, args.file)
    except ValueError as exc:
        print(f"tstream: {exc}", file=sys.stderr)
        return 2
    print(f"restored {n} watches from {args.file}", file=sys.stderr)
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """GET /api/health of a running server (with the token); exit 0 when it answers ok."""
    s = _settings(args)
    url = args.url or f"http://{'127.0.0.1' if s.host in ('0.0.0.0', '::', '') else s.host}:{s.port}"
    req = urllib.request.Request(url.rstrip("/") + "/api/health")
    if s.api_token:
        req.add_header("Authorization", f"Bearer {s.api_token}")
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as r:
            body: Any = json.loads(r.read())
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(body))
    return 0 if body.get("status") == "ok" else 1


def add_ops_commands(sub: Any) -> None:
    p = sub.add_parser("backup", help="write the watch history to a file (gzip JSON Lines)")
    p.add_argument("file", help="where to write (- = stdout), e.g. history-$(date +%%F).jsonl.gz")
    p.add_argument("--data-dir", type=Path, help="data directory (TSTREAM_DATA_DIR; the SQLite store)")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", help="load a backup into the configured history store (upsert)")
    p.add_argument("file", help="a file written by tstream backup (- = stdin)")
    p.add_argument("--data-dir", type=Path, help="data directory (TSTREAM_DATA_DIR; the SQLite store)")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("health", help="ask a running server for /api/health (exit 1 if unhealthy)")
    p.add_argument("--url", help="server URL (default: TSTREAM_HOST:TSTREAM_PORT)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    p.set_defaults(func=cmd_health)
