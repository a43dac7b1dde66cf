"""Baselines for the streaming benchmark, measured in the same run as tstream.

Three reference points frame tstream's numbers:

* ``Nginx`` serving the completed file: the ceiling for bytes over HTTP on this machine.
* ``plain_libtorrent_download``: a fresh libtorrent session with default settings (TCP only)
  fetching the same torrent from the same peers: the ceiling for bytes out of the swarm.
* ``http_get_throughput``: the client side of every HTTP measurement, fast enough (``recv_into`` a
  preallocated 1 MiB buffer, body discarded) that it measures nginx at several GB/s rather than
  itself.

A private seeder (``start_seeder`` / ``seed_in_subprocess``) gives the libtorrent baseline a peer.
It is self-contained on purpose: the kit's ``tstream_kit.engine.swarm.LocalSwarm`` is meant to
replace it, and nothing else here depends on it.

libtorrent runs only in subprocesses (this file run as a script), so a benchmark process never
shares a session, threads or page-cache accounting with the code it measures.

Manual runs::

    python -m bench.baselines demo --mb 200           # nginx + libtorrent on a generated MP4
    python -m bench.baselines get URL [--range bytes=0-]
    python -m bench.baselines seed FILE               # prints a JSON line, seeds until stdin closes
    python -m bench.baselines download --magnet M --save-dir D --peer 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union
from urllib.parse import quote, urlsplit

__all__ = [
    "NGINX_BIN",
    "Nginx",
    "SeederProcess",
    "http_get_throughput",
    "plain_libtorrent_download",
    "seed_in_subprocess",
    "start_seeder",
]

NGINX_BIN = os.environ.get("TSTREAM_NGINX", "/usr/sbin/nginx")
# One read of the body: large enough that the per-call Python overhead is negligible at GB/s.
READ_SIZE = 1 << 20
# BitTorrent piece size of the private seeder's torrents (256 KiB, a common size for ~200 MB).
PIECE_SIZE = 262144
# How long a started helper (nginx, seeder) may take to become ready.
START_TIMEOUT_S = 30.0
MB = 1e6  # throughput is reported in decimal MB/s, like network tools


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s")


def _stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a child we started, by its pid; kill its own process group if it does not exit."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The child was started with start_new_session=True, so its group holds only it and
        # its own children (nginx workers).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


# --------------------------------------------------------------------------------------- nginx


_NGINX_CONF = """\
daemon off;
master_process {master};
worker_processes {workers};
{user_line}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    types {{
        video/mp4 mp4 m4v;
        video/webm webm;
        video/x-matroska mkv;
        text/plain txt srt;
        text/vtt vtt;
        application/x-bittorrent torrent;
    }}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 30;

    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        location / {{
        }}
    }}
}}
"""


class Nginx:
    """nginx serving ``root`` on 127.0.0.1 at a free port, for the length of a ``with`` block.

    Everything nginx writes (conf, pid, error log, temp paths) lives in a private temp dir, so it
    runs as root or not without touching /var. As root the worker runs as root too (``user``
    directive), else it could not read a pytest tmp dir (mode 0700).

    >>> with Nginx(some_dir) as ng:                                   # doctest: +SKIP
    ...     http_get_throughput(ng.url_for("movie.mp4"))
    """

    def __init__(
        self,
        root: Union[str, os.PathLike],
        *,
        nginx: str = NGINX_BIN,
        workers: Union[int, str] = 1,
        master_process: bool = True,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self.root = Path(root).resolve()
        self.nginx = nginx
        self.workers = workers
        self.master_process = master_process
        self.start_timeout = start_timeout
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self._tmp: Optional[tempfile.TemporaryDirectory] = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("nginx is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def error_log(self) -> Path:
        assert self._tmp is not None
        return Path(self._tmp.name) / "error.log"

    def url_for(self, name: str) -> str:
        return f"{self.base_url}/{quote(str(name).lstrip('/'))}"

    def _write_conf(self, tmp: Path, port: int) -> Path:
        user_line = ""
        if os.geteuid() == 0:
            user_line = f"user {pwd.getpwuid(0).pw_name};"
        conf = tmp / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(
            master="on" if self.master_process else "off", workers=self.workers,
            user_line=user_line, tmp=tmp, port=port, root=self.root,
        ))
        return conf

    def start(self) -> "Nginx":
        if not os.access(self.nginx, os.X_OK):
            raise FileNotFoundError(
                f"nginx not found at {self.nginx} (install Debian's nginx-light, "
                "or set TSTREAM_NGINX)")
        if not self.root.is_dir():
            raise NotADirectoryError(self.root)
        self._tmp = tempfile.TemporaryDirectory(prefix="tstream-nginx-")
        tmp = Path(self._tmp.name)
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and nginx's bind
            port = _free_port()
            conf = self._write_conf(tmp, port)
            # -e: the error log before the conf is read, else nginx opens /var/log/nginx first.
            self.proc = subprocess.Popen(
                [self.nginx, "-e", str(tmp / "error.log"), "-p", f"{tmp}/", "-c", str(conf)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                _wait_for_port(port, self.proc, self.start_timeout)
                self.port = port
                return self
            except (RuntimeError, TimeoutError) as e:
                _stop_process(self.proc)
                log = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
                last_error = f"{e}\n{log[-2000:]}"
                if "Address already in use" not in log:
                    break
        self._tmp.cleanup()
        self._tmp = None
        raise RuntimeError(f"nginx did not start: {last_error}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc)  # SIGTERM: fast shutdown of master and workers
            self.proc = None
        self.port = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Nginx":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------- HTTP client


class _ChunkedCounter:
    """Counts the payload of a chunked body without keeping it. ``feed`` returns True at the end.
    ``sink``, if given, is called with each payload slice (a memoryview, valid only during the
    call)."""

    def __init__(self, sink: Optional[Callable[[memoryview], None]] = None) -> None:
        self.payload = 0
        self._sink = sink
        self._remaining = 0  # payload bytes left in the current chunk
        self._after_data = 0  # CRLF bytes left after the current chunk's data
        self._line = bytearray()
        self._in_trailer = False
        self.done = False

    def feed(self, data: Union[bytes, bytearray], n: int) -> bool:
        """Consume ``data[:n]`` (``bytes.find`` on the buffer avoids copying the payload)."""
        i = 0
        while i < n and not self.done:
            if self._remaining:
                take = min(self._remaining, n - i)
                if self._sink is not None:
                    self._sink(memoryview(data)[i:i + take])
                self._remaining -= take
                self.payload += take
                i += take
                if not self._remaining:
                    self._after_data = 2
            elif self._after_data:
                take = min(self._after_data, n - i)
                self._after_data -= take
                i += take
            else:
                j = data.find(b"\n", i, n)
                if j < 0:
                    self._line += data[i:n]
                    i = n
                    if len(self._line) > 8192:
                        raise ValueError("chunk size line too long")
                    continue
                self._line += data[i:j]
                i = j + 1
                line = bytes(self._line).strip()
                self._line.clear()
                if self._in_trailer:
                    if not line:
                        self.done = True
                    continue
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:
                    self._in_trailer = True
                else:
                    self._remaining = size
        return self.done


def http_get_throughput(
    url: str,
    *,
    range_header: Optional[str] = None,
    timeout: float = 120.0,
    method: str = "GET",
    extra_headers: Optional[dict] = None,
    body_sink: Optional[Callable[[memoryview], None]] = None,
    want: Optional[int] = None,
) -> dict:
    """GET ``url`` over a fresh connection, discard the body, and time it.

    Returns ``status``, ``headers`` (lower-case names), ``bytes`` (body bytes received),
    ``seconds`` (connect to last byte), ``mb_per_s`` (bytes / seconds, MB = 1e6),
    ``ttfb_s`` (connect to first response byte), ``first_body_byte_s``, ``body_mb_per_s``
    (bytes / time from first to last body byte) and ``complete`` (Content-Length reached, or the
    chunked body ended). ``timeout`` bounds the whole request; ``TimeoutError`` past it.

    ``body_sink``, if given, is called with every piece of the body in order (a memoryview of
    the receive buffer, valid only during the call: e.g. ``hashlib.sha256().update`` to check
    the bytes without keeping them); the timings then include it.

    ``want``: stop (and close the connection) once this many body bytes are in, as a player
    that abandons a request does; ``complete`` then means ``min(want, Content-Length)`` arrived.
    The sink may see a few bytes past ``want`` (the last receive is not cut).
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs: {url}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}",
             "User-Agent: tstream-bench", "Accept: */*", "Accept-Encoding: identity",
             "Connection: close"]
    if range_header:
        lines.append(f"Range: {range_header}")
    for k, v in (extra_headers or {}).items():
        lines.append(f"{k}: {v}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    buf = bytearray(READ_SIZE)
    view = memoryview(buf)
    t0 = time.perf_counter()
    deadline = t0 + timeout

    def recv(sock: socket.socket) -> int:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"GET {url} took longer than {timeout} s")
        sock.settimeout(left)
        try:
            return sock.recv_into(view, READ_SIZE)
        except socket.timeout as e:
            raise TimeoutError(f"GET {url} took longer than {timeout} s") from e

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)

        head = bytearray()
        ttfb = None
        while True:
            n = recv(sock)
            if ttfb is None:
                ttfb = time.perf_counter() - t0
            if n == 0:
                raise ConnectionError(f"connection closed before the headers of {url}")
            head += view[:n]
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(head) > 65536:
                raise ValueError("response headers larger than 64 KiB")
        header_lines = head[:end].decode("latin-1").split("\r\n")
        status_parts = header_lines[0].split(" ", 2)
        status = int(status_parts[1])
        headers: dict[str, str] = {}
        for line in header_lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        leftover = bytes(head[end + 4:])

        first_body = None
        received = 0
        complete = True
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            counter = _ChunkedCounter(body_sink)
            if len(leftover):
                first_body = time.perf_counter() - t0
                counter.feed(leftover, len(leftover))
            while not counter.done and (want is None or counter.payload < want):
                n = recv(sock)
                if n == 0:
                    complete = False
                    break
                if first_body is None:
                    first_body = time.perf_counter() - t0
                counter.feed(buf, n)
            received = counter.payload
            if want is not None and received >= want:
                complete = True
        else:
            length = headers.get("content-length")
            expected = int(length) if length is not None else None
            if want is not None:
                expected = want if expected is None else min(want, expected)
            received = len(leftover)
            if received:
                first_body = time.perf_counter() - t0
                if body_sink is not None:
                    body_sink(memoryview(leftover))
            while expected is None or received < expected:
                n = recv(sock)
                if n == 0:
                    complete = expected is None
                    break
                if first_body is None:
                    first_body = time.perf_counter() - t0
                if body_sink is not None:
                    body_sink(view[:n])
                received += n
        seconds = time.perf_counter() - t0

    body_time = seconds - first_body if first_body is not None else 0.0
    return {
        "url": url,
        "status": status,
        "headers": headers,
        "bytes": received,
        "complete": complete,
        "seconds": seconds,
        "mb_per_s": received / MB / seconds if seconds > 0 else 0.0,
        "ttfb_s": ttfb,
        "first_body_byte_s": first_body,
        "body_mb_per_s": received / MB / body_time if body_time > 0 else None,
    }


