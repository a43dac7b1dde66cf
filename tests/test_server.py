"""The HTTP server on a real loopback swarm: Range per RFC 9110, errors as
JSON, aliases, and streams that end when their client leaves."""
from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.iostream import StreamClosedError

from conftest import PIECE, sha256
from tstream_kit.server.app import RunningServer, start_server

SIZE = 23 * PIECE + 4321


async def fetch(url: str, method: str = "GET", headers: dict | None = None, **kw) -> HTTPResponse:
    client = AsyncHTTPClient(max_body_size=512 * 1024 * 1024)
    return await client.fetch(url, method=method, headers=headers or {}, raise_error=False,
                              request_timeout=60, allow_nonstandard_methods=True, **kw)


async def fetch_cut_short(url: str) -> int:
    """GET a response the server is expected to end early; returns the
    bytes received (the connection closes before Content-Length)."""
    received = 0

    def count(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    try:
        r = await fetch(url, streaming_callback=count)
        assert r.code == 599, f"the response completed: {r.code}"
    except (StreamClosedError, HTTPClientError):   # HTTPStreamClosedError
        pass
    return received


def q(**params) -> str:
    return urllib.parse.urlencode(params)


@pytest.fixture
def movie(make_file) -> Path:
    return make_file("movie.mp4", SIZE, seed=101)


async def test_full_get_and_headers(server: RunningServer, make_swarm, movie: Path) -> None:
    swarm = make_swarm([movie])
    r = await fetch(f"{server.url}/api/stream?{q(magnet=swarm.magnet)}")
    assert r.code == 200
    assert sha256(r.body) == sha256(movie.read_bytes())
    assert r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == SIZE
    assert r.headers["Content-Type"] == "video/mp4"
    assert "Content-Range" not in r.headers


async def test_200_random_ranges_while_downloading_and_after(server: RunningServer, make_swarm, movie: Path) -> None:
    data = movie.read_bytes()
    swarm = make_swarm([movie], upload_rate=3_000_000)
    url = f"{server.url}/api/stream?{q(magnet=swarm.magnet)}"
    rng = random.Random(5)
    during = 0
    for i in range(220):
        start = rng.randrange(SIZE)
        if i % 3 == 0:   # straddle a piece boundary
            start = max(0, (start // PIECE) * PIECE - rng.randrange(1, 100))
        end = min(SIZE - 1, start + rng.randrange(0, 2 * PIECE))
        torrent = server.kit.engine.get(swarm.infohash)
        incomplete = torrent is None or not torrent.has_metadata or sum(torrent.have) < torrent.num_pieces
        r = await fetch(url, headers={"Range": f"bytes={start}-{end}"})
        assert r.code == 206, r.body[:200]
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
        assert int(r.headers["Content-Length"]) == end - start + 1
        assert r.body == data[start:end + 1], (start, end)
        during += incomplete
    assert during >= 5, "all ranges were served after the download: not a while-downloading test"


@pytest.mark.parametrize("header,status,first,last", [
    ("bytes=0-", 206, 0, SIZE - 1),
    ("bytes=100-", 206, 100, SIZE - 1),
    ("bytes=-500", 206, SIZE - 500, SIZE - 1),
    ("bytes=10-20", 206, 10, 20),
    (f"bytes={SIZE - 10}-{SIZE + 1000}", 206, SIZE - 10, SIZE - 1),
    ("bytes=0-0", 206, 0, 0),
    ("bytes=garbage", 200, 0, SIZE - 1),
    ("pages=1-2", 200, 0, SIZE - 1),
    ("bytes=0-9,100-109", 200, 0, SIZE - 1),   # multi-range: whole file (documented)
    ("bytes=0-9,10-19", 206, 0, 19),           # ... unless they coalesce
])
async def test_range_forms(server: RunningServer, make_swarm, movie: Path, header, status, first, last) -> None:
    swarm = make_swarm([movie])
    r = await fetch(f"{server.url}/api/stream?{q(magnet=swarm.magnet)}", headers={"Range": header})
    assert r.code == status
    assert r.body == movie.read_bytes()[first:last + 1]
    if status == 206:
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 10}", "bytes=-0"])
async def test_unsatisfiable_range_is_416(server: RunningServer, make_swarm, movie: Path, header: str) -> None:
    swarm = make_swarm([movie])
    r = await fetch(f"{server.url}/api/stream?{q(magnet=swarm.magnet)}", headers={"Range": header})
    assert r.code == 416
    assert r.headers["Content-Range"] == f"bytes */{SIZE}"
    assert "error" in json.loads(r.body)


async def test_head_sends_the_same_headers_as_get(server: RunningServer, make_swarm, movie: Path) -> None:
    swarm = make_swarm([movie])
    url = f"{server.url}/api/stream?{q(magnet=swarm.magnet)}"
    for rng in (None, "bytes=5-99"):
        h = {"Range": rng} if rng else {}
        head = await fetch(url, method="HEAD", headers=h)
        get = await fetch(url, headers=h)
        assert head.code == get.code
        assert head.body == b""
        for name in ("Content-Length", "Content-Type", "Accept-Ranges", "Content-Range", "ETag"):
            assert head.headers.get(name) == get.headers.get(name), name


async def test_info_and_node_edition_aliases(server: RunningServer, make_file, make_swarm) -> None:
    files = [make_file("ep1.mkv", 3 * PIECE, 1), make_file("ep1.srt", 900, 2), make_file("ep2.mp4", 5 * PIECE + 1, 3)]
    swarm = make_swarm(files, name="Show")
    for path in ("/api/info", "/torrent/info"):
        r = await fetch(f"{server.url}{path}?{q(magnet=swarm.magnet)}")
        assert r.code == 200
        info = json.loads(r.body)
        assert info["infohash"] == swarm.infohash
        assert info["piece_length"] == PIECE and info["num_pieces"] == swarm.info.num_pieces()
        assert [(f["index"], f["path"], f["size"], f["mime"], f["kind"]) for f in info["files"]] == [
            (0, "Show/ep1.mkv", 3 * PIECE, "video/x-matroska", "video"),
            (1, "Show/ep1.srt", 900, "application/x-subrip", "subtitle"),
            (2, "Show/ep2.mp4", 5 * PIECE + 1, "video/mp4", "video"),
        ]
        assert info["default_file"] == 2
    r = await fetch(f"{server.url}/stream?{q(magnet=swarm.infohash, file_index=1)}")
    assert r.code == 200 and r.body == files[1].read_bytes()
    for path in ("/streams", "/api/streams"):
        assert "streams" in json.loads((await fetch(server.url + path)).body)
    for path in ("/health", "/api/health"):
        health = json.loads((await fetch(server.url + path)).body)
        assert health["status"] == "ok" and health["torrents"] == health["handles"] == 1
    r = await fetch(f"{server.url}/torrent?{q(magnet=swarm.magnet)}", method="DELETE")
    assert r.code == 200 and json.loads(r.body)["removed"] == swarm.infohash
    health = json.loads((await fetch(server.url + "/health")).body)
    assert health["torrents"] == health["handles"] == 0   # gone from libtorrent's session too


@pytest.mark.parametrize("params,status,needle", [
    ({}, 400, "missing magnet"),
    ({"magnet": "magnet:?xt=urn:btih:nothex"}, 400, "infohash"),
    ({"magnet": "http://example.com/x.torrent"}, 400, "not a magnet"),
    ({"magnet": "ab" * 20}, 404, "no torrent"),
])
async def test_bad_magnets(server: RunningServer, params, status, needle) -> None:
    for path in ("/api/stream", "/api/info"):
        r = await fetch(f"{server.url}{path}?{q(**params)}")
        assert r.code == status, r.body
        assert needle in json.loads(r.body)["error"]
        assert r.headers["Content-Type"].startswith("application/json")


async def test_bad_file_index(server: RunningServer, make_swarm, movie: Path) -> None:
    swarm = make_swarm([movie])
    for value, status in (("7", 404), ("-1", 404), ("abc", 400), ("1.5", 400)):
        r = await fetch(f"{server.url}/api/stream?{q(magnet=swarm.magnet, file_index=value)}")
        assert r.code == status, (value, r.body)
        assert "file_index" in json.loads(r.body)["error"]


async def test_metadata_timeout_is_504(tmp_path: Path, settings) -> None:
    running = await start_server(settings.replace(metadata_timeout=1.0))
    try:
        magnet = "magnet:?xt=urn:btih:" + "2" * 40 + "&x.pe=127.0.0.1:9"
        began = time.monotonic()
        r = await fetch(f"{running.url}/api/stream?{q(magnet=magnet)}")
        assert r.code == 504
        assert "metadata" in json.loads(r.body)["error"]
        assert time.monotonic() - began < 5
    finally:
        await running.stop()


async def test_unknown_endpoint_and_host_check(server: RunningServer) -> None:
    r = await fetch(server.url + "/nope")
    assert r.code == 404 and "no such endpoint" in json.loads(r.body)["error"]
    r = await fetch(server.url + "/api/health", headers={"Host": "evil.example"})
    assert r.code == 403 and "TSTREAM_ALLOWED_HOSTS" in json.loads(r.body)["error"]


async def _open_raw(server: RunningServer, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_client_disconnect_releases_stream_and_deadlines(server: RunningServer, make_file, make_swarm) -> None:
    src = make_file("long.mp4", 80 * PIECE, seed=7)
    swarm = make_swarm([src], upload_rate=1_000_000)     # 20 s to download: still going when we leave
    sock = await _open_raw(server, f"/api/stream?{q(magnet=swarm.magnet)}")
    got = 0
    loop = asyncio.get_running_loop()
    while got < 3 * PIECE:
        chunk = await loop.run_in_executor(None, sock.recv, 65536)
        assert chunk
        got += len(chunk)
    streams = json.loads((await fetch(server.url + "/api/streams")).body)["streams"]
    assert len(streams) == 1 and streams[0]["infohash"] == swarm.infohash
    torrent = server.kit.engine.get(swarm.infohash)
    assert torrent.deadline_pieces()
    sock.close()
    await _wait_for(lambda: not server.kit.readers(), 5)
    await _wait_for(lambda: not torrent.deadline_pieces(), 2)
    streams = json.loads((await fetch(server.url + "/api/streams")).body)
    assert streams["streams"] == []
    assert streams["recent_errors"] == [], "a viewer leaving is not an error"


async def test_delete_stream_ends_the_response(server: RunningServer, make_file, make_swarm) -> None:
    src = make_file("stop.mp4", 80 * PIECE, seed=8)
    swarm = make_swarm([src], upload_rate=1_000_000)
    url = f"{server.url}/api/stream?{q(magnet=swarm.magnet)}"
    pending = asyncio.ensure_future(fetch_cut_short(url))
    await _wait_for(lambda: server.kit.readers(), 10)
    r = await fetch(url + "&file_index=0", method="DELETE")
    assert json.loads(r.body)["stopped"] == 1
    received = await asyncio.wait_for(pending, 10)        # cut short, not hung
    assert received < 80 * PIECE
    assert not server.kit.readers()


async def test_delete_torrent_with_files(server: RunningServer, make_swarm, movie: Path) -> None:
    swarm = make_swarm([movie])
    r = await fetch(f"{server.url}/api/stream?{q(magnet=swarm.magnet)}")
    assert r.code == 200
    on_disk = server.kit.engine.download_dir / "movie.mp4"
    assert on_disk.exists()
    r = await fetch(f"{server.url}/api/torrent?{q(magnet=swarm.magnet, delete_files='true')}", method="DELETE")
    assert r.code == 200
    await _wait_for(lambda: not on_disk.exists(), 5)
    r = await fetch(f"{server.url}/api/torrent?{q(magnet=swarm.magnet)}", method="DELETE")
    assert r.code == 404


async def test_peers_leave_mid_stream_ends_cleanly_with_error(tmp_path: Path, settings, make_file, make_swarm) -> None:
    running = await start_server(settings.replace(piece_timeout=2.0))
    try:
        src = make_file("cut.mp4", 60 * PIECE, seed=9)
        swarm = make_swarm([src], upload_rate=1_500_000)
        url = f"{running.url}/api/stream?{q(magnet=swarm.magnet)}"
        pending = asyncio.ensure_future(fetch_cut_short(url))
        await _wait_for(lambda: any(r.bytes_read > 0 for r in running.kit.readers()), 10)
        swarm.close()
        left = time.monotonic()
        received = await asyncio.wait_for(pending, 20)
        waited = time.monotonic() - left
        assert 0 < received < 60 * PIECE
        # bounded by TSTREAM_PIECE_TIMEOUT (2 s here): the wait for the missing
        # piece began at most one piece time before the seeder left
        assert 1.0 <= waited <= 2.0 + 4.0, waited
        streams = json.loads((await fetch(running.url + "/api/streams")).body)
        errors = streams["recent_errors"]
        assert errors and "no connected peer" in errors[-1]["error"]
        assert errors[-1]["error"].startswith("no data for 2 s") and errors[-1]["infohash"] == swarm.infohash
        assert streams["streams"] == []                 # the reader is closed, not left waiting
    finally:
        await running.stop()


async def test_peers_and_piece_map(server: RunningServer, make_file, make_swarm) -> None:
    src = make_file("map.mp4", 40 * PIECE, seed=12)
    swarm = make_swarm([src], upload_rate=2_000_000)
    url = f"{server.url}/api/stream?{q(magnet=swarm.magnet)}"
    pending = asyncio.ensure_future(fetch(url, headers={"Range": f"bytes={20 * PIECE}-"}))
    await _wait_for(lambda: any(r.bytes_read for r in server.kit.readers()), 10)
    peers = json.loads((await fetch(f"{server.url}/api/peers?{q(magnet=swarm.infohash)}")).body)["peers"]
    assert any(p["address"].endswith(f":{swarm.port}") for p in peers)
    m = json.loads((await fetch(f"{server.url}/api/pieces?{q(magnet=swarm.infohash)}")).body)
    assert m["count"] == 40 and len(m["pieces"]) == 40 and set(m["pieces"]) <= set("hdr.")
    assert m["pieces"][20] == "h" and "h" in m["pieces"]
    assert m["readers"] and m["readers"][0]["position"] >= 20 * PIECE
    assert (await fetch(f"{server.url}/api/pieces?{q(magnet='9' * 40)}")).code == 404
    r = await asyncio.wait_for(pending, 60)
    assert r.code == 206 and r.body == src.read_bytes()[20 * PIECE:]


async def test_health_reports_each_indexers_last_answer(server: RunningServer) -> None:
    health = json.loads((await fetch(server.url + "/api/health")).body)
    assert health["search"]["last"] == {}
    r = await fetch(f"{server.url}/api/search?{q(query='anything at all')}")
    assert r.code == 200
    health = json.loads((await fetch(server.url + "/api/health")).body)
    last = health["search"]["last"]
    assert set(last) == set(json.loads(r.body)["providers"])
    assert all(v["status"] == "ok" and "ms" in v for v in last.values())


async def test_complete_files_go_out_with_sendfile(server: RunningServer, make_swarm, movie: Path) -> None:
    from tstream_kit.server.streaming import STATS
    data = movie.read_bytes()
    swarm = make_swarm([movie])
    url = f"{server.url}/api/stream?{q(magnet=swarm.magnet)}"
    assert (await fetch(url)).body == data                  # downloads it
    torrent = server.kit.engine.get(swarm.infohash)
    await _wait_for(lambda: all(torrent.on_disk), 10)        # flushed: pread/sendfile-able
    before = STATS["sendfile_bytes"]
    for start, end in ((0, SIZE - 1), (PIECE - 3, 5 * PIECE + 7), (SIZE - 10, SIZE - 1)):
        r = await fetch(url, headers={"Range": f"bytes={start}-{end}"})
        assert r.code == 206 and r.body == data[start:end + 1]
        assert int(r.headers["Content-Length"]) == end - start + 1
    assert STATS["sendfile_bytes"] - before == SIZE + (5 * PIECE + 7 - PIECE + 3 + 1) + 10


async def test_viewers_dropping_sendfile_streams_break_nothing(settings, make_file, make_swarm, caplog) -> None:
    """Found by bench/load_bench.py's soak: viewers that drop streams of a complete file (sent
    with sendfile) while other requests come in. Two bugs:

    * sendfile() met EPIPE/ECONNRESET on a socket Tornado still thought open; the handler
      returned and Tornado's auto-finish raised "Tried to write N bytes less than
      Content-Length": an ERROR traceback per dropped stream;
    * the writer registered on the socket's fd to wait for room stayed in the selector after
      Tornado closed the connection (Tornado removes only its own registrations); the next
      accepted connection got the same fd number, Tornado's add_reader met the stale key, epoll
      said ENOENT, and that connection was dropped without a response.

    Three threads drop streams at random offsets after 64 KiB-2 MiB, three others ask
    /api/health on fresh connections, for 3 s: every answer must come, nothing logged as an error.
    """
    import logging
    import threading
    caplog.set_level(logging.ERROR)
    running = await start_server(settings.replace(rate_limit=0))
    try:
        src = make_file("drop.mp4", 80 * PIECE, seed=11)
        swarm = make_swarm([src])
        assert (await fetch(f"{running.url}/api/stream?{q(magnet=swarm.magnet)}")).code == 200
        torrent = running.kit.engine.get(swarm.infohash)
        await _wait_for(lambda: all(torrent.on_disk), 10)        # from now on: sendfile
        stop = time.monotonic() + 3
        failures: list = []
        counts = {"dropped": 0, "answered": 0}

        def dropper(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop:
                with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
                    sock.sendall(f"GET /api/stream?{q(magnet=swarm.infohash)} HTTP/1.1\r\n"
                                 f"Host: 127.0.0.1\r\nRange: bytes={rng.randrange(60 * PIECE)}-\r\n\r\n".encode())
                    want, got = rng.choice([64 * 1024, 512 * 1024, 2 << 20]), 0
                    while got < want:
                        data = sock.recv(1 << 20)
                        if not data:
                            failures.append("a stream ended early")
                            break
                        got += len(data)
                counts["dropped"] += 1

        def asker() -> None:
            while time.monotonic() < stop:
                with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
                    sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    head = sock.recv(100)
                if not head.startswith(b"HTTP/1.1 200"):
                    failures.append(f"/api/health answered {head[:40]!r}")
                counts["answered"] += 1

        threads = [threading.Thread(target=dropper, args=(i,)) for i in range(3)]
        threads += [threading.Thread(target=asker) for _ in range(3)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            await asyncio.sleep(0.05)
        assert counts["dropped"] > 20 and counts["answered"] > 20, counts
        assert failures == [], f"{len(failures)} failures, e.g. {failures[:3]}"
        await _wait_for(lambda: not running.kit.readers(), 5)
        stale = []
        for key in list(asyncio.get_running_loop()._selector.get_map().values()):   # type: ignore[attr-defined]
            try:
                os.fstat(key.fd)
            except OSError:
                stale.append(key.fd)
        assert stale == [], f"selector keys of closed fds: {stale}"
        errors = [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], f"{len(errors)} errors logged, e.g. {errors[:3]}"
    finally:
        await running.stop()


async def test_sendfile_never_uses_the_fd_of_a_closed_reader(tmp_path: Path) -> None:
    """Found by bench/load_bench.py's soak (a torrent removed while its stream waited for the
    client): FileReader.close() closes the reader's fd, and the send loop went on with the stale
    number: EBADF and an ERROR traceback, or, had the number been reused, another file's bytes
    on the wire. The loop must stop with ReaderClosed and send nothing."""
    from types import SimpleNamespace

    from tstream_kit.engine import ReaderClosed
    from tstream_kit.server.streaming import _Sendfile

    f = tmp_path / "some.bin"
    f.write_bytes(b"x" * 4096)
    a, b = socket.socketpair()
    fd = os.open(f, os.O_RDONLY)
    try:
        sender = _Sendfile.__new__(_Sendfile)
        sender.conn = SimpleNamespace(_expected_content_remaining=4096)
        sender.stream = SimpleNamespace(closed=lambda: False)
        sender.sock_fd = a.fileno()
        reader = SimpleNamespace(closed=True, error="torrent removed", file=SimpleNamespace(path="some.bin"))
        with pytest.raises(ReaderClosed, match="torrent removed"):
            await sender.send(fd, 0, 4096, reader)
        b.setblocking(False)
        with pytest.raises(BlockingIOError):
            b.recv(1)                                   # nothing was sent
        assert sender.conn._expected_content_remaining == 4096
    finally:
        os.close(fd)
        a.close()
        b.close()
