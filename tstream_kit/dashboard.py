"""``tstream dashboard``: the watch app and the monitor, served by Voila.

One process runs a Jupyter Server with two extensions, Voila and tstream's
own (the standalone ``voila`` command loads no server extensions, so the
dashboards could not reach ``<base_url>tstream/api/...`` at their origin).
By default a generated clip is seeded on loopback and catalogued, so search
→ Watch works offline; ``--seed FILE`` seeds more files the same way.

    tstream dashboard                        # http://127.0.0.1:8866/voila/render/watch.ipynb?token=...
    tstream dashboard --port 0 --no-demo     # any free port, no demo clip

Kernels: Voila starts one per page view. A page that closes normally shuts
its kernel down (Voila's ``beforeunload`` beacon); for the others (a crashed
tab, a lost network) the dashboards stop refreshing once the page stops
pinging, and Jupyter culls kernels idle and disconnected for
``--cull-idle`` seconds.

The deployment (docker-compose) runs this command, or the same server as
``python -m jupyter_server`` with the arguments of :func:`server_argv`.
"""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("tstream.dashboard")

__all__ = ["dashboards_dir", "server_argv", "offline_environ", "add_dashboard_command", "run_dashboard",
           "template_root", "DEFAULT_PORT", "PAGES"]

DEFAULT_PORT = 8866
#: seconds a kernel may stay idle with no page connected before Jupyter stops it
CULL_IDLE_S = 30
#: seconds between two culling passes
CULL_INTERVAL_S = 5
PAGES = ("watch.ipynb", "monitor.ipynb")


def dashboards_dir() -> Path:
    """The notebooks: ``dashboards/`` of the source tree (``TSTREAM_DASHBOARDS`` overrides)."""
    env = os.environ.get("TSTREAM_DASHBOARDS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "dashboards"


def template_root() -> Path:
    """A Jupyter data dir holding ``voila/templates/tstream`` (our page template)."""
    return Path(__file__).resolve().parent / "dashapps" / "share"


def offline_environ() -> dict[str, str]:
    """What ``tstream serve --offline`` sets, as environment (the extension and kernels read it)."""
    return {"TSTREAM_DHT": "0", "TSTREAM_LSD": "0", "TSTREAM_PORT_MAPPING": "0", "TSTREAM_UTP": "0",
            "TSTREAM_BT_LISTEN": "127.0.0.1:0"}


def server_argv(*, root: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str = "",
                base_url: str = "/", cull_idle: int = CULL_IDLE_S, cull_interval: int = CULL_INTERVAL_S,
                allow_root: bool | None = None) -> list[str]:
    """Arguments for ``jupyter server`` (or ``ServerApp.initialize``)."""
    if allow_root is None:
        allow_root = hasattr(os, "geteuid") and os.geteuid() == 0
    argv = [
        "--no-browser", f"--ServerApp.ip={host}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--ServerApp.base_url={base_url}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.jpserver_extensions={'voila': True, 'tstream_kit': True}",
        # Voila: our template (no CDN), no code, no tracebacks on the page
        "--VoilaConfiguration.template=tstream", "--VoilaConfiguration.show_tracebacks=False",
        # the pages fetch nothing from the internet: MathJax would come from cdnjs
        "--ServerApp.tornado_settings={'mathjax_url': '%svoila/templates/tstream/static/no-mathjax.js'}"
        % (base_url if base_url.endswith("/") else base_url + "/"),
        # kernels of closed pages go away
        f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
        "--MappingKernelManager.cull_connected=False",
    ]
    if allow_root:
        argv.append("--allow-root")
    return argv


def add_dashboard_command(sub: Any) -> None:
    """``tstream dashboard`` on the CLI's subparsers."""
    p = sub.add_parser("dashboard", help="the watch app and the monitor (Voila), with an offline demo clip")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT}; 0 = any)")
    p.add_argument("--token", default=None,
                   help="Jupyter token for the pages (default: a random one, printed in the URLs; '' = none, "
                        "loopback only)")
    p.add_argument("--base-url", default="/", help="URL prefix (behind a reverse proxy)")
    p.add_argument("--data-dir", type=Path, help="downloads and state (TSTREAM_DATA_DIR)")
    p.add_argument("--notebooks", type=Path, help="folder with watch.ipynb and monitor.ipynb")
    p.add_argument("--no-demo", action="store_true", help="do not seed the generated demo clip")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the demo clip (default 60)")
    p.add_argument("--seed", action="append", type=Path, default=[], metavar="FILE",
                   help="also seed FILE on loopback and put it in the catalogue (repeatable)")
    p.add_argument("--seed-rate", default="1M",
                   help="upload limit of the loopback seeders, bytes/s (default 1M: you see it download; 0 = none)")
    p.add_argument("--online", action="store_true",
                   help="DHT, LSD and UPnP on (default: offline, loopback peers only)")
    p.add_argument("--cull-idle", type=int, default=CULL_IDLE_S,
                   help=f"seconds before an idle kernel of a closed page is stopped (default {CULL_IDLE_S})")
    p.set_defaults(func=run_dashboard)