# --------------------------------------------------------------------------- libtorrent workers
# Everything below that imports libtorrent runs in a child process (this file as a script).


def _lt_session(lt, extra: Optional[dict] = None):
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only: uTP between two sessions on loopback moves ~20 MB/s and would be measured
        # instead of the download path.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "alert_mask": (lt.alert_category.status | lt.alert_category.error
                       | lt.alert_category.storage | lt.alert_category.piece_progress),
    }
    settings.update(extra or {})
    return lt.session(settings)


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _seed_main(path: str, piece_size: int) -> int:
    import libtorrent as lt

    file_path = Path(path).resolve()
    fs = lt.file_storage()
    lt.add_files(fs, str(file_path))
    ct = lt.create_torrent(fs, piece_size, lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(file_path.parent))
    torrent_bytes = lt.bencode(ct.generate())
    ti = lt.torrent_info(torrent_bytes)

    ses = _lt_session(lt, {"alert_mask": lt.alert_category.error | lt.alert_category.status})
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = str(file_path.parent)
    h = ses.add_torrent(atp)  # full check of the existing file, so it seeds at full speed

    deadline = time.monotonic() + 600
    while not h.status().is_seeding:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                _emit({"error": a.message()})
                return 1
        if time.monotonic() > deadline:
            _emit({"error": "seeder did not reach seeding state"})
            return 1

    port = ses.listen_port()
    infohash = str(ti.info_hashes().v1)
    name = ti.name()
    _emit({
        "infohash": infohash,
        "port": port,
        "name": name,
        "size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "magnet": f"magnet:?xt=urn:btih:{infohash}&dn={quote(name)}&x.pe=127.0.0.1:{port}",
        "torrent_hex": torrent_bytes.hex(),
    })

    # Seed until the parent closes our stdin (or dies) or sends SIGTERM.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        ses.wait_for_alert(200)
        ses.pop_alerts()  # keep the queue drained
    return 0


