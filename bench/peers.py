"""Other streamers run on the benchmark's loopback swarm: peerflix 0.39.0 (Node, from npm).

``ensure_peerflix()`` finds or installs ``peerflix@0.39.0`` into a cache directory
(``$TSTREAM_BENCH_NODE`` or ``~/.cache/tstream/bench-node``; ``npm install`` from the registry).
``Peerflix(magnet, peer, workdir)`` launches one fresh peerflix process for one magnet:

* ``-e HOST:PORT`` points it at the seeder (peerflix ignores a magnet's ``x.pe``);
* ``--no-dht --no-tracker`` (optimist negations, passed through to torrent-stream) keep every
  packet on 127.0.0.1: the magnet names no tracker, and DHT would bootstrap over the internet;
* ``--tmp DIR``: torrent-stream keeps its metadata cache in ``DIR/torrent-stream/<infohash>.torrent``
  (``/tmp/torrent-stream/`` by default). Each launch gets a fresh DIR, and any
  ``/tmp/torrent-stream/<infohash>.*`` left from an earlier run is deleted, so every launch has to
  fetch the metadata from the peer like tstream does;
* ``-f DIR``: its own download path; ``-p PORT -h 127.0.0.1``: its HTTP server; ``-x PORT``: its
  peer port; ``-q``: it prints only ``server is listening on http://127.0.0.1:PORT/``, which it does
  once it has the metadata (the server is not up before that).

Timing. peerflix takes its magnet on the command line, so "magnet to first byte" for it runs from
the moment torrent-stream is handed the magnet: a ``node -r`` preload wraps torrent-stream's
entry point and prints ``TSTREAM_BENCH_ENGINE_START <epoch ms>`` when peerflix calls it (after
Node has started and loaded its ~280 modules). That matches tstream's figure, which runs from the
HTTP request to an already running server. ``launch_epoch`` (just before ``Popen``) is kept too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

PEERFLIX_VERSION = "0.39.0"
NODE_DIR = Path(os.environ.get("TSTREAM_BENCH_NODE",
                               Path.home() / ".cache" / "tstream" / "bench-node"))
NPM_TIMEOUT_S = 300.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
TORRENT_STREAM_TMP = Path("/tmp/torrent-stream")

_LISTENING_RE = re.compile(r"server is listening on (http://[0-9.]+:(\d+))/?")
_ENGINE_RE = re.compile(r"TSTREAM_BENCH_ENGINE_START ([0-9.]+)")

# Loaded with `node -r`: wraps torrent-stream's factory so the moment peerflix hands it the
# magnet is printed (epoch ms, same clock as Python's time.time()).
_PRELOAD_JS = r"""
const Module = require('module');
const { performance } = require('perf_hooks');
const load = Module._load;
let printed = false;
Module._load = function (request, parent, isMain) {
  const m = load.apply(this, arguments);
  if (request === 'torrent-stream' && typeof m === 'function' && !m.__tstreamBench) {
    const wrapped = function () {
      if (!printed) {
        printed = true;
        process.stderr.write('TSTREAM_BENCH_ENGINE_START ' +
          (performance.timeOrigin + performance.now()).toFixed(3) + '\n');
      }
      return m.apply(this, arguments);
    };
    Object.assign(wrapped, m);
    wrapped.__tstreamBench = true;
    return wrapped;
  }
  return m;
};
"""


class PeerUnavailable(RuntimeError):
    """peerflix cannot be run here (no node/npm, or the install failed)."""


def _app_js(node_dir: Path) -> Path:
    return node_dir / "node_modules" / "peerflix" / "app.js"


def installed_version(node_dir: Path = NODE_DIR) -> Optional[str]:
    try:
        pkg = json.loads((node_dir / "node_modules" / "peerflix" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return pkg.get("version")


def ensure_peerflix(node_dir: Path = NODE_DIR, *, install: bool = True,
                    log=lambda msg: None) -> dict:
    """``{"app": path of app.js, "node": node binary, "version": ..., "node_version": ...}``.

    Installs ``peerflix@0.39.0`` with npm into ``node_dir`` when it is missing (and ``install``);
    raises ``PeerUnavailable`` with the reason otherwise.
    """
    node = shutil.which("node")
    if not node:
        raise PeerUnavailable("node is not on PATH (Debian: apt-get install nodejs npm)")
    if installed_version(node_dir) != PEERFLIX_VERSION:
        if not install:
            raise PeerUnavailable(f"peerflix {PEERFLIX_VERSION} is not installed in {node_dir}")
        npm = shutil.which("npm")
        if not npm:
            raise PeerUnavailable("npm is not on PATH (Debian: apt-get install npm)")
        node_dir.mkdir(parents=True, exist_ok=True)
        log(f"installing peerflix@{PEERFLIX_VERSION} into {node_dir} (npm)...")
        try:
            proc = subprocess.run(
                [npm, "install", "--prefix", str(node_dir), "--no-audit", "--no-fund",
                 "--no-save", "--loglevel", "error", f"peerflix@{PEERFLIX_VERSION}"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise PeerUnavailable(f"npm install peerflix took longer than {NPM_TIMEOUT_S:.0f} s") from e
        if proc.returncode != 0 or installed_version(node_dir) != PEERFLIX_VERSION:
            raise PeerUnavailable(f"npm install peerflix@{PEERFLIX_VERSION} failed "
                                  f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    preload = node_dir / "tstream-bench-preload.js"
    if not preload.exists() or preload.read_text() != _PRELOAD_JS:
        preload.write_text(_PRELOAD_JS)
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
    return {"app": str(_app_js(node_dir)), "node": node, "preload": str(preload),
            "version": PEERFLIX_VERSION, "node_version": node_version}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Peerflix:
    """One fresh ``peerflix MAGNET -e HOST:PORT`` process; ``url`` once it listens."""

    def __init__(self, install: dict, magnet: str, infohash: str, peer: tuple[str, int],
                 workdir: Path, *, timeout: float = START_TIMEOUT_S) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.download_dir = workdir / "download"
        self.tmp_dir = workdir / "tmp"            # torrent-stream's metadata cache goes here
        self.log = workdir / "peerflix.log"
        # A metadata cache from an earlier launch would skip the metadata exchange.
        for stale in TORRENT_STREAM_TMP.glob(f"{infohash}*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        self.http_port = free_port()
        cmd = [install["node"], "-r", install["preload"], install["app"], magnet,
               "-e", f"{peer[0]}:{peer[1]}", "-p", str(self.http_port), "-h", "127.0.0.1",
               "-x", str(free_port()), "-f", str(self.download_dir), "--tmp", str(self.tmp_dir),
               "--no-dht", "--no-tracker", "-q"]
        self.launch_epoch = time.time()
        t0 = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=workdir,
                                         env={**os.environ, "NO_COLOR": "1"})
        self.url = ""
        self.engine_epoch: Optional[float] = None
        self.listening_epoch: Optional[float] = None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            text = _tail(self.log, 20000)
            m = _LISTENING_RE.search(text)
            if m:
                self.listening_epoch = time.time()
                self.url = m.group(1)
                e = _ENGINE_RE.search(text)
                self.engine_epoch = float(e.group(1)) / 1000 if e else None
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"peerflix exited with {self.proc.returncode}:\n{_tail(self.log)}")
            time.sleep(0.002)
        else:
            self.stop()
            raise TimeoutError(f"peerflix did not listen within {timeout:.0f} s:\n{_tail(self.log)}")
        if self.engine_epoch is None:
            self.stop()
            raise RuntimeError("peerflix: the preload printed no engine start (torrent-stream "
                               f"not loaded by name?):\n{_tail(self.log)}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stream_url(self) -> str:
        return self.url + "/"          # peerflix serves the selected file at /

    def download_path(self, name: str) -> Path:
        return self.download_dir / name

    def stop(self) -> None:
        """SIGTERM our node process (by pid), SIGKILL if it lingers."""
        if self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Peerflix":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":   # python bench/peers.py: install (if needed) and print the versions
    import sys
    try:
        print(json.dumps(ensure_peerflix(log=lambda m: print(m, file=sys.stderr)), indent=2))
    except PeerUnavailable as e:
        print(f"peerflix unavailable: {e}", file=sys.stderr)
        sys.exit(1)
