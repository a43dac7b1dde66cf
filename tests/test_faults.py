"""Faults (issue 9, item 1), each on real parts: libtorrent seeders on
127.0.0.1, the Tornado server, the real PostgreSQL behind a TCP proxy the
test cuts, a redis-server of the test's own, a server process killed with
SIGKILL. Every wait has a bound. docs/RELIABILITY.md lists what each proves.

The fault "all peers leave" is ``tests/test_server.py::
test_peers_leave_mid_stream_ends_cleanly_with_error``; the Redis outage with
a request at a time is ``tests/test_search_api.py::
test_redis_down_search_still_works_and_health_says_so``.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import psycopg
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from conftest import PIECE, sha256, wait_until
from history_support import PG_BASE, TcpProxy, pg_schema, schema_url  # noqa: F401 - fixture
from test_cache import own_redis  # noqa: F401 - fixture
from test_resume import _start_server as start_server_process
from test_search_api import fake, search_settings  # noqa: F401 - fixture
from tstream_kit.engine.lt import lt
from tstream_kit.engine.swarm import LocalSwarm
from tstream_kit.server.app import RunningServer, start_server


# ------------------------------------------------------------------ helpers
def q(**params: Any) -> str:
    return urllib.parse.urlencode(params)


async def fetch(url: str, method: str = "GET", headers: dict | None = None, timeout: float = 60,
                **kw: Any) -> HTTPResponse:
    client = AsyncHTTPClient(max_body_size=512 * 1024 * 1024)
    return await client.fetch(url, method=method, headers=headers or {}, raise_error=False,
                              request_timeout=timeout, allow_nonstandard_methods=True, **kw)


async def get_json(url: str, **kw: Any) -> Any:
    r = await fetch(url, **kw)
    assert r.code < 500, (r.code, r.body[:300])
    return json.loads(r.body)


class Body:
    """A response body collected chunk by chunk, so the test sees how far a
    stream got while it is still going."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.last_at = time.monotonic()

    def __call__(self, chunk: bytes) -> None:
        self.buf += chunk
        self.last_at = time.monotonic()

    def __len__(self) -> int:
        return len(self.buf)


def second_seeder(first: LocalSwarm, src: Path, workdir: Path) -> LocalSwarm:
    """Another peer with the same data: the same .torrent bytes (so the same
    infohash), its own copy of the file, its own port."""
    workdir.mkdir(parents=True)
    shutil.copyfile(src, workdir / first.name)
    return LocalSwarm(first.torrent_bytes, workdir)