def _download_main(args: argparse.Namespace) -> int:
    import libtorrent as lt

    t_start = time.monotonic()
    ses = _lt_session(lt)
    session_s = time.monotonic() - t_start

    if args.magnet:
        atp = lt.parse_magnet_uri(args.magnet)
    else:
        atp = lt.load_torrent_buffer(Path(args.torrent).read_bytes())
    atp.save_path = args.save_dir
    peers = [(p.rsplit(":", 1)[0], int(p.rsplit(":", 1)[1])) for p in args.peer]

    t_add = time.monotonic()
    h = ses.add_torrent(atp)
    for peer in peers:
        h.connect_peer(peer)
    t_meta = 0.0 if not args.magnet else None
    t_first = None
    t_done = None
    error = None
    deadline = t_add + args.timeout
    while t_done is None and error is None:
        if time.monotonic() > deadline:
            error = f"timeout after {args.timeout} s"
            break
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            now = time.monotonic() - t_add
            if isinstance(a, lt.metadata_received_alert) and t_meta is None:
                t_meta = now
            elif isinstance(a, lt.piece_finished_alert) and t_first is None:
                t_first = now
            elif isinstance(a, lt.torrent_finished_alert):
                t_done = now
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert,
                                lt.metadata_failed_alert)):
                error = a.message()

    st = h.status()
    ti = h.torrent_file()
    size = ti.total_size() if ti is not None else None
    result = {
        "libtorrent": lt.__version__,
        "name": ti.name() if ti is not None else None,
        "infohash": str(ti.info_hashes().v1) if ti is not None else None,
        "bytes": size,
        "piece_length": ti.piece_length() if ti is not None else None,
        "num_pieces": ti.num_pieces() if ti is not None else None,
        "files": [ti.files().file_path(i) for i in range(ti.num_files())] if ti is not None else [],
        "save_dir": args.save_dir,
        "peers": peers,
        "session_start_s": session_s,
        "seconds_to_metadata": t_meta,
        "seconds_to_first_piece": t_first,
        "seconds_to_complete": t_done,
        "total_payload_download": st.total_payload_download,
        "mb_per_s_after_first_piece": None,
        "mb_per_s_total": None,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "error": error,
    }
    if size and t_done:
        result["mb_per_s_total"] = size / MB / t_done
        if t_first is not None and t_done > t_first:
            result["mb_per_s_after_first_piece"] = size / MB / (t_done - t_first)
    _emit(result)
    ses.remove_torrent(h)
    return 0 if error is None else 1


