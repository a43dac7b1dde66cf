"""``tstream search QUERY``: in this process (no engine, no server needed), or
through a running server with ``--server``. Exit status: 0 with results, 1 with
none, 2 for a bad query."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..config import Settings

__all__ = ["run_search", "format_table", "human_size"]


def human_size(n: int | None) -> str:
    """>>> human_size(1288490188)
    '1.2 GiB'
    """
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def format_table(answer: dict[str, Any]) -> str:
    lines = [f"{'seed':>6} {'leech':>6} {'size':>10}  {'provider':<10} title"]
    for r in answer["results"]:
        seed = "-" if r["seeders"] is None else str(r["seeders"])
        leech = "-" if r["leechers"] is None else str(r["leechers"])
        lines.append(f"{seed:>6} {leech:>6} {human_size(r['size']):>10}  {r['provider']:<10} {r['title']}")
        lines.append(f"{'':>32}{r['magnet']}")
    return "\n".join(lines)


def _status_lines(answer: dict[str, Any]) -> list[str]:
    out = []
    for name, st in answer["providers"].items():
        extra = " (cached)" if st.get("cached") else ""
        err = f": {st['error']}" if st.get("error") else ""
        out.append(f"  {name}: {st['status']}{extra}, {st.get('count', 0)} results, {st['ms']:.0f} ms{err}")
    return out


async def _local(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from .kitpart import SearchKit
    kit = SearchKit(settings)
    await kit.start()
    try:
        return await kit.search(args.query, provider=args.provider, limit=args.limit, sort=args.sort)
    finally:
        await kit.stop()


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    from ..client import ApiError, Client, ClientError
    from .aggregate import UnknownProvider
    from .query import QueryError
    try:
        if args.server:
            answer: dict[str, Any] = dict(Client(args.server).search(
                args.query, provider=args.provider, limit=args.limit, sort=args.sort))
        else:
            answer = asyncio.run(_local(args, settings))
    except (QueryError, UnknownProvider) as exc:
        print(f"tstream: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"tstream: {exc.message}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
    except ClientError as exc:
        print(f"tstream: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        if answer["results"]:
            print(format_table(answer))
        else:
            print(f"no results for {answer['query']!r}")
        print("\n".join(_status_lines(answer)), file=sys.stderr)
    return 0 if answer["results"] else 1
