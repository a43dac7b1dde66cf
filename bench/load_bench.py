"""Load benchmark (issue 9, item 3): many streams at once, many cached searches at once, and a soak.

Three parts, each against a real ``tstream serve`` process (``bench.stream_bench.Server``: a fresh
data dir, ``--offline``, port 0), everything on 127.0.0.1::

    streams    ``--streams`` (50) concurrent ``Range: bytes=a-b`` requests at as many different
               offsets (k/N of the file; each reads its 1/N slice, so together the whole file
               once, or ``--read-mib`` MiB each) of a real H.264 MP4 (``--mb`` 120 MB,
               tstream_kit.mediagen, cached) seeded by a loopback LocalSwarm
               (``python -m tstream_kit.engine.swarm``). Cold: a fresh server and torrent; warm:
               the same server once the torrent is complete. Every range's sha256 is checked
               against the source file. Aggregate MB/s (all bytes / first connect to last byte),
               time to first body byte p50/p99/max, server RSS/USS before and after, peak RSS
               (VmHWM), errors. Baselines in the same run: nginx serving the same 50 ranges
               from the same file (``bench.baselines.Nginx``), and a plain default libtorrent
               session downloading the torrent from the same seeder
               (``bench.baselines.plain_libtorrent_download``).
    searches   ``--searches`` (200) concurrent ``GET /api/search`` against a server whose
               providers (catalogue, Nyaa, apibay, Torznab) are the local fake indexers of
               bench/search_bench.py (in a child process), with the in-process cache and with
               Redis (a unique key prefix, deleted at the end and counted). Uncached (every
               query new) then cached (queries answered before), ``--search-rounds`` bursts each:
               p50/p99/max latency, searches/s, errors, cached-vs-uncached ratios.
    soak       ``--minutes`` (10) of mixed work against one server: streams opened at random
               offsets and dropped early, seeks (1 MiB), complete range reads and whole-file
               reads (bytes checked), cached and new searches, history writes (POST
               /api/history, GET /api/history and /api/resume, and a watch per stream), API
               reads, and torrents that come and go (a churn worker streams small torrents
               from magnets, cold, and removes them with DELETE /api/torrent, once while a
               stream is open). Every ``--sample-s`` (10 s): RSS, USS, open fds
               (/proc/PID/fd), threads, torrents and libtorrent handles (/api/health), active
               streams. After ``--warmup-s`` the workers pause, the server is let go quiet and
               measured; the same at the end. Verdict: RSS does not grow (median of the first
               ``--window-s`` after warm-up against the last, tolerance ``--rss-tolerance-pct``
               or ``--rss-tolerance-mib``, whichever is larger), fds and torrent handles at rest
               do not grow (``--fd-tolerance``), no request failed, no 5xx.

The server runs with ``TSTREAM_RATE_LIMIT=0`` (one client here stands for many viewers; the
per-client limit would answer 429) and ``TSTREAM_MAX_STREAMS`` at least twice ``--streams``.

Run from the repository root::

    /work/venv/bin/python bench/load_bench.py                    # all three (~15 min)
    /work/venv/bin/python bench/load_bench.py --only streams     # or searches, soak (repeatable)
    /work/venv/bin/python bench/load_bench.py --quick            # what the test runs (< 1 min)

A table goes to stdout, the raw JSON to bench/results/load_bench-<time>.json (gitignored). Exit
status 1 if a byte was wrong, a request failed, or a soak verdict is "grows".
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.baselines import Nginx, http_get_throughput, plain_libtorrent_download  # noqa: E402
from bench.search_bench import FakeIndexerProcess, pct  # noqa: E402
from bench.stream_bench import Seeder, Server, http_read_prefix, process_memory  # noqa: E402

MB = 1e6          # throughput in decimal MB/s, like the other benchmarks
MiB = 1 << 20     # memory in MiB
RESULTS_DIR = ROOT / "bench" / "results"
REDIS_URL = os.environ.get("TSTREAM_BENCH_REDIS", "redis://127.0.0.1:6379/0")
MACHINE_NOTE = ("shared machine: other engineers ran tests and benchmarks at the same time, so "
                "absolute figures are lower and noisier than on an idle machine")
# The churn worker's torrents: small real MP4s with different noise seeds (so different infohashes).
CHURN_SEEDS = (101, 102, 103)

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: no proxy


# ------------------------------------------------------------------------------------ helpers


def server_env(streams: int = 0, **extra: str) -> dict[str, str]:
    env = {"TSTREAM_RATE_LIMIT": "0", "TSTREAM_MAX_STREAMS": str(max(64, 2 * streams))}
    env.update(extra)
    return env


def start_server(work: Path, name: str, env: dict[str, str]) -> Server:
    """``bench.stream_bench.Server`` (a fresh ``tstream serve --offline --port 0``) with ``env``
    added to its environment (through ``env(1)``, so the pid is still the server's)."""
    d = work / name
    d.mkdir(parents=True)
    prefix = ["env", *(f"{k}={v}" for k, v in sorted(env.items())), sys.executable, "-m",
              "tstream_kit.cli"]
    return Server(d / "data", work / f"{name}-server.log", prefix=prefix)


def stop_server(srv: Server) -> dict[str, Any]:
    """Stop the server (SIGTERM, by pid) and read its log: a clean exit, no 5xx and nothing
    logged as an error are part of every verdict (``server_failures``)."""
    alive = srv.proc.poll() is None
    srv.stop()
    out = {"alive_at_end": alive, "stop_s": srv.stop_s, "exit_code": srv.proc.returncode,
           **scan_log(srv.log)}
    shutil.rmtree(srv.data_dir.parent, ignore_errors=True)
    return out


def server_failures(what: str, s: dict[str, Any]) -> list[str]:
    out = []
    if not s["alive_at_end"]:
        out.append(f"{what}: the server died (exit {s['exit_code']})")
    if s["exit_code"] not in (0, None):
        out.append(f"{what}: the server exited with {s['exit_code']} after SIGTERM")
    if s["http_5xx"]:
        out.append(f"{what}: {s['http_5xx']} responses were 5xx")
    if s["error_lines"] or s["tracebacks"]:
        out.append(f"{what}: the server logged {s['error_lines']} errors and {s['tracebacks']} "
                   f"tracebacks, e.g. {s['error_examples'][:2]}")
    return out


_STATUS_RE = re.compile(r" tstream\.http: (\d{3}) ")


def scan_log(path: Path) -> dict[str, Any]:
    """Response statuses, ERROR lines and tracebacks in a server's (text) log."""
    statuses: dict[str, int] = {}
    errors: list[str] = []
    tracebacks = 0
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = _STATUS_RE.search(line)
                if m:
                    statuses[m.group(1)] = statuses.get(m.group(1), 0) + 1
                if " ERROR " in line or " CRITICAL " in line:
                    errors.append(line.strip()[:300])
                if line.startswith("Traceback"):
                    tracebacks += 1
    except OSError:
        pass
    return {"statuses": dict(sorted(statuses.items())),
            "http_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
            "error_lines": len(errors), "error_examples": errors[:5], "tracebacks": tracebacks}


def proc_stats(pid: int) -> dict[str, float]:
    """process_memory (RSS, USS, PSS, anonymous, peak RSS in MiB) plus open fds and threads."""
    out: dict[str, Any] = dict(process_memory(pid))
    try:
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        out["fds"] = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    except OSError:
        out["threads"] = None
    return out


def _socket_peers(pid: int) -> dict[str, tuple[int, int, str]]:
    """socket inode -> (local port, remote port, TCP state) from /proc/PID/net/tcp{,6}."""
    states = {"01": "established", "0A": "listen", "06": "time_wait", "08": "close_wait"}
    out: dict[str, tuple[int, int, str]] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote, st, inode = f[1], f[2], f[3], f[9]
            out[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16),
                          states.get(st, st))
    return out


def fd_targets(pid: int, ports: Optional[dict[int, str]] = None) -> dict[str, int]:
    """What the open fds point at, counted: files by path, pipes, eventpolls, and TCP sockets by
    what is at the other end (``ports``: remote port -> name, e.g. 6379 -> "redis"; "listen"
    for listening sockets, "incoming" for clients of the server's own port)."""
    ports = ports or {}
    peers = _socket_peers(pid)
    out: dict[str, int] = {}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]$", target)
        if m:
            local, remote, state = peers.get(m.group(1), (0, 0, "unix/udp"))
            if state == "listen":
                kind = "socket:listen"
            elif state == "unix/udp":
                kind = "socket:unix-or-udp"
            else:
                who = ports.get(remote) or ("incoming" if ports.get(local) == "http" else "other")
                kind = f"socket:{who}:{state}"
        else:
            kind = re.sub(r":\[\d+\]$", "", target)     # pipe:[123] -> pipe
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))


