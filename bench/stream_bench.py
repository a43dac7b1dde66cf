"""Streaming benchmark (issue 2): tstream against plain libtorrent and nginx on a loopback swarm.

What it measures, each as the median (and min/max) of ``--runs`` runs::

    first byte   fresh ``tstream serve`` process and data dir, GET /api/stream?magnet=... with
                 ``Range: bytes=0-``: time from connect to the first body byte (magnet -> metadata
                 -> first piece -> HTTP). Target <= 250 ms.
    seek         fresh server, same request against a rate-limited seeder; as soon as the first
                 byte arrives that request is dropped (as a player does on a seek) and
                 ``Range: bytes=X-(X+1MiB-1)`` is asked at an offset X in the second half of the
                 file that holds no downloaded byte yet (checked on the server's partial file with
                 SEEK_DATA right before the request). Time until the 1 MiB is in. Target <= 100 ms.
    cold         the first-byte request read to the end: whole-file MB/s from a fresh torrent,
                 against a fresh default libtorrent session downloading the same swarm
                 (``bench.baselines.plain_libtorrent_download``, TCP). Target >= 0.9x.
    warm         once the torrent is complete, the whole file again, against nginx serving the
                 same bytes (``bench.baselines.Nginx``). Target >= 0.5x.
    memory       the server's RSS / USS / anonymous RSS (psutil, /proc) after cold and after warm,
                 for a file of ``--mb`` and one of ``--big-mb``: does memory grow with file size?

Every HTTP figure uses the same client (``bench.baselines.http_get_throughput``, or for the
two reads that stop early a copy of its socket loop). Seeders are separate processes
(``python -m tstream_kit.engine.swarm FILE [--upload-rate N]``); the server is a separate
process (``python -m tstream_kit.cli serve --offline --port 0 --data-dir DIR``). Everything runs on
127.0.0.1, every wait has a timeout, and every process started here is stopped in ``finally``.

Run from the repository root::

    /work/venv/bin/python bench/stream_bench.py             # 120 MB + 400 MB, 5 runs, ~2-3 min
    /work/venv/bin/python bench/stream_bench.py --quick     # small files, 2 runs (the test)

The table goes to stdout; the raw runs and summaries to bench/results/stream_bench-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.baselines import Nginx, http_get_throughput, plain_libtorrent_download  # noqa: E402

MB = 1e6          # throughput in decimal MB/s, like bench.baselines
MiB = 1 << 20     # memory in MiB
SEEK_BYTES = MiB
PIECE_SIZE = 256 * 1024
RESULTS_DIR = ROOT / "bench" / "results"

TARGETS = {
    "first_byte_ms": ("<=", 250.0),
    "seek_ms": ("<=", 100.0),
    "cold_vs_libtorrent": (">=", 0.9),
    "warm_vs_nginx": (">=", 0.5),
}

START_TIMEOUT_S = 60.0      # a seeder hashing a big file, or a server starting
COMPLETE_TIMEOUT_S = 60.0   # a finished download until the server reports it complete
STOP_TIMEOUT_S = 15.0

_SERVING_RE = re.compile(r"tstream serving on (http://[0-9.]+:\d+)")


# ------------------------------------------------------------------------------- processes


def _child_env() -> dict[str, str]:
    """This checkout's code, and no TSTREAM_* settings from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(proc: Optional[subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> Optional[float]:
    """SIGTERM the child we started (by pid), SIGKILL it if it lingers; returns seconds taken."""
    if proc is None or proc.poll() is not None:
        return None
    t0 = time.monotonic()
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)
    return time.monotonic() - t0


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Seeder:
    """``python -m tstream_kit.engine.swarm FILE [--upload-rate N]`` in a child process."""

    def __init__(self, file: Path, log: Path, *, upload_rate: int = 0) -> None:
        self.file = file
        self.upload_rate = upload_rate
        self.log = log
        cmd = [sys.executable, "-m", "tstream_kit.engine.swarm", str(file),
               "--piece-size", str(PIECE_SIZE)]
        if upload_rate:
            cmd += ["--upload-rate", str(int(upload_rate))]
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, cwd=ROOT, env=_child_env())
        self.info: dict[str, Any] = {}

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> "Seeder":
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or not line[0].strip():
            raise RuntimeError(f"seeder of {self.file.name} printed nothing in {timeout:.0f} s "
                               f"(exit {self.proc.poll()}):\n{_tail(self.log)}")
        self.info = json.loads(line[0])
        return self

    @property
    def magnet(self) -> str:
        return self.info["magnet"]

    @property
    def peer(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.info["port"]))

    def stop(self) -> None:
        _stop(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()


class Server:
    """A fresh ``tstream serve --offline --port 0 --data-dir DIR`` process."""

    def __init__(self, data_dir: Path, log: Path, *, timeout: float = START_TIMEOUT_S,
                 prefix: Optional[Sequence[str]] = None) -> None:
        self.data_dir = data_dir
        self.log = log
        prefix = list(prefix or [sys.executable, "-m", "tstream_kit.cli"])
        cmd = prefix + ["serve", "--offline", "--port", "0", "--data-dir", str(data_dir)]
        t0 = time.monotonic()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, cwd=ROOT, env=_child_env())
        self.url = ""
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            m = _SERVING_RE.search(_tail(log, 20000))
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"tstream serve exited with {self.proc.returncode}:\n"
                                   f"{_tail(log)}")
            time.sleep(0.01)
        else:
            _stop(self.proc)
            raise TimeoutError(f"tstream serve did not log its URL in {timeout:.0f} s:\n"
                               f"{_tail(log)}")
        self.start_s = time.monotonic() - t0
        self.stop_s: Optional[float] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stream_url(self, magnet: str) -> str:
        return f"{self.url}/api/stream?magnet={urllib.parse.quote(magnet, safe='')}"

    def api(self, path: str, timeout: float = 10.0) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return json.loads(r.read())

    def torrent(self, infohash: str) -> Optional[dict]:
        for t in self.api("/api/torrents")["torrents"]:
            if t["infohash"] == infohash:
                return t
        return None

    def wait_complete(self, infohash: str, timeout: float = COMPLETE_TIMEOUT_S) -> float:
        """Until every piece is in and the torrent reports finished/seeding (after which the
        server reads from disk). Returns the seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            t = self.torrent(infohash)
            if (t and t.get("num_pieces") and t.get("pieces_have") == t["num_pieces"]
                    and t.get("state") in ("finished", "seeding")):
                time.sleep(0.1)  # torrent_finished -> flush_cache -> cache_flushed
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TimeoutError(f"torrent {infohash} not complete on the server after {timeout:.0f} s: "
                           f"{self.torrent(infohash)}")

    def download_path(self, name: str) -> Path:
        return self.data_dir / "downloads" / name

    def stop(self) -> None:
        self.stop_s = _stop(self.proc)


def process_memory(pid: int) -> dict[str, float]:
    """RSS, USS, PSS (psutil) and anonymous / file-backed RSS and peak RSS (/proc), in MiB."""
    import psutil

    p = psutil.Process(pid)
    out: dict[str, float] = {}
    try:
        full = p.memory_full_info()
        out.update(rss_mib=full.rss / MiB, uss_mib=full.uss / MiB, pss_mib=full.pss / MiB)
    except (psutil.AccessDenied, AttributeError):
        out["rss_mib"] = p.memory_info().rss / MiB
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[{"RssAnon": "anon_mib", "RssFile": "file_mib", "RssShmem": "shmem_mib",
                     "VmHWM": "peak_rss_mib"}[key]] = int(value.split()[0]) * 1024 / MiB
    except OSError:
        pass
    return out


# ------------------------------------------------------------------------------ HTTP pieces


def http_read_prefix(url: str, *, range_header: str, want: int, timeout: float,
                     keep: bool = False) -> dict[str, Any]:
    """GET and read until ``want`` body bytes are in (or the body ends), then close.

    The same socket handling as ``http_get_throughput`` (fresh connection, TCP_NODELAY,
    ``recv_into`` a 1 MiB buffer, timings from before connect), for the two measurements that stop
    early: the first byte of a request that a seeking player abandons, and the 1 MiB after a seek.
    ``keep`` returns the body bytes as ``data`` (to check them against the source file).
    """
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: tstream-bench\r\n"
               f"Accept: */*\r\nAccept-Encoding: identity\r\nRange: {range_header}\r\n"
               "Connection: close\r\n\r\n").encode("latin-1")
    buf = bytearray(MiB)
    view = memoryview(buf)
    body = bytearray()
    t0 = time.perf_counter()
    deadline = t0 + timeout

    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)

        def recv() -> int:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"GET {url} ({range_header}) took longer than {timeout} s")
            sock.settimeout(left)
            try:
                return sock.recv_into(view, MiB)
            except socket.timeout as e:
                raise TimeoutError(f"GET {url} ({range_header}) took longer than {timeout} s") from e

        head = bytearray()
        while True:
            n = recv()
            if n == 0:
                raise ConnectionError(f"connection closed before the headers of {url}")
            head += view[:n]
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                break
        lines = head[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        received = len(head) - end - 4
        first_body = time.perf_counter() - t0 if received else None
        if keep:
            body += head[end + 4:]
        length = int(headers.get("content-length", -1))
        limit = want if length < 0 else min(want, length)
        while received < limit:
            n = recv()
            if n == 0:
                break
            if first_body is None:
                first_body = time.perf_counter() - t0
            if keep:
                body += view[:n]
            received += n
        seconds = time.perf_counter() - t0
    out = {"status": status, "headers": headers, "bytes": received, "complete": received >= limit,
           "first_body_byte_s": first_body, "seconds": seconds}
    if keep:
        out["data"] = bytes(body[:want])
    return out


def data_in_range(path: Path, start: int, end: int) -> Optional[bool]:
    """Does the (sparse, partly downloaded) file hold any written byte in [start, end)?
    ``False`` also when the file does not exist yet; ``None`` if SEEK_DATA is unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            pos = os.lseek(fd, start, os.SEEK_DATA)
        except OSError as e:
            if e.errno == 6:  # ENXIO: no data at or after start
                return False
            return None
        return pos < end
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ measurements


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def _fresh_dir(self, what: str) -> Path:
        self._n += 1
        d = self.workdir / f"{self._n:03d}-{what}"
        d.mkdir()
        return d

    def _server(self, what: str) -> Server:
        d = self._fresh_dir(what)
        prefix = shlex.split(self.args.server_cmd) if self.args.server_cmd else None
        return Server(d / "data", self.logs / f"{d.name}-server.log", prefix=prefix)

    def cold_warm(self, seeder: Seeder, size: int) -> dict[str, Any]:
        """Fresh server: magnet -> first byte -> whole file (cold); then the whole file again."""
        srv = self._server("tstream")
        try:
            url = srv.stream_url(seeder.magnet)
            mem_idle = process_memory(srv.pid)
            cold = http_get_throughput(url, range_header="bytes=0-", timeout=self.args.timeout)
            _check_full(cold, size, "cold")
            mem_cold = process_memory(srv.pid)
            wait_s = srv.wait_complete(seeder.info["infohash"])
            warm = http_get_throughput(url, range_header="bytes=0-", timeout=self.args.timeout)
            _check_full(warm, size, "warm")
            mem_warm = process_memory(srv.pid)
            torrent = srv.torrent(seeder.info["infohash"])
        finally:
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        return {
            "server_start_s": srv.start_s,
            "server_stop_s": srv.stop_s,
            "first_byte_s": cold["first_body_byte_s"],
            "cold_ttfb_s": cold["ttfb_s"],
            "cold_seconds": cold["seconds"],
            "cold_mb_per_s": cold["mb_per_s"],
            "cold_body_mb_per_s": cold["body_mb_per_s"],
            "complete_wait_s": wait_s,
            "warm_seconds": warm["seconds"],
            "warm_mb_per_s": warm["mb_per_s"],
            "warm_first_byte_s": warm["first_body_byte_s"],
            "memory_idle": mem_idle,
            "memory_after_cold": mem_cold,
            "memory_after_warm": mem_warm,
            "torrent": torrent,
        }

    def seek(self, seeder: Seeder, source: Path, size: int) -> dict[str, Any]:
        """Fresh server, rate-limited seeder: first byte at 0, drop it, 1 MiB at an unseen X."""
        srv = self._server("seek")
        try:
            url = srv.stream_url(seeder.magnet)
            first = http_read_prefix(url, range_header="bytes=0-", want=1,
                                     timeout=self.args.timeout)
            if first["status"] != 206 or not first["bytes"]:
                raise RuntimeError(f"seek run: first request answered {first['status']}")
            partial = srv.download_path(seeder.info["name"])
            offset, seen = self._unseen_offset(partial, size)
            r = http_read_prefix(url, range_header=f"bytes={offset}-{offset + SEEK_BYTES - 1}",
                                 want=SEEK_BYTES, timeout=self.args.timeout, keep=True)
            if r["status"] != 206 or r["bytes"] != SEEK_BYTES:
                raise RuntimeError(f"seek to {offset}: status {r['status']}, {r['bytes']} bytes")
            with open(source, "rb") as f:
                f.seek(offset)
                matches = f.read(SEEK_BYTES) == r["data"]
            if not matches:
                raise RuntimeError(f"seek to {offset}: the bytes differ from the source file")
            torrent = srv.torrent(seeder.info["infohash"]) or {}
        finally:
            srv.stop()
            shutil.rmtree(srv.data_dir, ignore_errors=True)
        return {
            "server_start_s": srv.start_s,
            "first_byte_s": first["first_body_byte_s"],
            "offset": offset,
            "offset_fraction": offset / size,
            "unseen": seen is False,
            "unseen_check": {False: "no byte on disk", True: "data on disk",
                             None: "SEEK_DATA unsupported"}[seen],
            "seek_s": r["seconds"],
            "seek_first_byte_s": r["first_body_byte_s"],
            "bytes_match": matches,
            "pieces_have_after_seek": torrent.get("pieces_have"),
            "num_pieces": torrent.get("num_pieces"),
        }

    def _unseen_offset(self, partial: Path, size: int) -> tuple[int, Optional[bool]]:
        """The first offset from ~60 % of the file on (mid-piece, as a player's seek lands) whose
        1 MiB holds no downloaded byte; steps 1 MiB at a time up to 90 %."""
        start = int(size * 0.6) // PIECE_SIZE * PIECE_SIZE + 100_003
        stop = int(size * 0.9)
        off = start
        while off + SEEK_BYTES <= stop:
            seen = data_in_range(partial, off, off + SEEK_BYTES)
            if seen is not True:
                return off, seen
            off += SEEK_BYTES
        return start, True

    def plain_libtorrent(self, seeder: Seeder) -> dict[str, Any]:
        d = self._fresh_dir("libtorrent")
        try:
            return plain_libtorrent_download(seeder.magnet, save_dir=d, peers=[seeder.peer],
                                             timeout=self.args.timeout)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def _check_full(r: dict, size: int, what: str) -> None:
    if r["status"] != 206 or not r["complete"] or r["bytes"] != size:
        raise RuntimeError(f"{what} GET: status {r['status']}, {r['bytes']} of {size} bytes, "
                           f"complete={r['complete']}")


