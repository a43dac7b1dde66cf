"""tstream_kit.client against real servers: an embedded one (a kit and
Tornado in a background thread), a standalone URL, and a real Jupyter server
with the extension (discovery)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PIECE
from tstream_kit import client as client_mod
from tstream_kit.client import (ApiError, Client, ClientError, ClientTimeout, EmbeddedServer, ServerNotFound,
                                connect)
from tstream_kit.config import Settings


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(Settings.from_env({}, data_dir=tmp_path / "data", port=0).offline())
    yield server
    server.stop()


@pytest.fixture
def client(embedded: EmbeddedServer) -> Client:
    return Client(embedded.url, timeout=30)


def test_all_exported_names_exist() -> None:
    for name in client_mod.__all__:
        assert hasattr(client_mod, name), name


def test_stream_url_relative_inside_jupyter_absolute_standalone() -> None:
    ih = "ab" * 20
    inside = Client("http://127.0.0.1:8888/lab-base/tstream", browser_base="/lab-base/tstream", token="t")
    assert inside.stream_url(ih, 2) == f"/lab-base/tstream/api/stream?magnet={ih}&file_index=2"
    assert inside.stream_url(ih, for_browser=False) == f"http://127.0.0.1:8888/lab-base/tstream/api/stream?magnet={ih}"
    alone = Client("http://127.0.0.1:8080/")
    url = alone.stream_url("magnet:?xt=urn:btih:" + ih)
    assert url.startswith("http://127.0.0.1:8080/api/stream?magnet=magnet%3A%3Fxt%3Durn%3Abtih%3A")


@pytest.mark.slow
def test_torrent_calls_against_a_real_server(client: Client, make_file, make_swarm) -> None:
    src = make_file("clip.mp4", 6 * PIECE + 11, seed=3)
    swarm = make_swarm([src])
    assert client.health()["status"] == "ok"
    info = client.info(swarm.magnet)
    assert info["infohash"] == swarm.infohash and info["files"][0]["path"] == "clip.mp4"
    assert info["default_file"] == 0 and info["total_size"] == src.stat().st_size

    # the URL a browser would use (absolute for a standalone server) serves the bytes
    url = client.stream_url(swarm.magnet, 0)
    req = urllib.request.Request(url, headers={"Range": "bytes=100-"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 206 and r.read() == src.read_bytes()[100:]

    pieces = client.pieces(swarm.magnet, 0)
    assert pieces["count"] == 7 and set(pieces["pieces"]) <= set("hdr.")
    assert pieces["infohash"] == swarm.infohash
    assert isinstance(client.peers(swarm.magnet), list)
    assert {"streams", "recent_errors"} <= set(client.streams())
    assert any(t["infohash"] == swarm.infohash for t in client.torrents())
    # the catalogue learned it from /api/info: search finds it offline
    found = client.search("clip", provider="catalog")
    assert [r["infohash"] for r in found["results"]] == [swarm.infohash]
    assert client.remove(swarm.magnet)["removed"] == swarm.infohash
    with pytest.raises(ApiError) as e:
        client.pieces(swarm.infohash)
    assert e.value.status == 404 and "no torrent" in e.value.message


@pytest.mark.slow
def test_history_calls_share_the_session_of_the_stream_url(client: Client, make_file, make_swarm) -> None:
    src = make_file("show.mp4", 3 * PIECE, seed=4)
    swarm = make_swarm([src])
    client.info(swarm.magnet)
    assert client.resume(swarm.magnet, 0)["found"] is False
    # the browser's request (session in the URL) starts a watch in this client's session...
    with urllib.request.urlopen(client.stream_url(swarm.magnet, 0, with_session=True), timeout=30) as r:
        assert len(r.read()) == src.stat().st_size
    # ...and the player's position reports move that same watch
    saved = client.record(swarm.magnet, file_index=0, position_s=12.5, duration_s=60.0, title="Show")
    assert saved["saved"] is True
    resume = client.resume(swarm.magnet, 0)
    assert resume["found"] and resume["position_s"] == 12.5 and resume["duration_s"] == 60.0
    watches = client.history()["watches"]
    assert len(watches) == 1 and watches[0]["infohash"] == swarm.infohash
    assert watches[0]["position_s"] == 12.5
    popular = client.popular(days=1)
    assert popular[0]["infohash"] == swarm.infohash and popular[0]["watches"] == 1
    # another client is another session: it sees none of it
    assert Client(client.base_url).history()["watches"] == []
    # a given token is reused (a notebook restarted with TSTREAM_SESSION keeps its history)
    again = Client(client.base_url, session=client.session_token())
    assert again.resume(swarm.magnet, 0)["position_s"] == 12.5


def test_errors_are_typed_with_the_server_message(client: Client) -> None:
    with pytest.raises(ApiError) as e:
        client.info("not a magnet")
    assert e.value.status == 400 and "not a magnet link or an infohash" in e.value.message
    with pytest.raises(ApiError) as e:
        client.peers("cd" * 20)
    assert e.value.status == 404 and "no torrent" in e.value.message
    assert isinstance(e.value, ClientError)


def test_record_of_a_negative_position_is_clamped(client: Client) -> None:
    out = client.record("ab" * 20, file_index=0, position_s=-3.0, title="x")
    assert out["watch"]["position_s"] == 0.0


def test_unreachable_and_silent_servers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClientError) as e:
        Client(f"http://127.0.0.1:{port}", timeout=2).health()
    assert not isinstance(e.value, ApiError) and "cannot reach" in str(e.value)
    # a server that accepts and never answers: the call's timeout ends it
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        started = time.monotonic()
        with pytest.raises(ClientTimeout):
            Client(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5).health()
        assert time.monotonic() - started < 5


def test_discovery_uses_tstream_url(embedded: EmbeddedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    monkeypatch.setenv("TSTREAM_URL", embedded.url + "/")
    c = connect()
    assert c.kind == "url" and c.base_url == embedded.url and c.browser_base == embedded.url
    monkeypatch.setenv("TSTREAM_URL", "http://127.0.0.1:9")
    with pytest.raises(ServerNotFound, match="TSTREAM_URL"):
        connect()
    monkeypatch.delenv("TSTREAM_URL")
    with pytest.raises(ServerNotFound, match="no tstream server"):
        connect(embedded=False)


@pytest.mark.slow
def test_discovery_starts_an_embedded_server_in_a_plain_process(tmp_path: Path) -> None:
    from jupyter_support import offline_env
    code = ("from tstream_kit.client import connect; c = connect(); h = c.health();"
            "print(c.kind, c.base_url, h['status'], flush=True)")
    out = subprocess.run([sys.executable, "-c", code], env=offline_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kind, url, status = out.stdout.split()
    assert kind == "embedded" and url.startswith("http://127.0.0.1:") and status == "ok"
    assert "Traceback" not in out.stderr     # and it stopped cleanly at exit


@pytest.mark.slow
def test_discovery_finds_the_jupyter_server_of_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_support import jupyter_server
    with jupyter_server(tmp_path) as server:
        # what a kernel started by that server sees
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", server.env["JUPYTER_RUNTIME_DIR"])
        monkeypatch.setenv("JPY_PARENT_PID", str(server.pid))
        monkeypatch.setenv("TSTREAM_URL", "http://127.0.0.1:9")   # the extension comes first
        c = connect()
        assert c.kind == "jupyter", server.log_tail()
        assert c.base_url == f"{server.base}/tstream" and c.token == server.token
        assert c.browser_base == "/tstream"
        assert c.health()["status"] == "ok"
        assert c.stream_url("ab" * 20).startswith("/tstream/api/stream?")
        # without the token Jupyter refuses: the client says so in words
        with pytest.raises(ApiError) as e:
            Client(c.base_url).health()
        assert e.value.status == 403 and "log in" in e.value.message
        # another process's kernel (a different parent) does not match
        monkeypatch.setenv("JPY_PARENT_PID", "1")
        assert client_mod.find_jupyter_server() is None
