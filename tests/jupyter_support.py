"""A real ``jupyter server`` with the tstream extension (and Voila) for tests.

Offline: the kit inside it has no DHT/LSD/UPnP and listens on 127.0.0.1; its
own runtime directory, so ``list_running_servers()`` in its kernels sees it
alone. Stopped (by pid) at exit, even when the test fails.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

TOKEN = "tstream-widgets-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(tmp: Path) -> dict[str, str]:
    """The environment of a server (and its kernels): offline tstream, own Jupyter dirs."""
    env = dict(os.environ)
    env.update(TSTREAM_DATA_DIR=str(tmp / "data"), TSTREAM_BT_LISTEN="127.0.0.1:0", TSTREAM_DHT="0",
               TSTREAM_LSD="0", TSTREAM_PORT_MAPPING="0", TSTREAM_UTP="0",
               NO_PROXY="127.0.0.1,localhost", JUPYTER_PLATFORM_DIRS="1",
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), PYTHONUNBUFFERED="1")
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "TSTREAM_URL", "JPY_PARENT_PID",
                "TSTREAM_SESSION"):
        env.pop(var, None)
    return env


@dataclass
class JupyterServer:
    base: str          # http://127.0.0.1:PORT
    pid: int
    token: str
    root: Path
    log: Path
    env: dict[str, str]

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def jupyter_server(tmp: Path, *, voila: bool = False, start_timeout: float = 60.0) -> Iterator[JupyterServer]:
    port = free_port()
    root = tmp / "nb"
    root.mkdir(parents=True, exist_ok=True)
    extensions = "{'tstream_kit': True" + (", 'voila': True" if voila else "") + "}"
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
           f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
           f"--ServerApp.root_dir={root}", f"--ServerApp.jpserver_extensions={extensions}",
           # Voila starts a kernel per page and keeps it: cull what the test leaves
           "--MappingKernelManager.cull_idle_timeout=120", "--MappingKernelManager.cull_interval=60"]
    env = offline_env(tmp)
    log_path = tmp / "jupyter.log"
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(root))
    server = JupyterServer(f"http://127.0.0.1:{port}", proc.pid, TOKEN, root, log_path, env)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                urllib.request.urlopen(f"{server.base}/api/status?token={TOKEN}", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    raise AssertionError("jupyter server exited:\n" + server.log_tail())
                if time.monotonic() > deadline:
                    raise AssertionError("jupyter server did not start:\n" + server.log_tail())
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