# ------------------------------------------------------------------------------ summarising


def summary(values: Sequence[Optional[float]], scale: float = 1.0) -> dict[str, Any]:
    vals = [v * scale for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    return num / den if num is not None and den else None


def _meets(value: Optional[float], target: Optional[tuple[str, float]]) -> Optional[bool]:
    if value is None or target is None:
        return None
    op, bound = target
    return value <= bound if op == "<=" else value >= bound


def summarise(raw: dict[str, Any], seek_rate: int) -> tuple[dict, dict]:
    figures: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}

    def fig(name: str, unit: str, values: Sequence, scale: float = 1.0, **extra: Any) -> dict:
        figures[name] = {"unit": unit, **summary(values, scale), **extra}
        return figures[name]

    for label in ("small", "big"):
        runs = raw[label]
        tst, lt, ng = runs["tstream"], runs["libtorrent"], runs["nginx"]
        fig(f"{label}.first_byte_ms", "ms", [r["first_byte_s"] for r in tst], 1000)
        fig(f"{label}.cold_mb_s", "MB/s", [r["cold_mb_per_s"] for r in tst])
        fig(f"{label}.cold_body_mb_s", "MB/s", [r["cold_body_mb_per_s"] for r in tst])
        fig(f"{label}.warm_mb_s", "MB/s", [r["warm_mb_per_s"] for r in tst])
        fig(f"{label}.libtorrent_first_piece_ms", "ms",
            [r["seconds_to_first_piece"] for r in lt], 1000)
        fig(f"{label}.libtorrent_mb_s", "MB/s", [r["mb_per_s_total"] for r in lt])
        fig(f"{label}.libtorrent_body_mb_s", "MB/s", [r["mb_per_s_after_first_piece"] for r in lt])
        fig(f"{label}.nginx_mb_s", "MB/s", [r["mb_per_s"] for r in ng])
        for when in ("after_cold", "after_warm"):
            for key in ("rss", "uss", "anon", "peak_rss"):
                vals = [r[f"memory_{when}"].get(f"{key}_mib") for r in tst]
                if any(v is not None for v in vals):
                    fig(f"{label}.{key}_{when}_mib", "MiB", vals)

        def med(name: str) -> Optional[float]:
            return figures[f"{label}.{name}"]["median"]

        ratios[f"{label}.cold_vs_libtorrent"] = {
            "value": _ratio(med("cold_body_mb_s"), med("libtorrent_body_mb_s")),
            "of": f"{label}.cold_body_mb_s / {label}.libtorrent_body_mb_s",
            "target": TARGETS["cold_vs_libtorrent"]}
        ratios[f"{label}.cold_total_vs_libtorrent"] = {
            "value": _ratio(med("cold_mb_s"), med("libtorrent_mb_s")),
            "of": f"{label}.cold_mb_s / {label}.libtorrent_mb_s", "target": None}
        ratios[f"{label}.warm_vs_nginx"] = {
            "value": _ratio(med("warm_mb_s"), med("nginx_mb_s")),
            "of": f"{label}.warm_mb_s / {label}.nginx_mb_s", "target": TARGETS["warm_vs_nginx"]}
        ratios[f"{label}.first_byte_vs_libtorrent"] = {
            "value": _ratio(med("first_byte_ms"), med("libtorrent_first_piece_ms")),
            "of": f"{label}.first_byte_ms / {label}.libtorrent_first_piece_ms", "target": None}

    for kind, rate in (("limited", seek_rate), ("unlimited", 0)):
        seek = raw[f"seek_{kind}"]
        fig(f"seek_{kind}.seek_ms", "ms", [r["seek_s"] for r in seek], 1000,
            unseen_runs=sum(1 for r in seek if r["unseen"]), upload_rate=rate,
            bandwidth_floor_ms=SEEK_BYTES / rate * 1000 if rate else 0.0)
        fig(f"seek_{kind}.seek_first_byte_ms", "ms", [r["seek_first_byte_s"] for r in seek], 1000)
        fig(f"seek_{kind}.first_byte_ms", "ms", [r["first_byte_s"] for r in seek], 1000)

    for key in ("rss", "uss", "anon", "peak_rss"):
        for when in ("after_cold", "after_warm"):
            s, b = figures.get(f"small.{key}_{when}_mib"), figures.get(f"big.{key}_{when}_mib")
            if s and b:
                ratios[f"memory.{key}_{when}_big_vs_small"] = {
                    "value": _ratio(b["median"], s["median"]),
                    "of": f"big.{key}_{when}_mib / small.{key}_{when}_mib", "target": None}
    for name, r in ratios.items():
        r["meets_target"] = _meets(r["value"], r["target"])
    for name, target_key in (("small.first_byte_ms", "first_byte_ms"),
                             ("seek_limited.seek_ms", "seek_ms"),
                             ("seek_unlimited.seek_ms", "seek_ms")):
        figures[name]["target"] = TARGETS[target_key]
        figures[name]["meets_target"] = _meets(figures[name]["median"], TARGETS[target_key])
    return figures, ratios