def pool_bounds() -> dict[str, int]:
    """fd kinds (``fd_targets``) of connection pools -> the most connections the server keeps."""
    import inspect

    from tstream_kit.store.cache import MAX_CONNECTIONS
    from tstream_kit.store.history.postgres import PostgresHistory
    pg = inspect.signature(PostgresHistory.__init__).parameters["max_size"].default
    return {"socket:redis:established": MAX_CONNECTIONS, "socket:postgres:established": pg}


def api(base: str, method: str, path: str, body: Any = None, headers: Optional[dict] = None,
        timeout: float = 30.0) -> tuple[int, Any]:
    """(status, decoded JSON or None) of one API call; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with _opener.open(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def dist(values: Sequence[float]) -> dict[str, Any]:
    """p50/p99/max/mean of a list (nearest rank, as bench/search_bench.py's ``pct``)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {"n": len(vals), "p50": pct(vals, 50), "p99": pct(vals, 99), "max": max(vals),
            "mean": statistics.fmean(vals)}


def median_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def sha256_of(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            block = f.read(min(left, 8 * MiB))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def make_mp4(mb: float, seed: Optional[int] = None) -> Path:
    from tstream_kit.mediagen import make_mp4_of_size
    return make_mp4_of_size(min_bytes=int(mb * MB), seed=seed)


def wait_idle(srv: Server, timeout: float = 30.0, settle: float = 2.0) -> dict[str, Any]:
    """Until the server reports no active stream, then ``settle`` seconds more (connections
    closing, the history outbox flushing); returns /api/health."""
    deadline = time.monotonic() + timeout
    health: Any = None
    while time.monotonic() < deadline:
        status, health = api(srv.url, "GET", "/api/health")
        if status == 200 and health.get("streams") == 0:
            break
        time.sleep(0.2)
    time.sleep(settle)
    return api(srv.url, "GET", "/api/health")[1]


# ------------------------------------------------------------------------- part 1: streams


def plan_ranges(size: int, n: int, read_mib: float) -> list[tuple[int, int]]:
    """(offset, length) of N ranges at offsets k/N of the file: each its 1/N slice, or
    ``read_mib`` MiB (cut at the end of the file)."""
    offsets = [size * k // n for k in range(n)]
    if read_mib <= 0:
        return [(o, (offsets[k + 1] if k + 1 < n else size) - o) for k, o in enumerate(offsets)]
    want = int(read_mib * MiB)
    return [(o, min(want, size - o)) for o in offsets]


def concurrent_ranges(url: str, ranges: Sequence[tuple[int, int]], expected: Sequence[str],
                      timeout: float) -> dict[str, Any]:
    """All ranges at once (one thread and one connection each, released by a barrier), every
    body hashed as it arrives (``http_get_throughput(body_sink=...)``) and compared with
    ``expected``. Aggregate = all bytes / (last byte - first connect)."""
    n = len(ranges)
    recs: list[dict[str, Any]] = [{} for _ in range(n)]
    gate = threading.Barrier(n, timeout=60)

    def one(k: int) -> None:
        start, length = ranges[k]
        rec = recs[k]
        rec.update(offset=start, length=length)
        h = hashlib.sha256()
        try:
            gate.wait()
            rec["t_start"] = time.perf_counter()
            r = http_get_throughput(url, range_header=f"bytes={start}-{start + length - 1}",
                                    timeout=timeout, body_sink=h.update)
            rec["t_end"] = time.perf_counter()
            rec.update(status=r["status"], bytes=r["bytes"], complete=r["complete"],
                       seconds=r["seconds"], headers_ms=r["ttfb_s"] * 1000,
                       ttfb_ms=(r["first_body_byte_s"] * 1000
                                if r["first_body_byte_s"] is not None else None))
            rec["bytes_ok"] = r["bytes"] == length and h.hexdigest() == expected[k]
            if r["status"] != 206 or r["bytes"] != length:
                rec["error"] = f"status {r['status']}, {r['bytes']} of {length} bytes"
            elif not rec["bytes_ok"]:
                rec["error"] = "wrong bytes (sha256 differs from the source file)"
        except BaseException as e:  # noqa: BLE001 - reported per stream
            rec["error"] = f"{type(e).__name__}: {e}"
            rec.setdefault("t_end", time.perf_counter())

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 60)
    for k, t in enumerate(threads):
        if t.is_alive():
            recs[k]["error"] = recs[k].get("error") or "client thread still running (hang)"
    started = [r["t_start"] for r in recs if "t_start" in r]
    ended = [r["t_end"] for r in recs if "t_end" in r]
    wall = max(ended) - min(started) if started and ended else None
    total = sum(r.get("bytes", 0) for r in recs)
    for r in recs:   # relative times, for the JSON
        t0 = min(started) if started else 0.0
        for key in ("t_start", "t_end"):
            if key in r:
                r[key] = round(r[key] - t0, 6)
    return {
        "streams": n, "wall_s": wall, "bytes": total,
        "aggregate_mb_per_s": total / MB / wall if wall else None,
        "ttfb_ms": dist([r.get("ttfb_ms") for r in recs]),
        "errors": sum(1 for r in recs if r.get("error")),
        "wrong_bytes": sum(1 for r in recs if r.get("bytes") == r["length"] and r.get("bytes_ok") is False),
        "bytes_checked": sum(1 for r in recs if r.get("bytes_ok")),
        "error_examples": [r["error"] for r in recs if r.get("error")][:5],
        "per_stream": recs,
    }


def part_streams(args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    t_part = time.monotonic()
    log(f"streams: {args.mb:g} MB H.264 MP4 (mediagen, cached)...")
    source = make_mp4(args.mb)
    size = source.stat().st_size
    ranges = plan_ranges(size, args.streams, args.read_mib)
    expected = [sha256_of(source, o, n) for o, n in ranges]
    www = work / "www"
    www.mkdir()
    try:
        os.link(source, www / "movie.mp4")
    except OSError:
        shutil.copyfile(source, www / "movie.mp4")
    seeder = Seeder(source, work / "seed-streams.log").wait_ready()
    runs: list[dict[str, Any]] = []
    try:
        with Nginx(www) as ng:
            nginx_url = ng.url_for("movie.mp4")
            http_get_throughput(nginx_url, timeout=args.timeout)   # page cache, first connect
            for i in range(args.runs):
                srv = start_server(work, f"streams-{i}", server_env(args.streams))
                try:
                    url = srv.stream_url(seeder.magnet)
                    mem_idle = proc_stats(srv.pid)
                    cold = concurrent_ranges(url, ranges, expected, args.timeout)
                    mem_cold = proc_stats(srv.pid)
                    complete_wait_s = srv.wait_complete(seeder.info["infohash"])
                    warm = concurrent_ranges(url, ranges, expected, args.timeout)
                    mem_warm = proc_stats(srv.pid)
                    health = wait_idle(srv, settle=0.5)
                    mem_rest = proc_stats(srv.pid)
                finally:
                    server = stop_server(srv)
                nginx = concurrent_ranges(nginx_url, ranges, expected, args.timeout)
                lt_dir = work / f"libtorrent-{i}"
                try:
                    lt = plain_libtorrent_download(seeder.magnet, save_dir=lt_dir,
                                                   peers=[seeder.peer], timeout=args.timeout)
                finally:
                    shutil.rmtree(lt_dir, ignore_errors=True)
                runs.append({"cold": cold, "warm": warm, "nginx": nginx, "libtorrent": lt,
                             "complete_wait_s": complete_wait_s, "health_after": health,
                             "memory": {"idle": mem_idle, "after_cold": mem_cold,
                                        "after_warm": mem_warm, "at_rest": mem_rest},
                             "server": server})
                log(f"  run {i + 1}/{args.runs}: cold {_f(cold['aggregate_mb_per_s'])} MB/s "
                    f"(TTFB p99 {_f(cold['ttfb_ms']['p99'])} ms), warm "
                    f"{_f(warm['aggregate_mb_per_s'])} MB/s (p99 {_f(warm['ttfb_ms']['p99'])} ms), "
                    f"nginx {_f(nginx['aggregate_mb_per_s'])} MB/s, libtorrent "
                    f"{_f(lt['mb_per_s_total'])} MB/s; RSS {mem_idle['rss_mib']:.0f} -> "
                    f"{mem_cold['rss_mib']:.0f} -> {mem_warm['rss_mib']:.0f} MiB, peak "
                    f"{mem_warm.get('peak_rss_mib', 0):.0f}; errors {cold['errors']}+{warm['errors']}")
    finally:
        seeder.stop()

    def pooled(kind: str) -> dict[str, Any]:
        return dist([s.get("ttfb_ms") for r in runs for s in r[kind]["per_stream"]])

    def med(kind: str, key: str = "aggregate_mb_per_s") -> Optional[float]:
        return median_or_none([r[kind][key] for r in runs])

    lt_mb_s = median_or_none([r["libtorrent"]["mb_per_s_total"] for r in runs])
    figures = {
        "cold_mb_s": med("cold"), "warm_mb_s": med("warm"), "nginx_mb_s": med("nginx"),
        "libtorrent_mb_s": lt_mb_s,
        "cold_ttfb_ms": pooled("cold"), "warm_ttfb_ms": pooled("warm"),
        "nginx_ttfb_ms": pooled("nginx"),
        "rss_idle_mib": median_or_none([r["memory"]["idle"]["rss_mib"] for r in runs]),
        "rss_after_cold_mib": median_or_none([r["memory"]["after_cold"]["rss_mib"] for r in runs]),
        "rss_after_warm_mib": median_or_none([r["memory"]["after_warm"]["rss_mib"] for r in runs]),
        "uss_after_warm_mib": median_or_none([r["memory"]["after_warm"].get("uss_mib") for r in runs]),
        "peak_rss_mib": max((r["memory"]["after_warm"].get("peak_rss_mib") or 0) for r in runs),
        "fds_after_warm": median_or_none([r["memory"]["after_warm"]["fds"] for r in runs]),
        "fds_at_rest": median_or_none([r["memory"]["at_rest"]["fds"] for r in runs]),
    }
    ratios = {
        "cold_vs_libtorrent": _ratio(figures["cold_mb_s"], lt_mb_s),
        "warm_vs_nginx": _ratio(figures["warm_mb_s"], figures["nginx_mb_s"]),
        "warm_ttfb_p99_vs_nginx": _ratio(figures["warm_ttfb_ms"]["p99"], figures["nginx_ttfb_ms"]["p99"]),
    }
    errors = sum(r[k]["errors"] for r in runs for k in ("cold", "warm"))
    wrong = sum(r[k]["wrong_bytes"] for r in runs for k in ("cold", "warm", "nginx"))
    checked = sum(r[k]["bytes_checked"] for r in runs for k in ("cold", "warm"))
    failures = []
    if wrong:
        failures.append(f"streams: {wrong} ranges with wrong bytes")
    if errors:
        failures.append(f"streams: {errors} failed ranges: "
                        + "; ".join(e for r in runs for k in ("cold", "warm")
                                    for e in r[k]["error_examples"])[:500])
    for r in runs:
        failures += server_failures("streams", r["server"])
    if any(r["nginx"]["errors"] for r in runs):
        failures.append("streams: the nginx baseline failed: "
                        + "; ".join(e for r in runs for e in r["nginx"]["error_examples"])[:300])
    return {
        "file": {"path": str(source), "bytes": size, "mb": size / MB, "kind": "H.264/AAC MP4 "
                 "(tstream_kit.mediagen, 40 Mbit/s noise pattern)", "piece_size": 256 * 1024},
        "ranges": [{"offset": o, "length": n} for o, n in ranges],
        "read": "1/N slice each (the whole file once)" if args.read_mib <= 0 else f"{args.read_mib:g} MiB each",
        "figures": figures, "ratios": ratios, "errors": errors, "wrong_bytes": wrong,
        "ranges_checked": checked, "bytes_ok": wrong == 0 and errors == 0,
        "failures": failures, "runs": runs, "duration_s": time.monotonic() - t_part,
    }


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def _f(x: Optional[float], fmt: str = ".0f") -> str:
    return "-" if x is None else format(x, fmt)


# ------------------------------------------------------------------------ part 2: searches


async def aget(host: str, port: int, target: str, timeout: float) -> tuple[int, bytes]:
    """One GET on a fresh connection (``Connection: close``): (status, body)."""
    async def go() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: tstream-bench\r\n"
                         "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode("latin-1"))
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()

    data = await asyncio.wait_for(go(), timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    if any(ln.lower().startswith("transfer-encoding:") and "chunked" in ln.lower() for ln in lines):
        out, rest = bytearray(), body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if not size:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        body = bytes(out)
    return status, body


def check_search(cached: bool) -> Callable[[int, bytes], Optional[str]]:
    def check(status: int, body: bytes) -> Optional[str]:
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        ans = json.loads(body)
        bad = {n: p.get("status") for n, p in ans["providers"].items() if p.get("status") != "ok"}
        if bad:
            return f"providers not ok: {bad}"
        if cached:
            missed = [n for n, p in ans["providers"].items() if n != "catalog" and not p.get("cached")]
            if missed:
                return f"not from the cache: {missed}"
        if not ans.get("count"):
            return "no results"
        return None
    return check


async def burst(base: str, targets: Sequence[str], check: Callable[[int, bytes], Optional[str]],
                timeout: float) -> dict[str, Any]:
    """All requests at once (one connection each): latency from before connect to the last byte."""
    parts = urllib.parse.urlsplit(base)

    async def one(target: str) -> tuple[float, Optional[str]]:
        t0 = time.perf_counter()
        try:
            status, body = await aget(parts.hostname, parts.port, target, timeout)
            err = check(status, body)
        except Exception as e:  # noqa: BLE001 - counted
            err = f"{type(e).__name__}: {e}"
        return (time.perf_counter() - t0) * 1000, err

    t0 = time.perf_counter()
    done = await asyncio.gather(*(one(t) for t in targets))
    wall = time.perf_counter() - t0
    errors = [e for _, e in done if e]
    return {"n": len(targets), "wall_s": wall, "per_s": len(targets) / wall,
            "latency_ms": [ms for ms, _ in done], "errors": len(errors), "error_examples": errors[:5]}


def _search_target(q: str) -> str:
    return "/api/search?" + urllib.parse.urlencode({"query": q})


async def _prime(base: str, queries: Sequence[str], timeout: float) -> None:
    """Search each query until every provider but the catalogue answers from the cache (the
    cache is written in the background after the answer)."""
    parts = urllib.parse.urlsplit(base)
    for q in queries:
        deadline = time.monotonic() + 15
        while True:
            status, body = await aget(parts.hostname, parts.port, _search_target(q), timeout)
            if check_search(True)(status, body) is None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"query {q!r} is still not cached: {body[:300]!r}")
            await asyncio.sleep(0.05)


async def search_load(srv: Server, label: str, args: argparse.Namespace,
                      log: Callable[[str], None]) -> dict[str, Any]:
    n, rounds = args.searches, args.search_rounds
    mem_start = proc_stats(srv.pid)
    for i in range(5):   # warm-up: connections, parsers, the provider clients
        await burst(srv.url, [_search_target(f"warm up {label} {i}")], check_search(False), args.timeout)
    uncached = []
    for r in range(rounds):
        targets = [_search_target(f"big buck bunny {label} r{r} q{i} {uuid.uuid4().hex[:6]}") for i in range(n)]
        uncached.append(await burst(srv.url, targets, check_search(False), args.timeout))
    mem_uncached = proc_stats(srv.pid)
    queries = [f"big buck bunny cached {k}" for k in range(args.cached_queries)]
    await _prime(srv.url, queries, args.timeout)
    cached = []
    for r in range(rounds):
        targets = [_search_target(queries[(i + r) % len(queries)]) for i in range(n)]
        cached.append(await burst(srv.url, targets, check_search(True), args.timeout))
    mem_end = proc_stats(srv.pid)
    status, health = api(srv.url, "GET", "/api/health")

    def figs(bursts: list[dict]) -> dict[str, Any]:
        lat = [ms for b in bursts for ms in b["latency_ms"]]
        return {"latency_ms": dist(lat), "per_s": median_or_none([b["per_s"] for b in bursts]),
                "per_s_rounds": [b["per_s"] for b in bursts],
                "errors": sum(b["errors"] for b in bursts),
                "error_examples": [e for b in bursts for e in b["error_examples"]][:5]}

    out = {"uncached": figs(uncached), "cached": figs(cached),
           "memory": {"start": mem_start, "after_uncached": mem_uncached, "end": mem_end},
           "cache_status": (health or {}).get("cache")}
    out["ratios"] = {
        "p50": _ratio(out["uncached"]["latency_ms"]["p50"], out["cached"]["latency_ms"]["p50"]),
        "p99": _ratio(out["uncached"]["latency_ms"]["p99"], out["cached"]["latency_ms"]["p99"]),
        "throughput": _ratio(out["cached"]["per_s"], out["uncached"]["per_s"]),
    }
    c, u = out["cached"], out["uncached"]
    log(f"  {label}: cached p50 {_f(c['latency_ms']['p50'], '.1f')} / p99 "
        f"{_f(c['latency_ms']['p99'], '.1f')} / max {_f(c['latency_ms']['max'], '.1f')} ms, "
        f"{_f(c['per_s'])}/s, errors {c['errors']}; uncached p50 {_f(u['latency_ms']['p50'], '.1f')} / "
        f"p99 {_f(u['latency_ms']['p99'], '.1f')} ms, {_f(u['per_s'])}/s, errors {u['errors']}")
    for b in uncached + cached:
        b["latency_ms"] = [round(x, 3) for x in b["latency_ms"]]
    out["bursts"] = {"uncached": uncached, "cached": cached}
    return out


def redis_reason(url: str) -> Optional[str]:
    """None if Redis answers at ``url``, else why not."""
    try:
        import redis
        r = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        r.ping()
        r.close()
        return None
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def redis_clear(url: str, prefix: str) -> int:
    """Delete the keys under ``prefix``; returns how many are left (0 expected)."""
    import redis
    r = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        keys = list(r.scan_iter(match=prefix.replace("*", r"\*") + "*", count=500))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i:i + 500])
        return len(list(r.scan_iter(match=prefix.replace("*", r"\*") + "*", count=500)))
    finally:
        r.close()


