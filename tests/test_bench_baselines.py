"""Smoke tests for bench/baselines.py: a real nginx, a real seeder and a real libtorrent download."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

# bench/ is not an installed package: make it importable however pytest was started.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bench import baselines  # noqa: E402
from tstream_kit import mediagen


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def nginx_bin():
    if not os.access(baselines.NGINX_BIN, os.X_OK):
        msg = (f"nginx not found at {baselines.NGINX_BIN}: install Debian's nginx-light "
               "(CI does) or set TSTREAM_NGINX")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg + " (skipped locally because CI is unset)")
    return baselines.NGINX_BIN


@pytest.mark.slow
def test_nginx_serves_file_and_numbers_are_sane(nginx_bin, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(8 * 1024 * 1024 + 123)
    (root / "blob.bin").write_bytes(data)
    with baselines.Nginx(root, nginx=nginx_bin) as ng:
        port, proc = ng.port, ng.proc
        url = ng.url_for("blob.bin")
        assert url == f"http://127.0.0.1:{port}/blob.bin"

        r = baselines.http_get_throughput(url)
        assert r["status"] == 200
        assert r["bytes"] == len(data) and r["complete"]
        assert int(r["headers"]["content-length"]) == len(data)
        assert 0 < r["ttfb_s"] <= r["first_body_byte_s"] <= r["seconds"] < 30
        assert r["mb_per_s"] == pytest.approx(len(data) / 1e6 / r["seconds"])
        assert r["mb_per_s"] > 50  # loopback from page cache; GB/s in practice

        r = baselines.http_get_throughput(url, range_header="bytes=100-199")
        assert r["status"] == 206 and r["bytes"] == 100
        assert r["headers"]["content-range"] == f"bytes 100-199/{len(data)}"

        r = baselines.http_get_throughput(url, method="HEAD")
        assert r["status"] == 200 and r["bytes"] == 0

        assert baselines.http_get_throughput(ng.url_for("missing.bin"))["status"] == 404
    assert proc.poll() is not None, "nginx master still running after exit"
    assert not _port_open(port)


def test_nginx_missing_binary_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nginx not found"):
        baselines.Nginx(tmp_path, nginx=str(tmp_path / "no-nginx")).start()


class _ChunkedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chunks = [b"a" * 10, b"b" * 70000, b"c" * 3]

    def do_GET(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for c in self.chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


def test_http_get_throughput_counts_chunked_bodies():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChunkedHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        r = baselines.http_get_throughput(f"http://127.0.0.1:{server.server_port}/x", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert r["status"] == 200 and r["complete"]
    assert r["bytes"] == sum(map(len, _ChunkedHandler.chunks))


class _PlainHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = bytes(range(256)) * 4099   # > 1 MiB: several reads

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("handler", [_ChunkedHandler, _PlainHandler])
def test_http_get_throughput_body_sink_sees_exactly_the_payload(handler):
    """The load benchmark checks every byte through ``body_sink`` (a sha256): the sink must get
    the payload in order, without chunk framing or headers."""
    expected = b"".join(handler.chunks) if handler is _ChunkedHandler else handler.body
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    h = hashlib.sha256()
    try:
        r = baselines.http_get_throughput(f"http://127.0.0.1:{server.server_port}/x", timeout=10,
                                          body_sink=h.update)
    finally:
        server.shutdown()
        server.server_close()
    assert r["complete"] and r["bytes"] == len(expected)
    assert h.hexdigest() == hashlib.sha256(expected).hexdigest()


@pytest.fixture(scope="module")
def seeded_movie(tmp_path_factory):
    """A ~5 MB real MP4 in its own directory, seeded by a child process."""
    cache = tmp_path_factory.mktemp("media-cache")
    src = tmp_path_factory.mktemp("seed")
    movie = mediagen.make_mp4(src / "movie.mp4", seconds=5, video_bitrate="8M", cache_dir=cache)
    assert 3_000_000 < movie.stat().st_size < 9_000_000
    with baselines.start_seeder(movie) as seeder:
        yield movie, seeder
    assert seeder.proc.poll() is not None, "seeder still running after stop()"


@pytest.mark.slow
@pytest.mark.parametrize("source", ["magnet", "torrent"])
def test_plain_libtorrent_download_matches_source(seeded_movie, tmp_path, source):
    movie, seeder = seeded_movie
    assert f"x.pe=127.0.0.1:{seeder.port}" in seeder.magnet
    assert seeder.magnet.startswith(f"magnet:?xt=urn:btih:{seeder.infohash}")
    what = seeder.magnet if source == "magnet" else seeder.torrent_bytes
    r = baselines.plain_libtorrent_download(
        what, save_dir=tmp_path / "dl", peers=[("127.0.0.1", seeder.port)], timeout=60)

    got = tmp_path / "dl" / "movie.mp4"
    assert _sha256(got) == _sha256(movie)
    size = movie.stat().st_size
    assert r["bytes"] == size and r["files"] == ["movie.mp4"]
    assert r["infohash"] == seeder.infohash
    assert r["piece_length"] == baselines.PIECE_SIZE
    assert r["error"] is None
    if source == "torrent":
        assert r["seconds_to_metadata"] == 0.0
    assert 0 <= r["seconds_to_metadata"] <= r["seconds_to_first_piece"]
    assert r["seconds_to_first_piece"] <= r["seconds_to_complete"] < 60
    assert r["mb_per_s_total"] == pytest.approx(size / 1e6 / r["seconds_to_complete"])
    assert r["mb_per_s_total"] > 0
    if r["seconds_to_complete"] > r["seconds_to_first_piece"]:
        assert r["mb_per_s_after_first_piece"] >= r["mb_per_s_total"]


@pytest.mark.slow
def test_seed_in_subprocess_tuple_api_and_stop(tmp_path):
    f = tmp_path / "small.bin"
    f.write_bytes(os.urandom(600_000))
    proc, magnet, port = baselines.seed_in_subprocess(f)
    try:
        assert magnet.endswith(f"&x.pe=127.0.0.1:{port}") and "&dn=small.bin" in magnet
        assert _port_open(port)
    finally:
        proc.stdin.close()  # the documented way to stop it
        proc.wait(timeout=15)
        proc.stdout.close()
    assert proc.returncode == 0


def test_download_failure_raises(tmp_path):
    # Nobody listens on this peer and the magnet has no metadata source: the worker times out.
    port = baselines._free_port()
    with pytest.raises(RuntimeError, match="timeout"):
        baselines.plain_libtorrent_download(
            "magnet:?xt=urn:btih:" + "ab" * 20, save_dir=tmp_path / "dl",
            peers=[("127.0.0.1", port)], timeout=2)