def _fmt(v: Optional[float], digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def render_table(result: dict[str, Any]) -> str:
    f, r = result["figures"], result["ratios"]
    files = result["files"]
    rows: list[tuple[str, ...]] = []

    def row(label: str, name: str, ref: str = "", ratio: str = "", target: str = "",
            ok: Optional[bool] = None) -> None:
        s = f[name]
        ref_txt = _fmt(f[ref]["median"]) if ref else ""
        ok_txt = "" if ok is None else ("yes" if ok else "NO")
        rows.append((label, f"{_fmt(s['median'])} {s['unit']}", _fmt(s["min"]), _fmt(s["max"]),
                     ref_txt, _fmt(r[ratio]["value"], 2) + "x" if ratio else "", target, ok_txt))

    def tgt(t: Optional[tuple[str, float]], unit: str = "") -> str:
        return f"{t[0]} {t[1]:g}{unit}" if t else ""

    sm, bg = files["small"]["mb"], files["big"]["mb"]
    row(f"first byte, {sm:.0f} MB (vs lt first piece)", "small.first_byte_ms",
        "small.libtorrent_first_piece_ms", "small.first_byte_vs_libtorrent",
        tgt(TARGETS["first_byte_ms"], " ms"), f["small.first_byte_ms"]["meets_target"])
    seek = f["seek_limited.seek_ms"]
    free = f["seek_unlimited.seek_ms"]
    row(f"seek 1 MiB @60%, seeder {seek['upload_rate'] / MB:g} MB/s "
        f"({seek['unseen_runs']}/{seek['n']} unseen)", "seek_limited.seek_ms",
        target=tgt(TARGETS["seek_ms"], " ms"), ok=seek["meets_target"])
    row(f"seek 1 MiB @60%, seeder unlimited ({free['unseen_runs']}/{free['n']} unseen)",
        "seek_unlimited.seek_ms", target=tgt(TARGETS["seek_ms"], " ms"), ok=free["meets_target"])
    for label, mb in (("small", sm), ("big", bg)):
        row(f"cold {mb:.0f} MB, steady (vs lt after 1st piece)", f"{label}.cold_body_mb_s",
            f"{label}.libtorrent_body_mb_s", f"{label}.cold_vs_libtorrent",
            tgt(TARGETS["cold_vs_libtorrent"], "x"), r[f"{label}.cold_vs_libtorrent"]["meets_target"])
        row(f"cold {mb:.0f} MB, from magnet (vs lt total)", f"{label}.cold_mb_s",
            f"{label}.libtorrent_mb_s", f"{label}.cold_total_vs_libtorrent")
        row(f"warm {mb:.0f} MB (vs nginx)", f"{label}.warm_mb_s", f"{label}.nginx_mb_s",
            f"{label}.warm_vs_nginx", tgt(TARGETS["warm_vs_nginx"], "x"),
            r[f"{label}.warm_vs_nginx"]["meets_target"])
    for key, what, whens in (("rss", "RSS", ("after_cold", "after_warm")),
                             ("uss", "USS", ("after_cold", "after_warm")),
                             ("peak_rss", "peak RSS", ("after_warm",))):
        for when in whens:
            if f"small.{key}_{when}_mib" not in f:
                continue
            row(f"{what} {when.replace('_', ' ')}, {sm:.0f} MB", f"small.{key}_{when}_mib")
            row(f"{what} {when.replace('_', ' ')}, {bg:.0f} MB (vs {sm:.0f} MB)",
                f"big.{key}_{when}_mib", f"small.{key}_{when}_mib",
                f"memory.{key}_{when}_big_vs_small")

    header = ("figure", "median", "min", "max", "baseline", "ratio", "target", "met")
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                     enumerate(zip(header, widths))), line]
    for x in rows:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(x, widths))))
    notes = [
        f"runs={result['config']['runs']}; files: {sm:.0f} MB ({files['small']['bytes']:,} B) and "
        f"{bg:.0f} MB ({files['big']['bytes']:,} B), {PIECE_SIZE // 1024} KiB pieces, TCP on 127.0.0.1.",
        f"seek: after the first byte at 0 (request then dropped); with the seeder limited to "
        f"{seek['upload_rate'] / MB:g} MB/s the 1 MiB alone takes >= "
        f"{seek['bandwidth_floor_ms']:.0f} ms; 'unseen' = no byte of the 1 MiB on the server's "
        "disk at request time (SEEK_DATA).",
        "lt = fresh default libtorrent session (bench.baselines, TCP) on the same seeder; "
        "nginx serves the same file from page cache. Memory in MiB of the server process.",
    ]
    return "\n".join(out + [""] + notes)