def part_searches(args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    t_part = time.monotonic()
    out: dict[str, Any] = {"searches": args.searches, "rounds": args.search_rounds,
                           "cached_queries": args.cached_queries,
                           "providers": "catalogue + Nyaa + apibay + Torznab (local fakes, "
                                        "bench/search_bench.py, in a child process)",
                           "skipped": {}, "caches": {}}
    failures: list[str] = []
    caches = ["memory", "redis"]
    reason = redis_reason(args.redis)
    if reason:
        if args.require_redis:
            raise RuntimeError(f"Redis at {args.redis} is not reachable: {reason}")
        out["skipped"]["redis"] = reason
        caches.remove("redis")
        log(f"searches: Redis skipped ({reason})")
    with FakeIndexerProcess() as fakes:
        for cache in caches:
            env = server_env(0, **fakes.env())
            prefix = None
            if cache == "redis":
                prefix = f"tstream-loadbench-{uuid.uuid4().hex[:12]}:"
                env.update(TSTREAM_REDIS_URL=args.redis, TSTREAM_CACHE_PREFIX=prefix)
            srv = start_server(work, f"search-{cache}", env)
            try:
                res = asyncio.run(search_load(srv, cache, args, log))
            finally:
                res_server = stop_server(srv)
            res["server"] = res_server
            if prefix:
                res["redis"] = {"url": args.redis, "prefix": prefix, "keys_left": redis_clear(args.redis, prefix)}
                if res["redis"]["keys_left"]:
                    failures.append(f"searches: {res['redis']['keys_left']} Redis keys left under {prefix}")
            if res["cached"]["errors"]:
                failures.append(f"searches ({cache}): {res['cached']['errors']} cached searches failed: "
                                f"{res['cached']['error_examples'][:2]}")
            failures += server_failures(f"searches ({cache})", res_server)
            out["caches"][cache] = res
    out["failures"] = failures
    out["duration_s"] = time.monotonic() - t_part
    return out


# ---------------------------------------------------------------------------- part 3: soak


class Stop(Exception):
    pass


class Soak:
    """One server, ``--soak-workers`` threads of mixed work plus a churn thread, a sampler."""

    # action -> weight for the general workers
    MIX = {"stream_drop": 4, "seek": 3, "read_range": 2, "read_whole": 1, "search_cached": 4,
           "search_new": 1, "history": 3, "api": 2}

    def __init__(self, args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> None:
        self.args = args
        self.work = work
        self.log = log
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.paused: set[int] = set()
        self.lock = threading.Lock()
        self.stats: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.samples: list[dict[str, Any]] = []
        self.t0 = 0.0
        self._whole_sha: dict[tuple[int, int, int], str] = {}

    # ----------------------------------------------------------------- bookkeeping
    def record(self, action: str, seconds: float, error: Optional[str]) -> None:
        with self.lock:
            s = self.stats.setdefault(action, {"n": 0, "errors": 0, "ms": []})
            s["n"] += 1
            s["ms"].append(seconds * 1000)
            if error:
                s["errors"] += 1
                if len(self.errors) < 50:
                    self.errors.append(f"{action} at {time.monotonic() - self.t0:.0f} s: {error}")

    def checkpoint(self, wid: int) -> None:
        """Between actions: honour a pause (warm-up measurement) and the stop."""
        if self.pause.is_set():
            with self.lock:
                self.paused.add(wid)
            while self.pause.is_set() and not self.stop.is_set():
                time.sleep(0.05)
            with self.lock:
                self.paused.discard(wid)
        if self.stop.is_set():
            raise Stop

    # ----------------------------------------------------------------- the work
    def _check_bytes(self, offset: int, data: bytes) -> Optional[str]:
        if os.pread(self.main_fd, len(data), offset) != data:
            return f"wrong bytes at {offset} (+{len(data)})"
        return None

    def do_stream_drop(self, rng: random.Random, session: str) -> Optional[str]:
        off = rng.randrange(self.size)
        want = rng.choice([64 * 1024, 512 * 1024, 2 * MiB])
        r = http_read_prefix(self.main_url, range_header=f"bytes={off}-", want=want,
                             timeout=self.args.timeout, keep=True)
        if r["status"] != 206:
            return f"status {r['status']}"
        if len(r["data"]) != min(want, self.size - off):
            return f"{len(r['data'])} bytes of {min(want, self.size - off)}"
        return self._check_bytes(off, r["data"])

    def do_seek(self, rng: random.Random, session: str) -> Optional[str]:
        off = rng.randrange(self.size - MiB)
        r = http_read_prefix(self.main_url, range_header=f"bytes={off}-{off + MiB - 1}", want=MiB,
                             timeout=self.args.timeout, keep=True)
        if r["status"] != 206 or len(r["data"]) != MiB:
            return f"status {r['status']}, {len(r['data'])} bytes"
        return self._check_bytes(off, r["data"])

    def _read_checked(self, url: str, src_fd: int, size: int, off: int, length: int,
                      session: str) -> Optional[str]:
        h = hashlib.sha256()
        r = http_get_throughput(url, range_header=f"bytes={off}-{off + length - 1}",
                                timeout=self.args.timeout, body_sink=h.update,
                                extra_headers={"X-Session-Id": session})
        if r["status"] != 206 or r["bytes"] != length or not r["complete"]:
            return f"status {r['status']}, {r['bytes']} of {length} bytes"
        if h.hexdigest() != self._expected_sha(src_fd, off, length):
            return f"wrong bytes in {off}+{length}"
        return None

    def _expected_sha(self, src_fd: int, off: int, length: int) -> str:
        key = (src_fd, off, length)
        if key in self._whole_sha:          # whole files: hashed once
            return self._whole_sha[key]
        digest = hashlib.sha256(os.pread(src_fd, length, off)).hexdigest()
        if off == 0 and length > 16 * MiB:
            self._whole_sha[key] = digest
        return digest

    def do_read_range(self, rng: random.Random, session: str) -> Optional[str]:
        length = rng.randrange(MiB, 16 * MiB)
        off = rng.randrange(self.size - length)
        return self._read_checked(self.main_url, self.main_fd, self.size, off, length, session)

    def do_read_whole(self, rng: random.Random, session: str) -> Optional[str]:
        return self._read_checked(self.main_url, self.main_fd, self.size, 0, self.size, session)

    def _search(self, q: str, cached: bool) -> Optional[str]:
        status, body = _sync_get(self.srv.url + _search_target(q), self.args.timeout)
        return check_search(cached)(status, body)

    def do_search_cached(self, rng: random.Random, session: str) -> Optional[str]:
        return self._search(rng.choice(self.queries), True)

    def do_search_new(self, rng: random.Random, session: str) -> Optional[str]:
        return self._search(f"soak {uuid.uuid4().hex[:10]}", False)

    def do_history(self, rng: random.Random, session: str) -> Optional[str]:
        hdr = {"X-Session-Id": session}
        body = {"magnet": self.main_magnet, "file_index": 0,
                "position_s": round(rng.uniform(0, 30), 2), "duration_s": 30.0}
        status, ans = api(self.srv.url, "POST", "/api/history", body, hdr)
        if status not in (200, 202):
            return f"POST /api/history: {status} {ans}"
        status, ans = api(self.srv.url, "GET", "/api/history?limit=5", headers=hdr)
        if status != 200 or not ans.get("watches"):
            return f"GET /api/history: {status} {str(ans)[:200]}"
        q = urllib.parse.urlencode({"magnet": self.main_infohash, "file_index": 0})
        status, ans = api(self.srv.url, "GET", f"/api/resume?{q}", headers=hdr)
        if status != 200 or not ans.get("found"):
            return f"GET /api/resume: {status} {str(ans)[:200]}"
        return None

    def do_api(self, rng: random.Random, session: str) -> Optional[str]:
        for path in ("/api/streams", "/api/torrents", "/api/health"):
            status, _ = api(self.srv.url, "GET", path)
            if status != 200:
                return f"GET {path}: {status}"
        return None

    def worker(self, wid: int) -> None:
        rng = random.Random(self.args.seed * 1000 + wid)
        status, ans = api(self.srv.url, "POST", "/api/session")
        session = ans["token"] if status == 201 else ""
        actions, weights = zip(*self.MIX.items())
        try:
            while True:
                self.checkpoint(wid)
                action = rng.choices(actions, weights)[0]
                t = time.monotonic()
                try:
                    err = getattr(self, f"do_{action}")(rng, session)
                except Exception as e:  # noqa: BLE001 - counted
                    err = f"{type(e).__name__}: {e}"
                self.record(action, time.monotonic() - t, err)
                if self.args.think_ms:
                    time.sleep(rng.uniform(0, self.args.think_ms / 1000))
        except Stop:
            pass

    # ----------------------------------------------------------------- churn
    def churn_once(self, k: int, cycle: int, rng: random.Random) -> tuple[str, Optional[str]]:
        """Add one small torrent by streaming it from its magnet (cold), then remove it with its
        files. Three ways, in turn: read it whole; seek into it; remove it while a stream of it
        is open (the response must end, not hang)."""
        seeder, src, size = self.churn[k]
        url = self.srv.stream_url(seeder.magnet)
        mode = ("whole", "seek", "remove_while_streaming")[cycle % 3]
        err: Optional[str] = None
        sock = None
        with open(src, "rb") as f:
            fd = f.fileno()
            if mode == "whole":
                err = self._read_checked(url, fd, size, 0, size, "")
            elif mode == "seek":
                off = rng.randrange(size - MiB)
                err = self._read_checked(url, fd, size, off, MiB, "")
            else:
                sock, first = _open_stream(url, "bytes=0-", self.args.timeout)
                if first["status"] != 206:
                    err = f"status {first['status']}"
        q = urllib.parse.urlencode({"magnet": seeder.info["infohash"], "delete_files": "1"})
        status, ans = api(self.srv.url, "DELETE", f"/api/torrent?{q}")
        if status != 200 and err is None:
            err = f"DELETE /api/torrent: {status} {ans}"
        if sock is not None:
            ended = _drain(sock, 15.0)
            if ended == "timeout" and err is None:
                err = "the stream of a removed torrent did not end within 15 s"
        status, ans = api(self.srv.url, "GET", "/api/torrents")
        if status != 200 or any(t["infohash"] == seeder.info["infohash"] for t in ans["torrents"]):
            err = err or f"removed torrent still listed: {status}"
        return mode, err

    def churner(self) -> None:
        rng = random.Random(self.args.seed * 1000 + 999)
        cycle = 0
        try:
            while True:
                self.checkpoint(-1)
                k = cycle % len(self.churn)
                t = time.monotonic()
                try:
                    mode, err = self.churn_once(k, cycle // len(self.churn), rng)
                except Exception as e:  # noqa: BLE001
                    mode, err = "error", f"{type(e).__name__}: {e}"
                self.record(f"churn_{mode}", time.monotonic() - t, err)
                cycle += 1
                time.sleep(rng.uniform(0, 0.2))
        except Stop:
            pass

    # ----------------------------------------------------------------- sampling
    def sample(self, phase: str) -> dict[str, Any]:
        s: dict[str, Any] = {"t": round(time.monotonic() - self.t0, 2), "phase": phase}
        s.update(proc_stats(self.srv.pid))
        status, h = api(self.srv.url, "GET", "/api/health")
        if status == 200:
            s.update(torrents=h.get("torrents"), handles=h.get("handles"), streams=h.get("streams"),
                     peers=h.get("peers"), cache_entries=(h.get("cache") or {}).get("entries"))
            hist = h.get("history") or {}
            s["history_queued"] = hist.get("queued") if isinstance(hist, dict) else None
        with self.lock:
            s["actions"] = sum(v["n"] for v in self.stats.values())
            s["errors"] = sum(v["errors"] for v in self.stats.values())
        return s

    def sampler(self) -> None:
        next_t = time.monotonic()
        while not self.stop.is_set():
            phase = "paused" if self.pause.is_set() else (
                "warmup" if time.monotonic() - self.t0 < self.args.warmup_s else "load")
            try:
                self.samples.append(self.sample(phase))
            except Exception as e:  # noqa: BLE001
                self.samples.append({"t": round(time.monotonic() - self.t0, 2), "error": str(e)})
            next_t += self.args.sample_s
            self.stop.wait(max(0.0, next_t - time.monotonic()))

    def quiet(self, label: str) -> dict[str, Any]:
        health = wait_idle(self.srv, timeout=60, settle=self.args.settle_s)
        s = self.sample(label)
        s["health"] = health
        # The fd count at rest comes from the same snapshot as its kinds, and from two snapshots
        # 0.25 s apart that agree: an fd open for a moment (the status tick, a pool's check of
        # its connections) is not a leak. A CI run failed on one: the count was taken before the
        # kinds, 26 -> 28 against kinds that differed by 1 (the PostgreSQL pool, within bound).
        # A leaked fd stays open, so it is in every snapshot.
        targets = fd_targets(self.srv.pid, self.ports)
        for _ in range(20):
            time.sleep(0.25)
            again = fd_targets(self.srv.pid, self.ports)
            if again == targets:
                break
            targets = again
        s["fd_targets"] = targets
        s["fds_sampled"] = s.get("fds")
        s["fds"] = sum(targets.values())
        return s

    # ----------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        args, work, log = self.args, self.work, self.log
        t_part = time.monotonic()
        log(f"soak: {args.minutes:g} min, {args.soak_workers} workers + churn; preparing...")
        main = make_mp4(args.mb)
        churn_src = [make_mp4(args.churn_mb, seed=s) for s in CHURN_SEEDS]
        self.size = main.stat().st_size
        seeders: list[Seeder] = []
        pg_schema: Optional[str] = None
        redis_prefix: Optional[str] = None
        out: dict[str, Any] = {}
        failures: list[str] = []
        fakes = None
        srv = None
        self.main_fd = os.open(main, os.O_RDONLY)
        try:
            seeders.append(Seeder(main, work / "seed-soak-main.log"))
            for i, src in enumerate(churn_src):
                seeders.append(Seeder(src, work / f"seed-soak-churn{i}.log"))
            for s in seeders:
                s.wait_ready()
            self.churn = [(s, src, src.stat().st_size) for s, src in zip(seeders[1:], churn_src)]
            fakes = FakeIndexerProcess()
            env = server_env(0, **fakes.env())
            history, cache = self._backends(env)
            pg_schema = env.pop("_pg_schema", None)
            redis_prefix = env.get("TSTREAM_CACHE_PREFIX")
            out["backends"] = {"history": history, "cache": cache}
            srv = self.srv = start_server(work, "soak", env)
            self.ports = {urllib.parse.urlsplit(srv.url).port: "http",
                          urllib.parse.urlsplit(fakes.base).port: "indexers", 6379: "redis",
                          5432: "postgres", **{s.peer[1]: "seeder" for s in seeders}}
            self.main_magnet = seeders[0].magnet
            self.main_infohash = seeders[0].info["infohash"]
            self.main_url = srv.stream_url(self.main_magnet)
            # the main torrent, downloaded once (cold, bytes checked) and kept all along
            err = self._read_checked(self.main_url, self.main_fd, self.size, 0, self.size, "")
            if err:
                raise RuntimeError(f"soak: first read of the main file: {err}")
            srv.wait_complete(self.main_infohash)
            self.queries = [f"soak cached {k}" for k in range(args.cached_queries)]
            asyncio.run(_prime(srv.url, self.queries, args.timeout))
            out["prepare_s"] = time.monotonic() - t_part

            total_s = args.minutes * 60
            self.t0 = time.monotonic()
            threads = [threading.Thread(target=self.worker, args=(w,), daemon=True)
                       for w in range(args.soak_workers)]
            threads.append(threading.Thread(target=self.churner, daemon=True))
            sampler = threading.Thread(target=self.sampler, daemon=True)
            sampler.start()
            for t in threads:
                t.start()
            log(f"  load started; warm-up {args.warmup_s:g} s")
            quiet_start = quiet_end = None
            hung: list[str] = []
            load_end = 0.0
            try:
                quiet_start, quiet_end, load_end, hung = self._load(threads, total_s)
            except Exception as e:  # noqa: BLE001 - a dead server is a result, not a crash here
                if srv.proc.poll() is None:
                    raise
                out["crashed"] = {"at_s": round(time.monotonic() - self.t0, 1),
                                  "exit_code": srv.proc.returncode, "error": repr(e)[:300]}
                log(f"  the server died at {out['crashed']['at_s']} s (exit {srv.proc.returncode})")
            self.stop.set()
            for t in threads:
                t.join(args.timeout + 30)
            sampler.join(30)
            server_alive = srv.proc.poll() is None
        finally:
            self.stop.set()
            os.close(self.main_fd)
            server_info = stop_server(srv) if srv is not None else None
            if fakes is not None:
                fakes.stop()
            for s in seeders:
                s.stop()
            if pg_schema:
                _pg_drop(pg_schema)
            if redis_prefix:
                out["redis_keys_left"] = redis_clear(args.redis, redis_prefix)

        if quiet_start is not None and quiet_end is not None:
            out.update(self._verdict(quiet_start, quiet_end, load_end))
            failures += out.pop("_failures")
        if hung:
            failures.append(f"soak: client threads still running after the stop: {hung}")
        if not server_alive:
            failures.append(f"soak: the server died during the soak: {out.get('crashed')}")
        if server_info:
            failures += server_failures("soak", server_info)
        if out.get("redis_keys_left"):
            failures.append(f"soak: {out['redis_keys_left']} Redis keys left")
        actions = {}
        for name, s in sorted(self.stats.items()):
            actions[name] = {"n": s["n"], "errors": s["errors"], "ms": dist(s["ms"])}
        total_errors = sum(s["errors"] for s in self.stats.values())
        if total_errors:
            failures.append(f"soak: {total_errors} actions failed: {self.errors[:3]}")
        out.update({
            "minutes": args.minutes, "workers": args.soak_workers, "think_ms": args.think_ms,
            "files": {"main": {"path": str(main), "bytes": self.size},
                      "churn": [{"path": str(p), "bytes": p.stat().st_size} for p in churn_src]},
            "actions": actions, "actions_total": sum(s["n"] for s in self.stats.values()),
            "errors": total_errors, "error_examples": self.errors[:20],
            "quiet_start": quiet_start, "quiet_end": quiet_end, "server": server_info,
            "samples": self.samples, "failures": failures,
            "duration_s": time.monotonic() - t_part,
        })
        return out

    def _load(self, threads: list[threading.Thread], total_s: float) -> tuple[dict, dict, float, list[str]]:
        """Warm-up, the at-rest measurement, the load until ``total_s`` (or the server's death),
        the stop and the at-rest measurement at the end."""
        args, log = self.args, self.log
        self.stop.wait(args.warmup_s)
        # at rest after the warm-up: workers finish their action and wait
        self.pause.set()
        deadline = time.monotonic() + args.timeout + 30
        while len(self.paused) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.05)
        quiet_start = self.quiet("quiet_start")
        self.pause.clear()
        log(f"  at rest after warm-up: RSS {quiet_start['rss_mib']:.1f} MiB, fds "
            f"{quiet_start['fds']}, threads {quiet_start['threads']}, torrents "
            f"{quiet_start.get('torrents')}/{quiet_start.get('handles')} handles")
        last_log = time.monotonic()
        while time.monotonic() - self.t0 < total_s and self.srv.proc.poll() is None:
            self.stop.wait(min(1.0, total_s - (time.monotonic() - self.t0)))
            if time.monotonic() - last_log >= 60:
                last_log = time.monotonic()
                s = self.samples[-1] if self.samples else {}
                log(f"  {time.monotonic() - self.t0:.0f} s: RSS {_f(s.get('rss_mib'), '.1f')} MiB, "
                    f"fds {s.get('fds')}, torrents {s.get('torrents')}, streams "
                    f"{s.get('streams')}, actions {s.get('actions')}, errors {s.get('errors')}")
        load_end = time.monotonic() - self.t0
        self.stop.set()
        for t in threads:
            t.join(args.timeout + 30)
        hung = [t.name for t in threads if t.is_alive()]
        quiet_end = self.quiet("quiet_end")
        log(f"  at rest at the end: RSS {quiet_end['rss_mib']:.1f} MiB, fds {quiet_end['fds']}, "
            f"threads {quiet_end['threads']}, torrents {quiet_end.get('torrents')}/"
            f"{quiet_end.get('handles')} handles")
        return quiet_start, quiet_end, load_end, hung

    def _backends(self, env: dict[str, str]) -> tuple[str, str]:
        args = self.args
        history = args.soak_history
        if history in ("auto", "postgres"):
            reason = _pg_reason()
            if reason is None:
                schema = "tstream_loadbench_" + uuid.uuid4().hex[:12]
                _pg_create(schema)
                from history_support import schema_url   # tests/, on the path via search_bench
                env["TSTREAM_DATABASE_URL"] = schema_url(schema)
                env["_pg_schema"] = schema
                history = "postgres"
            elif history == "postgres":
                raise RuntimeError(f"PostgreSQL is not reachable: {reason}")
            else:
                history = f"sqlite (PostgreSQL unreachable: {reason})"
        cache = args.soak_cache
        if cache in ("auto", "redis"):
            reason = redis_reason(args.redis)
            if reason is None:
                env.update(TSTREAM_REDIS_URL=args.redis,
                           TSTREAM_CACHE_PREFIX=f"tstream-loadbench-{uuid.uuid4().hex[:12]}:")
                cache = "redis"
            elif cache == "redis":
                raise RuntimeError(f"Redis is not reachable: {reason}")
            else:
                cache = f"memory (Redis unreachable: {reason})"
        return history, cache

    def _verdict(self, quiet_start: dict, quiet_end: dict, load_end: float) -> dict[str, Any]:
        a = self.args
        load = [s for s in self.samples if s.get("phase") == "load" and "rss_mib" in s]
        # the load phase starts when the workers resume after the at-rest measurement
        first = [s for s in load if s["t"] <= load[0]["t"] + a.window_s] if load else []
        last = [s for s in load if s["t"] >= load_end - a.window_s]

        def med(samples: list[dict], key: str) -> Optional[float]:
            return median_or_none([s.get(key) for s in samples])

        windows = {key: {"start": med(first, key), "end": med(last, key)}
                   for key in ("rss_mib", "uss_mib", "anon_mib", "fds", "threads", "torrents",
                               "handles", "streams")}
        for w in windows.values():
            w["change"] = (w["end"] - w["start"]) if w["start"] is not None and w["end"] is not None else None
        failures: list[str] = []
        verdicts: dict[str, dict[str, Any]] = {}
        # memory: first window after the warm-up against the last one, under load
        rss0, rss1 = windows["rss_mib"]["start"], windows["rss_mib"]["end"]
        tol = max(a.rss_tolerance_pct / 100 * (rss0 or 0), a.rss_tolerance_mib)
        grows = rss0 is None or rss1 is None or rss1 - rss0 > tol
        verdicts["rss"] = {"start_mib": rss0, "end_mib": rss1, "tolerance_mib": tol,
                           "rest_start_mib": quiet_start["rss_mib"], "rest_end_mib": quiet_end["rss_mib"],
                           "grows": grows}
        if len(load) >= 3:
            xs = [s["t"] / 60 for s in load]
            ys = [s["rss_mib"] for s in load]
            try:
                verdicts["rss"]["slope_mib_per_min"] = statistics.linear_regression(xs, ys).slope
            except statistics.StatisticsError:
                pass
        # fds and torrent handles: at rest, after the warm-up and at the end. Connections of the
        # Redis and PostgreSQL pools are opened as concurrency first needs them and kept: they
        # must stay within the pools' bounds; every other fd must be back to its count.
        t0, t1 = quiet_start.get("fd_targets", {}), quiet_end.get("fd_targets", {})
        bounds = pool_bounds()
        pooled0 = sum(n for k, n in t0.items() if k in bounds)
        pooled1 = sum(n for k, n in t1.items() if k in bounds)
        other0, other1 = quiet_start["fds"] - pooled0, quiet_end["fds"] - pooled1
        over = {k: t1[k] for k in bounds if t1.get(k, 0) > bounds[k]}
        verdicts["fds"] = {"rest_start": quiet_start["fds"], "rest_end": quiet_end["fds"],
                           "other_rest_start": other0, "other_rest_end": other1,
                           "pool_connections_rest_start": pooled0, "pool_connections_rest_end": pooled1,
                           "pool_bounds": bounds, "pools_over_bound": over,
                           "tolerance": a.fd_tolerance,
                           "grows": other1 - other0 > a.fd_tolerance or bool(over),
                           "changed": {k: t1.get(k, 0) - t0.get(k, 0) for k in sorted(set(t0) | set(t1))
                                       if t1.get(k, 0) != t0.get(k, 0)}}
        handles_ok = (quiet_end.get("torrents") == quiet_start.get("torrents")
                      and quiet_end.get("handles") == quiet_start.get("handles")
                      and quiet_end.get("handles") == quiet_end.get("torrents"))
        mismatched = [s["t"] for s in self.samples if s.get("handles") is not None
                      and s.get("handles") != s.get("torrents")]
        verdicts["handles"] = {"rest_start": [quiet_start.get("torrents"), quiet_start.get("handles")],
                               "rest_end": [quiet_end.get("torrents"), quiet_end.get("handles")],
                               # under load a removal in flight (Engine.remove waits for a disk
                               # fence after dropping the torrent) shows as one handle more for
                               # a moment: reported, the verdict is taken at rest
                               "samples_where_handles_differ_from_torrents": mismatched[:20],
                               "grows": not handles_ok}
        verdicts["threads"] = {"rest_start": quiet_start["threads"], "rest_end": quiet_end["threads"],
                               "grows": quiet_end["threads"] > quiet_start["threads"],
                               "note": "reported, not part of the exit status"}
        for name in ("rss", "fds", "handles"):
            if verdicts[name]["grows"]:
                failures.append(f"soak: {name} grows: {verdicts[name]}")
        return {"windows": windows, "verdicts": verdicts, "load_s": load_end,
                "window_samples": {"start": [s["t"] for s in first], "end": [s["t"] for s in last]},
                "_failures": failures}


def _sync_get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with _opener.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _open_stream(url: str, range_header: str, timeout: float) -> tuple[socket.socket, dict]:
    """A GET whose response is left open after its headers and first bytes (the caller reads
    the rest with ``_drain``)."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nRange: {range_header}\r\n"
                 "Connection: close\r\n\r\n".encode("latin-1"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return sock, {"status": status}


def _drain(sock: socket.socket, timeout: float) -> str:
    """Read until the server ends the response: "eof", "reset" or "timeout"."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not sock.recv(MiB):
                    return "eof"
            except socket.timeout:
                return "timeout"
            except ConnectionError:
                return "reset"
        return "timeout"
    finally:
        sock.close()


def _pg_reason() -> Optional[str]:
    try:
        from history_support import pg_available
        return pg_available()
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def _pg_create(schema: str) -> None:
    from history_support import pg_admin_connect
    with pg_admin_connect() as c:
        c.execute(f"CREATE SCHEMA {schema}")


def _pg_drop(schema: str) -> None:
    from history_support import pg_admin_connect
    with pg_admin_connect() as c:
        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def part_soak(args: argparse.Namespace, work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    return Soak(args, work, log).run()


# ------------------------------------------------------------------------------------ table


def render(result: dict[str, Any]) -> str:
    out: list[str] = []
    cfg = result["config"]
    parts = result["parts"]
    if "streams" in parts:
        p = parts["streams"]
        f, r = p["figures"], p["ratios"]
        out.append(f"STREAMS: {cfg['streams']} concurrent Range requests at {cfg['streams']} offsets, "
                   f"{p['file']['mb']:.0f} MB MP4, {p['read']}; {cfg['runs']} run(s), medians; "
                   f"TTFB pooled over runs")
        out.append(f"{'':<22}{'MB/s':>8}{'TTFB p50':>10}{'p99':>8}{'max':>8}  (ms)")
        for label, key, ttfb in (("tstream cold", "cold_mb_s", "cold_ttfb_ms"),
                                 ("tstream warm", "warm_mb_s", "warm_ttfb_ms"),
                                 ("nginx (same ranges)", "nginx_mb_s", "nginx_ttfb_ms")):
            t = f[ttfb]
            out.append(f"{label:<22}{_f(f[key]):>8}{_f(t['p50'], '.1f'):>10}{_f(t['p99'], '.1f'):>8}"
                       f"{_f(t['max'], '.1f'):>8}")
        out.append(f"{'libtorrent (whole)':<22}{_f(f['libtorrent_mb_s']):>8}")
        out.append(f"ratios: cold/libtorrent {_f(r['cold_vs_libtorrent'], '.2f')}x, warm/nginx "
                   f"{_f(r['warm_vs_nginx'], '.2f')}x, warm TTFB p99 / nginx {_f(r['warm_ttfb_p99_vs_nginx'], '.1f')}x")
        out.append(f"server RSS: idle {_f(f['rss_idle_mib'], '.1f')} -> after cold "
                   f"{_f(f['rss_after_cold_mib'], '.1f')} -> after warm {_f(f['rss_after_warm_mib'], '.1f')} MiB "
                   f"(USS {_f(f['uss_after_warm_mib'], '.1f')}), peak {_f(f['peak_rss_mib'], '.1f')} MiB; "
                   f"fds after warm {_f(f['fds_after_warm'])}, at rest {_f(f['fds_at_rest'])}")
        out.append(f"bytes: {p['ranges_checked']} ranges checked (sha256), wrong {p['wrong_bytes']}, "
                   f"errors {p['errors']}  [{p['duration_s']:.0f} s]")
        out.append("")
    if "searches" in parts:
        p = parts["searches"]
        out.append(f"SEARCHES: {p['searches']} concurrent GET /api/search, {p['rounds']} bursts each, "
                   f"4 providers (local fakes); latency from connect to last byte")
        out.append(f"{'cache':<8}{'':<10}{'p50 ms':>9}{'p99':>9}{'max':>9}{'/s':>8}{'errors':>8}")
        for name, c in p["caches"].items():
            for kind in ("cached", "uncached"):
                x = c[kind]
                out.append(f"{name:<8}{kind:<10}{_f(x['latency_ms']['p50'], '.1f'):>9}"
                           f"{_f(x['latency_ms']['p99'], '.1f'):>9}{_f(x['latency_ms']['max'], '.1f'):>9}"
                           f"{_f(x['per_s']):>8}{x['errors']:>8}")
            rr = c["ratios"]
            mem = c["memory"]
            extra = f", Redis keys left {c['redis']['keys_left']}" if "redis" in c else ""
            out.append(f"{'':<8}uncached/cached p50 {_f(rr['p50'], '.1f')}x, p99 {_f(rr['p99'], '.1f')}x; "
                       f"RSS {mem['start']['rss_mib']:.1f} -> {mem['end']['rss_mib']:.1f} MiB{extra}")
        for what, why in p["skipped"].items():
            out.append(f"not measured: {what}: {why}")
        out.append(f"[{p['duration_s']:.0f} s]")
        out.append("")
    if "soak" in parts and "verdicts" not in parts["soak"]:
        p = parts["soak"]
        out.append(f"SOAK: no verdict: {p.get('crashed') or 'no at-rest measurement'}; "
                   f"{p['actions_total']} actions, errors {p['errors']}  [{p['duration_s']:.0f} s]")
        out.append("")
    elif "soak" in parts:
        p = parts["soak"]
        v = p["verdicts"]
        w = p["windows"]
        out.append(f"SOAK: {p['minutes']:g} min ({p['load_s']:.0f} s of load), {p['workers']} workers + churn, "
                   f"{p['actions_total']} actions, errors {p['errors']}; history {p['backends']['history']}, "
                   f"cache {p['backends']['cache']}")
        out.append(f"{'':<26}{'start':>10}{'end':>10}{'change':>10}  verdict")

        def row(label: str, a: Any, b: Any, verdict: str, fmt: str = ".1f") -> None:
            ch = None if a is None or b is None else b - a
            out.append(f"{label:<26}{_f(a, fmt):>10}{_f(b, fmt):>10}{_f(ch, '+' + fmt):>10}  {verdict}")

        def gv(name: str) -> str:
            return "GROWS" if v[name]["grows"] else "does not grow"

        row("RSS MiB (window medians)", w["rss_mib"]["start"], w["rss_mib"]["end"],
            f"{gv('rss')} (tolerance {v['rss']['tolerance_mib']:.1f} MiB)")
        row("USS MiB (window medians)", w["uss_mib"]["start"], w["uss_mib"]["end"], "")
        row("RSS MiB at rest", v["rss"]["rest_start_mib"], v["rss"]["rest_end_mib"],
            f"slope under load {_f(v['rss'].get('slope_mib_per_min'), '+.2f')} MiB/min")
        row("open fds at rest", v["fds"]["rest_start"], v["fds"]["rest_end"],
            f"{v['fds']['changed'] or 'same kinds'}", "d")
        row("  not pool connections", v["fds"]["other_rest_start"], v["fds"]["other_rest_end"],
            f"{gv('fds')} (tolerance {v['fds']['tolerance']})", "d")
        row("  Redis+PostgreSQL pools", v["fds"]["pool_connections_rest_start"],
            v["fds"]["pool_connections_rest_end"],
            "within bounds " + "+".join(str(b) for b in v["fds"]["pool_bounds"].values())
            if not v["fds"]["pools_over_bound"] else f"OVER BOUND {v['fds']['pools_over_bound']}", "d")
        row("open fds (window medians)", w["fds"]["start"], w["fds"]["end"], "", ".0f")
        row("torrents at rest", v["handles"]["rest_start"][0], v["handles"]["rest_end"][0], gv("handles"), "d")
        row("libtorrent handles at rest", v["handles"]["rest_start"][1], v["handles"]["rest_end"][1], "", "d")
        row("threads at rest", v["threads"]["rest_start"], v["threads"]["rest_end"],
            ("grows" if v["threads"]["grows"] else "does not grow") + " (not in the exit status)", "d")
        row("active streams (medians)", w["streams"]["start"], w["streams"]["end"], "", ".0f")
        acts = ", ".join(f"{k} {a['n']}" + (f" ({a['errors']} failed)" if a["errors"] else "")
                         for k, a in p["actions"].items())
        out.append(f"actions: {acts}")
        out.append(f"[{p['duration_s']:.0f} s]")
        out.append("")
    out.append(f"note: {MACHINE_NOTE}.")
    if result["failures"]:
        out.append("FAILED:")
        out += [f"  - {f}" for f in result["failures"]]
    else:
        out.append("all checks passed (bytes, errors, 5xx, soak verdicts)")
    return "\n".join(out)


# ------------------------------------------------------------------------------------- main


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/load_bench.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=("streams", "searches", "soak"),
                    help="run this part only (repeatable; default: all three)")
    ap.add_argument("--quick", action="store_true",
                    help="10 streams of a ~24 MB file, 40 searches x 2, a 30 s soak (the test)")
    g = ap.add_argument_group("streams")
    g.add_argument("--streams", type=int, default=50, help="concurrent Range requests")
    g.add_argument("--mb", type=float, default=120, help="size of the MP4 in MB (>= 100 for the issue)")
    g.add_argument("--read-mib", type=float, default=0,
                   help="MiB each stream reads (0: its 1/N slice, the whole file once)")
    g.add_argument("--runs", type=int, default=3, help="cold+warm runs (each a fresh server)")
    g = ap.add_argument_group("searches")
    g.add_argument("--searches", type=int, default=200, help="concurrent searches per burst")
    g.add_argument("--search-rounds", type=int, default=5, help="bursts of each kind")
    g.add_argument("--cached-queries", type=int, default=10, help="distinct cached queries")
    g.add_argument("--redis", default=REDIS_URL, help="Redis for the cache (a unique key prefix)")
    g.add_argument("--require-redis", action="store_true", help="fail instead of skipping without Redis")
    g = ap.add_argument_group("soak")
    g.add_argument("--minutes", type=float, default=10, help="soak length, warm-up included")
    g.add_argument("--warmup-s", type=float, default=60, help="warm-up before the start measurement")
    g.add_argument("--window-s", type=float, default=60, help="length of the start and end windows")
    g.add_argument("--sample-s", type=float, default=10, help="seconds between samples")
    g.add_argument("--settle-s", type=float, default=3, help="quiet time before an at-rest measurement")
    g.add_argument("--soak-workers", type=int, default=4, help="threads of mixed work (plus one churn)")
    g.add_argument("--think-ms", type=float, default=20, help="random pause after each action, up to")
    g.add_argument("--churn-mb", type=float, default=8, help="size of the churn torrents' MP4s")
    g.add_argument("--soak-history", choices=("auto", "postgres", "sqlite"), default="auto",
                   help="auto: PostgreSQL (a schema of its own, dropped) if reachable, else SQLite")
    g.add_argument("--soak-cache", choices=("auto", "redis", "memory"), default="auto",
                   help="auto: Redis (a key prefix of its own, deleted) if reachable")
    g.add_argument("--rss-tolerance-pct", type=float, default=10.0)
    g.add_argument("--rss-tolerance-mib", type=float, default=10.0)
    g.add_argument("--fd-tolerance", type=int, default=0,
                   help="fds at rest other than Redis/PostgreSQL pool connections may end this "
                        "many above the start")
    g.add_argument("--seed", type=int, default=1, help="random seed of the workers")
    ap.add_argument("--timeout", type=float, default=120.0, help="limit of each request, s")
    ap.add_argument("--json", type=Path, help="write the JSON here instead of bench/results/")
    ap.add_argument("--keep-workdir", action="store_true", help="keep server logs")
    args = ap.parse_args(argv)
    if args.quick:
        args.streams, args.mb, args.runs = min(args.streams, 10), 24, 1
        args.searches, args.search_rounds, args.cached_queries = min(args.searches, 40), 2, 4
        args.minutes, args.warmup_s, args.window_s, args.sample_s = 0.5, 6, 6, 1
        args.settle_s, args.churn_mb, args.soak_workers = 1, 3, 3
    if args.streams < 1 or args.searches < 1 or args.runs < 1:
        ap.error("--streams, --searches and --runs must be >= 1")
    if args.minutes * 60 < args.warmup_s + 2 * args.window_s:
        ap.error("--minutes must leave room for the warm-up and two windows")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    parts = args.only or ["streams", "searches", "soak"]
    started = time.time()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tstream-load-bench-"))
    result: dict[str, Any] = {
        "schema": 1,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "env": {"python": platform.python_version(), "cpus": os.cpu_count(),
                "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
        "machine_note": MACHINE_NOTE,
        "parts": {},
    }
    runners = {"streams": part_streams, "searches": part_searches, "soak": part_soak}
    try:
        for name in parts:
            result["parts"][name] = runners[name](args, work, log)
    finally:
        if args.keep_workdir:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["env"]["load_avg_at_end"] = os.getloadavg()
    result["duration_s"] = time.monotonic() - t0
    result["failures"] = [f for p in result["parts"].values() for f in p.get("failures", [])]
    result["ok"] = not result["failures"]
    out = args.json
    if out is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"load_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(render(result))
    print(f"\nJSON: {out}  ({result['duration_s']:.0f} s)")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