def parse_rate(text: str) -> int:
    """
    >>> parse_rate("1M"), parse_rate("512k"), parse_rate("0")
    (1048576, 524288, 0)
    """
    text = text.strip().lower().rstrip("b/s").strip()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def _seed(files: Sequence[Path], rate: int, workdir: Path) -> list[Any]:
    from .engine.swarm import LocalSwarm
    swarms = []
    for i, f in enumerate(files):
        if not f.is_file():
            raise OSError(f"--seed {f}: no such file")
        swarms.append(LocalSwarm.from_files([f], workdir=workdir / f"seed{i}", upload_rate=rate))
    return swarms


def _demo_clip(seconds: float, workdir: Path) -> Path:
    from .mediagen import make_mp4
    clip = make_mp4(seconds=seconds, width=640, height=360, video_bitrate="1500k", faststart=True, seed=7)
    named = workdir / "src" / "tstream-demo.mp4"
    named.parent.mkdir(parents=True, exist_ok=True)
    if not named.exists():
        try:
            named.hardlink_to(clip)
        except OSError:
            named.write_bytes(clip.read_bytes())
    return named


def run_dashboard(args: argparse.Namespace) -> int:
    import tempfile

    from jupyter_server.serverapp import ServerApp

    root = (args.notebooks or dashboards_dir()).resolve()
    missing = [p for p in PAGES if not (root / p).is_file()]
    if missing:
        raise OSError(f"no {', '.join(missing)} in {root} (--notebooks DIR or TSTREAM_DASHBOARDS)")
    if args.host not in ("127.0.0.1", "localhost", "::1") and args.token == "":
        raise OSError("an empty --token is only allowed on a loopback address")
    token = secrets.token_urlsafe(24) if args.token is None else args.token

    # the extension (in this process) and the kernels read the same environment
    if not args.online:
        os.environ.update(offline_environ())
    if args.data_dir:
        os.environ["TSTREAM_DATA_DIR"] = str(args.data_dir)
    paths = [str(template_root())] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(paths)

    work = Path(tempfile.mkdtemp(prefix="tstream-dashboard-"))
    rate = parse_rate(args.seed_rate)
    files = ([] if args.no_demo else [_demo_clip(args.seconds, work)]) + list(args.seed)
    swarms = _seed(files, rate, work)
    try:
        app = ServerApp.instance()
        app.initialize(server_argv(root=root, host=args.host, port=args.port, token=token,
                                   base_url=args.base_url, cull_idle=args.cull_idle))
        kit = app.web_app.settings["tstream_kit"]
        for s in swarms:
            kit.search.remember_torrent_bytes(s.torrent_bytes, magnet=s.magnet, source="demo")
        base = app.connection_url.rstrip("/")
        q = "?" + urllib.parse.urlencode({"token": token}) if token else ""
        print("tstream dashboard:", flush=True)
        print(f"  watch:   {base}/voila/render/watch.ipynb{q}", flush=True)
        print(f"  monitor: {base}/voila/render/monitor.ipynb{q}", flush=True)
        for s in swarms:
            print(f"  seeding {s.name} on 127.0.0.1:{s.port} (search for it by name)", flush=True)
        print("Ctrl-C to stop.", flush=True)
        app.start()
    finally:
        for s in swarms:
            s.close()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":   # python -m tstream_kit.dashboard
    from .cli import main
    sys.exit(main(["dashboard", *sys.argv[1:]]))