# ---------------------------------------------------------------------------- parent-side API


def _script_cmd(*args: str) -> list[str]:
    # This file run by path: the child imports only the stdlib and libtorrent, whatever the cwd.
    return [sys.executable, "-u", str(Path(__file__).resolve()), *args]


@dataclass
class SeederProcess:
    """A libtorrent seeder in a child process; stop() (or leaving ``with``) ends it."""

    proc: subprocess.Popen
    magnet: str
    port: int
    infohash: str
    torrent_bytes: bytes
    info: dict = field(repr=False)

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the seeder exits when its stdin closes
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> "SeederProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_seeder(path: Union[str, os.PathLike], *, piece_size: int = PIECE_SIZE,
                 timeout: float = 120.0) -> SeederProcess:
    """Make a v1-only torrent of ``path`` and seed it from a child process on 127.0.0.1."""
    proc = subprocess.Popen(
        _script_cmd("seed", str(path), "--piece-size", str(piece_size)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].strip():
        _stop_process(proc)
        raise RuntimeError(f"seeder for {path} gave no ready line within {timeout} s "
                           f"(exit code {proc.poll()})")
    info = json.loads(line[0])
    if "error" in info:
        _stop_process(proc)
        raise RuntimeError(f"seeder failed: {info['error']}")
    return SeederProcess(proc=proc, magnet=info["magnet"], port=info["port"],
                         infohash=info["infohash"],
                         torrent_bytes=bytes.fromhex(info["torrent_hex"]), info=info)


def seed_in_subprocess(path: Union[str, os.PathLike]) -> tuple[subprocess.Popen, str, int]:
    """``(proc, magnet, port)`` of a seeder for ``path``; close ``proc.stdin`` to stop it.

    The magnet carries the seeder as ``x.pe=127.0.0.1:PORT``. ``start_seeder`` gives the
    .torrent bytes and the info-hash as well.
    """
    s = start_seeder(path)
    return s.proc, s.magnet, s.port


def plain_libtorrent_download(
    magnet_or_torrent_bytes: Union[str, bytes],
    *,
    save_dir: Union[str, os.PathLike],
    peers: Sequence[tuple[str, int]],
    timeout: float = 300.0,
) -> dict:
    """Download with a fresh, default-settings libtorrent session (TCP only) in a child process.

    Returns the child's JSON dict: ``seconds_to_metadata`` (0 for .torrent bytes),
    ``seconds_to_first_piece``, ``seconds_to_complete`` (all from ``add_torrent``), ``bytes``,
    ``mb_per_s_after_first_piece`` (bytes / (complete - first piece)), ``mb_per_s_total``
    (bytes / complete), ``session_start_s``, ``max_rss_mb``, ``files``. Raises ``RuntimeError``
    if the download fails or times out.
    """
    save_dir = str(Path(save_dir).resolve())
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    args = ["download", "--save-dir", save_dir, "--timeout", str(timeout)]
    for host, port in peers:
        args += ["--peer", f"{host}:{port}"]
    with tempfile.TemporaryDirectory(prefix="tstream-lt-") as tmp:
        if isinstance(magnet_or_torrent_bytes, str):
            args += ["--magnet", magnet_or_torrent_bytes]
        else:
            torrent = Path(tmp) / "download.torrent"
            torrent.write_bytes(bytes(magnet_or_torrent_bytes))
            args += ["--torrent", str(torrent)]
        try:
            proc = subprocess.run(_script_cmd(*args), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"libtorrent download did not finish in {timeout + 30} s") from e
    lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"download worker printed no result (exit {proc.returncode}):\n"
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    result = json.loads(lines[-1])
    if result.get("error") or proc.returncode != 0:
        raise RuntimeError(f"libtorrent download failed: {result.get('error')} "
                           f"(exit {proc.returncode})\n{proc.stderr.decode(errors='replace')[-2000:]}")
    return result


# ---------------------------------------------------------------------------------- command line


def _demo(mb: int, workdir: Optional[str]) -> int:
    """Generate a file, then measure nginx and plain libtorrent on it; print JSON."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="tstream-bench-"))
    src = tmp / "seed"
    src.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tstream_kit import mediagen

        movie = mediagen.make_mp4_of_size(src / "movie.mp4", min_bytes=mb * 1_000_000)
    except ImportError:
        movie = src / "movie.bin"
        with movie.open("wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1_000_000))
    out: dict = {"file": str(movie), "bytes": movie.stat().st_size,
                 "prepare_s": time.monotonic() - t0}
    with Nginx(src) as ng:
        url = ng.url_for(movie.name)
        http_get_throughput(url)  # warm the page cache
        runs = [http_get_throughput(url) for _ in range(3)]
        out["nginx_mb_per_s"] = sorted(r["mb_per_s"] for r in runs)
        out["nginx_ttfb_s"] = min(r["ttfb_s"] for r in runs)
    with start_seeder(movie) as seeder:
        dl = tmp / "download"
        r = plain_libtorrent_download(seeder.magnet, save_dir=dl, peers=[("127.0.0.1", seeder.port)])
        out["libtorrent_magnet"] = r
        shutil.rmtree(dl)
        r = plain_libtorrent_download(seeder.torrent_bytes, save_dir=dl,
                                      peers=[("127.0.0.1", seeder.port)])
        out["libtorrent_torrent"] = r
        shutil.rmtree(dl)
    print(json.dumps(out, indent=2))
    if not workdir:
        shutil.rmtree(tmp)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seed", help="seed FILE; print a JSON line; run until stdin closes")
    p.add_argument("path")
    p.add_argument("--piece-size", type=int, default=PIECE_SIZE)
    p = sub.add_parser("download", help="plain libtorrent download; print a JSON line")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--magnet")
    g.add_argument("--torrent", help="path of a .torrent file")
    p.add_argument("--save-dir", required=True)
    p.add_argument("--peer", action="append", default=[], help="HOST:PORT, repeatable")
    p.add_argument("--timeout", type=float, default=300.0)
    p = sub.add_parser("get", help="time one HTTP GET")
    p.add_argument("url")
    p.add_argument("--range")
    p = sub.add_parser("nginx", help="serve DIR with nginx until Ctrl-C")
    p.add_argument("root")
    p = sub.add_parser("demo", help="nginx and libtorrent baselines on a generated file")
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--workdir")
    args = ap.parse_args(argv)

    if args.cmd == "seed":
        return _seed_main(args.path, args.piece_size)
    if args.cmd == "download":
        return _download_main(args)
    if args.cmd == "get":
        r = http_get_throughput(args.url, range_header=args.range)
        print(json.dumps(r, indent=2))
        return 0
    if args.cmd == "nginx":
        with Nginx(args.root) as ng:
            print(f"serving {args.root} at {ng.base_url}/ (Ctrl-C to stop)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    if args.cmd == "demo":
        return _demo(args.mb, args.workdir)
    return 2


if __name__ == "__main__":
    sys.exit(main())