# ------------------------------------------- the only seeder swaps mid-stream
@pytest.mark.slow
@pytest.mark.parametrize("moment", ["flowing", "reader_waiting"])
async def test_seeder_swap_mid_stream_every_byte_right(moment: str, tmp_path: Path, settings, make_file,
                                                       make_swarm) -> None:
    """The only seeder leaves mid-stream and another with the same data joins
    (it connects to the engine's listen port, as a peer that found us through
    a tracker or the DHT would): the same HTTP response goes on to the end
    and every byte is right; no error is kept for it. ``reader_waiting``: the
    new seeder comes only once the reader has been stuck on a missing piece
    for a second (well inside TSTREAM_PIECE_TIMEOUT)."""
    running = await start_server(settings.replace(piece_timeout=20.0))
    second: LocalSwarm | None = None
    try:
        size = 48 * PIECE + 777
        src = make_file("swap.mp4", size, seed=31)
        want = sha256(src.read_bytes())
        first = make_swarm([src], upload_rate=2_000_000)       # ~6 s for the whole file
        url = f"{running.url}/api/stream?{q(magnet=first.magnet)}"
        body = Body()
        started = time.monotonic()
        pending = asyncio.ensure_future(fetch(url, streaming_callback=body, timeout=90))
        await wait_until(lambda: len(body) >= size // 5, 30, "a fifth of the stream")
        assert len(body) < size * 0.7, "the stream was not mid-way when the seeder left"
        first.close()
        left_at = len(body)
        if moment == "reader_waiting":
            # stuck: no byte for a second, the reader open with no error
            await wait_until(lambda: time.monotonic() - body.last_at > 1.0, 15, "the reader to stall")
            readers = running.kit.readers()
            assert len(readers) == 1 and readers[0].error is None and not pending.done()
            assert readers[0].position < size
        second = second_seeder(first, src, tmp_path / "seed-b")
        assert second.infohash == first.infohash
        second.handle.connect_peer(("127.0.0.1", running.kit.engine.listen_port))
        r = await asyncio.wait_for(pending, 60)
        elapsed = time.monotonic() - started
        assert r.code == 200, r.code
        assert len(body) == size and hashlib.sha256(body.buf).hexdigest() == want
        streams = await get_json(f"{running.url}/api/streams")
        assert streams["streams"] == []                          # the reader closed normally
        assert not [e for e in streams["recent_errors"] if e.get("infohash") == first.infohash]
        print(f"swap ({moment}) at byte {left_at}/{size}; response complete in {elapsed:.1f} s")
    finally:
        await running.stop()
        if second is not None:
            second.close()


# ------------------------------- libtorrent's part file fails a wanted file
@pytest.mark.slow
async def test_first_episode_of_a_pack_streams_right_after_metadata(tmp_path: Path, make_file, make_swarm) -> None:
    """Found by the PostgreSQL fault test's warm-up: streaming a file that is
    not the pack's default right after the metadata. The first pieces (that
    file's) are in flight when it is set to priority 0, finish partly in
    libtorrent's part file, and libtorrent 2.1 then failed to move them out
    ("partfile_write ... file too short"): the torrent stopped and the stream
    waited out its piece timeout, in about 4 runs of 10. Each run here is a
    fresh engine; every one must read the file byte for byte, whether or not
    the race happened (the engine recovers: Torrent.recover_part_file)."""
    from conftest import offline_engine_config
    from tstream_kit.engine import Engine, FileReader
    files = [make_file(f"ep{i}.mp4", 10 * PIECE + 1000 * i, seed=50 + i) for i in range(2)]
    want = files[0].read_bytes()
    swarm = make_swarm(files, name="pack")
    recovered = 0
    for run in range(6):
        eng = Engine(offline_engine_config(tmp_path / f"data{run}"))
        await eng.start()
        try:
            t = eng.add_magnet(swarm.magnet)
            await t.wait_metadata(10)
            assert t.default_file == 1                       # the larger one: ep0 is not wanted
            r = FileReader(t, t.file(0), piece_timeout=10)
            try:
                got = await asyncio.wait_for(r.read_exact(0, len(want)), 30)
            finally:
                r.close()
            assert got == want, f"run {run}: wrong bytes"
            assert t.error is None, t.error
            recovered += t.part_file_recoveries
        finally:
            await eng.stop()
    print(f"first episode after metadata: 6 runs byte-identical, {recovered} part-file recoveries")


# ------------------------------------------------- PostgreSQL cut off mid-use
def pg_rows(schema: str) -> list[tuple]:
    with psycopg.connect(schema_url(schema), connect_timeout=5) as c:
        return c.execute("SELECT id::text, session_id, infohash, file_index, position_s "
                         "FROM watched_torrents ORDER BY id").fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["refused", "silent"])