# ------------------------------------------------------------------------------------- main


def _make_file(mb: float) -> Path:
    from tstream_kit.mediagen import make_mp4_of_size
    return make_mp4_of_size(min_bytes=int(mb * MB))


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.time()
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="tstream-stream-bench-"))
    seeders: list[Seeder] = []
    try:
        log(f"generating media ({args.mb:g} MB and {args.big_mb:g} MB H.264 MP4s, cached)...")
        sources = {"small": _make_file(args.mb), "big": _make_file(args.big_mb)}
        sizes = {k: p.stat().st_size for k, p in sources.items()}
        www = workdir / "www"
        www.mkdir()
        for label, p in sources.items():
            try:
                os.link(p, www / f"{label}.mp4")
            except OSError:
                shutil.copyfile(p, www / f"{label}.mp4")

        log("starting seeders...")
        seed = {"small": Seeder(sources["small"], workdir / "logs-seed-small.log"),
                "big": Seeder(sources["big"], workdir / "logs-seed-big.log"),
                "seek": Seeder(sources["small"], workdir / "logs-seed-seek.log",
                               upload_rate=args.seek_rate)}
        seeders.extend(seed.values())
        for s in seeders:
            s.wait_ready()
        bench = Bench(args, workdir)
        raw: dict[str, Any] = {}

        with Nginx(www) as ng:
            for label in ("small", "big"):
                if args.only == "seek":
                    continue
                nginx_url = ng.url_for(f"{label}.mp4")
                http_get_throughput(nginx_url, timeout=args.timeout)  # page cache, first connect
                runs: dict[str, list] = {"tstream": [], "libtorrent": [], "nginx": []}
                for i in range(args.runs):
                    t = bench.cold_warm(seed[label], sizes[label])
                    lt = bench.plain_libtorrent(seed[label])
                    n = http_get_throughput(nginx_url, timeout=args.timeout)
                    if n["status"] != 200 or n["bytes"] != sizes[label]:
                        raise RuntimeError(f"nginx: status {n['status']}, {n['bytes']} bytes")
                    n.pop("headers", None)
                    runs["tstream"].append(t)
                    runs["libtorrent"].append(lt)
                    runs["nginx"].append(n)
                    log(f"  {label} run {i + 1}/{args.runs}: first byte "
                        f"{t['first_byte_s'] * 1000:.0f} ms, cold {t['cold_mb_per_s']:.0f} MB/s "
                        f"(lt {lt['mb_per_s_total']:.0f}), warm {t['warm_mb_per_s']:.0f} MB/s "
                        f"(nginx {n['mb_per_s']:.0f}), RSS "
                        f"{t['memory_after_cold']['rss_mib']:.0f}/"
                        f"{t['memory_after_warm']['rss_mib']:.0f} MiB")
                raw[label] = runs

        for kind, seeder in (("seek_limited", seed["seek"]), ("seek_unlimited", seed["small"])):
            if args.only == "throughput":
                break
            # The first client of a rate-limited seeder waits ~1 s longer than the next ones
            # (libtorrent's bandwidth manager starting up): one untimed run absorbs that.
            raw[f"{kind}_warmup"] = bench.seek(seeder, sources["small"], sizes["small"])
            raw[kind] = []
            for i in range(args.runs):
                s = bench.seek(seeder, sources["small"], sizes["small"])
                raw[kind].append(s)
                log(f"  {kind} run {i + 1}/{args.runs}: 1 MiB at {s['offset_fraction']:.0%} in "
                    f"{s['seek_s'] * 1000:.0f} ms ({s['unseen_check']}; first byte "
                    f"{s['first_byte_s'] * 1000:.0f} ms, {s['pieces_have_after_seek']}/"
                    f"{s['num_pieces']} pieces in after the seek)")
    finally:
        for s in seeders:
            s.stop()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    if args.only:
        return {"duration_s": time.monotonic() - t_start, "only": args.only, "runs": raw}
    figures, ratios = summarise(raw, args.seek_rate)
    lt_version = raw["small"]["libtorrent"][0].get("libtorrent")
    import tornado
    return {
        "schema": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": time.monotonic() - t_start,
        "config": {"mb": args.mb, "big_mb": args.big_mb, "runs": args.runs, "quick": args.quick,
                   "seek_rate": args.seek_rate, "seek_bytes": SEEK_BYTES,
                   "piece_size": PIECE_SIZE, "timeout": args.timeout},
        "env": {"python": platform.python_version(), "libtorrent": lt_version,
                "tornado": tornado.version, "cpus": os.cpu_count(),
                "platform": platform.platform()},
        "files": {k: {"path": str(sources[k]), "bytes": sizes[k], "mb": sizes[k] / MB,
                      "pieces": -(-sizes[k] // PIECE_SIZE)} for k in sources},
        "targets": {k: list(v) for k, v in TARGETS.items()},
        "figures": figures,
        "ratios": ratios,
        "runs": raw,
    }


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/stream_bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=120,
                    help="size of the main file in MB (>= 100 for the issue's figures)")
    ap.add_argument("--big-mb", type=float, default=400,
                    help="size of the second file (memory vs file size)")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    ap.add_argument("--seek-rate", type=int, default=32_000_000,
                    help="upload limit of the seek run's seeder, bytes/s (default 32 MB/s)")
    ap.add_argument("--quick", action="store_true",
                    help="20 MB and 60 MB files, 2 runs, 8 MB/s seek seeder (for the test)")
    ap.add_argument("--timeout", type=float, default=120.0, help="limit of each transfer, s")
    ap.add_argument("--json", type=Path, help="write the JSON here instead of bench/results/")
    ap.add_argument("--server-cmd",
                    help="command that stands for `tstream` (default: this Python -m "
                         "tstream_kit.cli); the bench appends `serve --offline --port 0 "
                         "--data-dir DIR`. For experiments: memory is measured on its pid")
    ap.add_argument("--only", choices=("seek", "throughput"),
                    help="run one part only (prints the raw runs, no table)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep logs and temp files")
    args = ap.parse_args(argv)
    if args.quick:
        args.mb, args.big_mb, args.runs, args.seek_rate = 20, 60, 2, 8_000_000
    if args.seek_rate <= 0:
        ap.error("--seek-rate must be > 0 (the unlimited seek is measured as well)")
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run(args, log)
    if args.only:
        print(json.dumps(result, indent=2, default=str))
        return 0
    out = args.json
    if out is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"stream_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(render_table(result))
    print(f"\nJSON: {out}  ({result['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
