"""The ``tstream`` command."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .config import ConfigError, Settings


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        data_dir=getattr(args, "data_dir", None),
    )


def _add_server_args(p: argparse.ArgumentParser, port_default: str = "TSTREAM_PORT or 8080") -> None:
    p.add_argument("--host", help="address to listen on (TSTREAM_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help=f"HTTP port ({port_default}; 0 = any free port)")
    p.add_argument("--data-dir", type=Path, help="downloads and state (TSTREAM_DATA_DIR)")


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.app import serve
    settings = _settings(args)
    if args.offline:
        settings = settings.offline()
    _preflight(settings, verbose=args.verbose)
    asyncio.run(serve(settings))
    return 0


def _preflight(settings: Settings, verbose: bool = False) -> None:
    """Logs as configured (TSTREAM_LOG_FORMAT/LEVEL), then every start-up
    mistake at once (ops/preflight.py); warnings are logged, not fatal."""
    from .ops.logs import setup_logging
    from .ops.preflight import preflight
    setup_logging(settings.log_format, "debug" if verbose else settings.log_level)
    problems, warnings = preflight(settings)
    for w in warnings:
        logging.getLogger("tstream").warning("%s", w)
    if problems:
        if all(p.startswith("cannot listen on") for p in problems):
            raise OSError("; ".join(problems))   # exit 1, as a bind failure always did
        raise ConfigError(problems)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    asyncio.run(run_demo(_settings(args), seconds=args.seconds))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Fetch a magnet's metadata with an engine of our own and print it."""
    from .kit import Kit
    from .server.handlers.api import torrent_info

    async def run() -> int:
        settings = _settings(args)
        if args.offline:
            settings = settings.offline()
        kit = Kit(settings.replace(bt_listen=settings.bt_listen if not args.offline else "127.0.0.1:0"))
        await kit.start()
        try:
            torrent = await kit.torrent_with_metadata(args.magnet)
            print(json.dumps(torrent_info(torrent), indent=2))
        finally:
            await kit.stop()
        return 0
    return asyncio.run(run())


def cmd_search(args: argparse.Namespace) -> int:
    """Search with this machine's configuration, or ask a running server (--server)."""
    from .search.cli import run_search
    return run_search(args, _settings(args))


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).public_dict(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tstream", description="Stream torrent video into a browser.")
    ap.add_argument("--version", action="version", version=f"tstream {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP server")
    _add_server_args(p)
    p.add_argument("--offline", action="store_true",
                   help="loopback peers only: no DHT/LSD/UPnP, TCP, BitTorrent on 127.0.0.1")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="seed a generated clip on loopback and stream it")
    _add_server_args(p)
    p.add_argument("--seconds", type=float, default=60.0, help="length of the generated clip")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("info", help="print a magnet's files")
    p.add_argument("magnet")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--offline", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("search", help="search torrents (catalogue, Torznab indexers, Nyaa, apibay)")
    p.add_argument("query")
    p.add_argument("--provider", help="only these providers (comma-separated names)")
    p.add_argument("--limit", type=int, default=20, help="at most this many results (default 20)")
    p.add_argument("--sort", default="seeders", choices=["seeders", "size", "published", "title"])
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.add_argument("--server", help="ask a running tstream server (e.g. http://127.0.0.1:8080)")
    p.add_argument("--data-dir", type=Path, help="data directory with the catalogue (TSTREAM_DATA_DIR)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("config", help="print the effective configuration")
    p.set_defaults(func=cmd_config)

    from .store.history.cli import add_history_commands
    add_history_commands(sub)   # tstream history, tstream popular
    from .ops.cli import add_ops_commands
    add_ops_commands(sub)       # tstream backup, restore, health
    from .dashboard import add_dashboard_command
    add_dashboard_command(sub)  # tstream dashboard (Voila)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"tstream: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tstream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