async def test_postgres_cut_off_streams_unaffected_no_watch_lost(outage: str, pg_schema: str, tmp_path: Path,
                                                                 settings, make_file, make_swarm) -> None:
    """A server whose history is PostgreSQL through a proxy; the proxy is cut
    (``refused``: connections reset and refused; ``silent``: accepted and never
    answered, so only libpq's connect timeout ends each attempt). During the
    outage six playbacks (three sessions × two files, each a few Range
    requests as a browser sends) and position updates: every stream's bytes
    are right and none waits on the database; once the proxy is back every
    watch is in PostgreSQL exactly once, with its last position."""
    proxy = TcpProxy("127.0.0.1", int(PG_BASE.split(":")[-1].split("/")[0]))
    url = schema_url(pg_schema, PG_BASE.replace(":5432/", f":{proxy.port}/"))
    running = await start_server(settings.replace(database_url=url))
    try:
        files = [make_file(f"ep{i}.mp4", 10 * PIECE + 1000 * i, seed=50 + i) for i in range(2)]
        datas = [f.read_bytes() for f in files]
        swarm = make_swarm(files, name="show")
        base = f"{running.url}/api/stream?"
        # the torrent is fetched before the outage, so the streams below
        # measure serving, not downloading
        for i, data in enumerate(datas):
            r = await fetch(base + q(magnet=swarm.magnet, file_index=i))
            assert r.code == 200 and r.body == data
        api_session = [await get_json(f"{running.url}/api/session", method="POST", body=b"")
                       for _ in range(3)]
        await wait_until(lambda: running.kit.history.status()["queued"] == 0, 10, "the warm-up watch")
        warm_rows = pg_rows(pg_schema)

        proxy.cut() if outage == "refused" else proxy.hang()
        timings: list[float] = []

        async def playback(s: dict, i: int) -> None:
            hdr = {"X-Session-Id": s["token"]}
            data, size = datas[i], len(datas[i])
            for start, end in ((0, size - 1), (0, 1), (size // 2, size - 1), (size - 1000, size - 1)):
                t0 = time.monotonic()
                r = await fetch(base + q(magnet=swarm.infohash, file_index=i),
                                headers={**hdr, "Range": f"bytes={start}-{end}"}, timeout=30)
                timings.append(time.monotonic() - t0)
                assert r.code == 206 and r.body == data[start:end + 1], (r.code, start, end)

        await asyncio.wait_for(asyncio.gather(*(playback(s, i) for s in api_session for i in range(2))), 60)
        # a player reports its position while the database is still down: 202, queued
        positions = {}
        post_times = []
        for n, s in enumerate(api_session):
            pos = 10.0 + n
            t0 = time.monotonic()
            r = await fetch(f"{running.url}/api/history", method="POST",
                            headers={"X-Session-Id": s["token"], "Content-Type": "application/json"},
                            body=json.dumps({"magnet": swarm.infohash, "file_index": 1, "position_s": pos}),
                            timeout=30)
            post_times.append(time.monotonic() - t0)
            assert r.code == 202, (r.code, r.body[:300])
            positions[s["session_id"]] = pos
        queued = running.kit.history.status()["queued"]
        assert queued >= 6, running.kit.history.status()
        assert max(timings) < 2.0, f"a stream waited on the dead database: {sorted(timings)[-3:]}"
        # a position update waits for at most one connection attempt (5 s
        # connect/pool timeout), never one per write queued before it
        assert max(post_times) < 12.0, post_times
        health = await get_json(f"{running.url}/api/health")
        assert health["status"] == "ok" and health["history"]["last_error"]

        proxy.restore()
        await wait_until(lambda: running.kit.history.status()["queued"] == 0, 45,
                         "the outbox to drain into PostgreSQL", step=0.2)
        rows = [r for r in pg_rows(pg_schema) if r not in warm_rows]
        sessions = {s["session_id"] for s in api_session}
        keys = [(r[1], r[2], r[3]) for r in rows]
        assert sorted(keys) == sorted((sid, swarm.infohash, i) for sid in sessions for i in range(2)), rows
        assert len(set(r[0] for r in rows)) == len(rows) == 6                 # each exactly once
        for sid, _, fi, pos in ((r[1], r[2], r[3], r[4]) for r in rows):
            assert pos == (positions[sid] if fi == 1 else 0.0)
        print(f"PostgreSQL {outage}: {len(timings)} stream requests during the outage, "
              f"slowest {max(timings) * 1000:.0f} ms; position updates {', '.join(f'{t:.1f}' for t in post_times)} s; "
              f"{queued} writes queued then delivered")
    finally:
        await running.stop()
        proxy.close()


# --------------------------------------------- Redis restarted under searches
@pytest.mark.slow
async def test_redis_restart_while_searches_run(tmp_path: Path, fake, own_redis) -> None:  # noqa: F811
    """Four clients search without pause while the server's Redis (our own
    redis-server) is stopped and started again on the same port: every
    search answers 200 with results within the provider budget, and once
    Redis is back answers are cached in it again."""
    settings = search_settings(tmp_path, fake, redis_url=own_redis.url, search_providers="nyaa", torznab="")
    running = await start_server(settings)
    cache = running.kit.search.cache
    cache.monitor_interval = cache.retry_interval = 0.2
    answers: list[tuple[int, int, float, bool]] = []
    stop = asyncio.Event()

    async def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            query = ["bunny", "sintel", "tears of steel"][(n + i) % 3]
            t0 = time.monotonic()
            r = await fetch(f"{running.url}/api/search?" + q(query=query), timeout=20)
            body = json.loads(r.body) if r.code == 200 else {}
            answers.append((r.code, body.get("count", 0), time.monotonic() - t0,
                            bool(body.get("providers", {}).get("nyaa", {}).get("cached"))))
            i += 1
            await asyncio.sleep(0.02)        # a busy client, not a benchmark

    try:
        assert (await get_json(f"{running.url}/api/health"))["redis"] == "up"
        clients = [asyncio.ensure_future(client(n)) for n in range(4)]
        await wait_until(lambda: any(a[3] for a in answers), 10, "a cached answer before the restart")
        before = len(answers)
        await asyncio.to_thread(own_redis.stop)
        down_at = len(answers)
        await asyncio.sleep(1.0)                                   # searches run with Redis gone
        during = len(answers) - down_at
        await asyncio.to_thread(own_redis.start)                   # same port, empty
        await wait_until(lambda: cache.status()["status"] == "up", 10, "Redis to be seen up again")
        back_at = len(answers)
        await wait_until(lambda: any(a[3] for a in answers[back_at:]), 10, "a cached answer after the restart")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 30)
        bad = [a for a in answers if a[0] != 200 or a[1] == 0]
        assert not bad, bad[:5]
        assert before > 0 and during > 0
        slowest = max(a[2] for a in answers)
        assert slowest < settings.search_timeout + 1.5, slowest
        # a key written after the restart is in the new Redis
        import redis
        r = redis.Redis.from_url(own_redis.url, socket_timeout=5)
        try:
            assert r.dbsize() > 0
        finally:
            r.close()
        print(f"Redis restart: {len(answers)} searches, {during} while it was down, all 200 with "
              f"results; slowest {slowest * 1000:.0f} ms")
    finally:
        stop.set()
        await running.stop()


# ------------------------------------------ SIGKILL mid-download, then restart
def _resume_have(path: Path) -> int:
    """How many pieces a resume file says are verified (0 when unreadable)."""
    try:
        params = lt.read_resume_data(path.read_bytes())
    except Exception:  # noqa: BLE001 - a file being replaced, or not there yet
        return 0
    return sum(1 for h in params.have_pieces if h)


def _get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _torrents(url: str) -> dict[str, dict]:
    return {t["infohash"]: t for t in json.loads(_get(f"{url}/api/torrents"))["torrents"]}


def _poll(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


@pytest.mark.slow
def test_sigkill_mid_download_resumes_from_resume_data(tmp_path: Path, make_file, make_swarm) -> None:
    """`tstream serve` (TSTREAM_RESUME_INTERVAL=1) downloads from a
    rate-limited seeder; once resume data with some pieces is on disk the
    process gets SIGKILL (no shutdown, no last save). A kill in the middle of
    a save is simulated too: a half-written ``.tmp`` beside the good file,
    and a truncated ``.resume`` of another torrent. Started again on the
    same data directory: the torrent is listed before anyone names it, keeps
    at least the pieces its resume data had (the seeder then sends no more
    than the missing ones), the truncated file is set aside, and a full
    stream is byte-identical."""
    size = 32 * PIECE + 123
    src = make_file("killed.mp4", size, seed=77)
    data = src.read_bytes()
    swarm = make_swarm([src], upload_rate=1_000_000)              # ~8.5 s for the whole file
    data_dir = tmp_path / "data"
    resume_file = data_dir / "resume" / f"{swarm.infohash}.resume"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_")}
    env.update(TSTREAM_ENV_FILE=str(tmp_path / "no.env"), TSTREAM_RESUME_INTERVAL="1",
               TSTREAM_PIECE_TIMEOUT="30")

    proc, url = start_server_process(data_dir, env, tmp_path / "run1.log")
    try:
        info = json.loads(_get(f"{url}/api/info?{q(magnet=swarm.magnet)}"))   # adds it; downloading starts
        assert info["infohash"] == swarm.infohash
        _poll(lambda: _resume_have(resume_file) >= 8, 30, "resume data with 8 pieces")
        assert _torrents(url)[swarm.infohash]["pieces_have"] < 33, "finished before the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    log1 = (tmp_path / "run1.log").read_text()
    assert "saved resume data of" not in log1                     # no clean shutdown happened
    saved = _resume_have(resume_file)
    assert 8 <= saved < 33
    sent_before = swarm.handle.status().total_payload_upload
    # what a kill in the middle of a save leaves: the new file half written
    good = resume_file.read_bytes()
    resume_file.with_suffix(".tmp").write_bytes(good[: len(good) // 2])
    # and what a non-atomic writer would have left: a truncated .resume
    other = resume_file.with_name("ab" * 20 + ".resume")
    other.write_bytes(good[: len(good) // 3])

    started = time.monotonic()
    proc, url = start_server_process(data_dir, env, tmp_path / "run2.log")
    try:
        first = _torrents(url)                                      # before anyone names the torrent
        assert set(first) == {swarm.infohash}, first
        t = _poll(lambda: (_torrents(url)[swarm.infohash] if _torrents(url)[swarm.infohash]
                           .get("state") not in (None, "checking_resume_data", "checking_files") else None),
                  20, "the resumed torrent to be checked")
        assert t["has_metadata"] and t["name"] == "killed.mp4"
        assert t["pieces_have"] >= saved, (t["pieces_have"], saved)
        assert other.with_suffix(".bad").exists() and not other.exists()
        swarm.set_upload_rate(0)                                    # the rest as fast as it goes
        body = _get(f"{url}/api/stream?{q(magnet=swarm.magnet)}", timeout=60)
        assert sha256(body) == sha256(data)
        sent_after = swarm.handle.status().total_payload_upload - sent_before
        missing = (33 - saved) * PIECE
        assert sent_after <= missing + 4 * PIECE, (sent_after, missing)   # resumed, not from zero
        elapsed = time.monotonic() - started
        # the next periodic save replaces the half-written .tmp (and renames it)
        _poll(lambda: not resume_file.with_suffix(".tmp").exists() and _resume_have(resume_file) == 33, 10,
              "a complete save over the half-written .tmp")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log2 = (tmp_path / "run2.log").read_text()
    assert "resumed 1 torrents" in log2, log2[-2000:]
    print(f"SIGKILL with {saved}/33 pieces in resume data; after restart the seeder sent "
          f"{sent_after / PIECE:.1f} pieces; restart + full stream {elapsed:.1f} s")
