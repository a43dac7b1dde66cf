"""Widgets at the Python level, against an embedded server on loopback:
SearchBox -> Watch -> Player wiring, messages, resume and position reports,
StatsPanel data and its refresh loop (started on the running loop, cancelled
on close)."""
from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PIECE
from tstream_kit.client import Client, EmbeddedServer
from tstream_kit.config import Settings
from tstream_kit.widgets import Player, SearchBox, StatsPanel, describe_response

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with socket.socket() as s:      # a Torznab indexer that refuses connections: a failing provider
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = Settings.from_env({}, data_dir=tmp_path / "data", port=0, search_timeout=3.0,
                                 torznab=f"deadidx=http://127.0.0.1:{dead}/api|KEY").offline()
    server = EmbeddedServer(settings)
    yield server
    server.stop()


@pytest.fixture
def client(embedded: EmbeddedServer) -> Client:
    return Client(embedded.url, timeout=30)


@pytest.fixture
def clip(make_file, make_swarm, client: Client):
    src = make_file("Widget Clip.mp4", 5 * PIECE + 7, seed=11)
    swarm = make_swarm([src])
    client.info(swarm.magnet)            # catalogued: search finds it
    return swarm


def test_search_watch_click_plays_in_the_player(client: Client, clip) -> None:
    player = Player(client)
    box = SearchBox(client, player=player)
    seen = []
    box.on_watch(seen.append)
    assert "catalog" in box.provider_box.options and "deadidx" in box.provider_box.options
    answer = box.search("widget clip", provider="catalog")
    assert answer and [r["infohash"] for r in box.results] == [clip.infohash]
    assert "1 result for 'widget clip'" in box.message.value.replace("&#x27;", "'")
    assert len(box.watch_buttons) == 1
    box.watch_buttons[0].click()                   # what the browser's click does
    assert [r["infohash"] for r in seen] == [clip.infohash]
    assert player.magnet == seen[0]["magnet"] and player.title == "Widget Clip.mp4"
    assert player.file_index == 0 and [f["path"] for f in player.files] == ["Widget Clip.mp4"]
    assert player.src.startswith(client.base_url + "/api/stream?") and "session=" in player.src
    assert player.state == "loading" and player.message == "" and player.start_at == 0.0


def test_search_messages_for_no_results_and_a_failing_provider(client: Client, clip) -> None:
    box = SearchBox(client)
    box.search("nothing like this", provider="catalog")
    assert "No results for" in box.message.value and box.table.children == ()
    box.search("widget clip", provider="all providers")   # every provider: the dead indexer fails
    text = box.message.value
    assert "1 result" in text and "deadidx failed" in text, text
    assert len(box.watch_buttons) == 1              # the catalogue still answered
    assert describe_response({"query": "q", "count": 0, "results": [], "providers": {}, "ms": 1}) \
        == "No results for 'q'."


def test_player_resumes_and_reports_position(client: Client, clip) -> None:
    player = Player(client, clip.magnet, report_interval=0.0)
    # the browser plays, reports position, pauses
    player.duration = 30.0
    player.state = "playing"
    player.position = 4.0
    player.position = 9.0
    player.state = "paused"
    assert player.reports >= 2
    assert client.resume(clip.magnet, 0)["position_s"] == 9.0
    # a new player on the same file starts where the session stopped
    again = Player(client, clip.magnet)
    assert again.start_at == 9.0 and again.position == 9.0
    # near the end: start again
    client.record(clip.magnet, file_index=0, position_s=28.0, duration_s=30.0)
    assert Player(client, clip.magnet).start_at == 0.0


def test_player_says_why_a_torrent_cannot_load(client: Client) -> None:
    player = Player(client)
    player.play("magnet:?xt=urn:btih:nonsense")
    assert player.state == "error" and "Cannot load this torrent" in player.message
    assert "btih" in player.message or "magnet" in player.message


def test_player_file_picker_switches_file(client: Client, make_file, make_swarm) -> None:
    a = make_file("pack/a.mp4", 3 * PIECE, seed=1)
    b = make_file("pack/b.mp4", 4 * PIECE, seed=2)
    swarm = make_swarm([a, b], name="pack")
    player = Player(client, swarm.magnet)
    assert len(player.files) == 2
    other = next(f["index"] for f in player.files if f["index"] != player.file_index)
    player.file_index = other                          # the browser's <select>
    assert f"file_index={other}" in player.src


def test_stats_panel_data(client: Client, clip) -> None:
    import urllib.request
    urllib.request.urlopen(client.stream_url(clip.magnet, 0), timeout=30).read()
    panel = StatsPanel(client, clip.magnet, 0)
    panel.refresh()
    assert panel.infohash == clip.infohash and panel.file_index == 0
    assert panel.pieces == "h" * 6 and panel.have == 6 and panel.piece_length == PIECE
    assert panel.refreshes == 1 and panel.updated_at > 0
    first = panel.updated_at
    panel.refresh()
    assert panel.refreshes == 2 and panel.updated_at >= first


async def test_refresh_loops_run_on_the_loop_and_stop_on_close(client: Client, clip) -> None:
    player = await asyncio.to_thread(Player, client, clip.magnet, interval=0.2)
    panel = await asyncio.to_thread(StatsPanel, client, interval=0.2)
    panel.follow(player)                         # no loop in that thread: follow starts it here
    assert panel.refreshing
    deadline = time.monotonic() + 10
    while panel.refreshes < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert panel.refreshes >= 3 and panel.magnet == player.magnet
    task = panel._refresher.task
    panel.close()
    await asyncio.sleep(0.05)
    assert task is not None and task.cancelled() and not panel.refreshing
    count = panel.refreshes
    await asyncio.sleep(0.5)
    assert panel.refreshes == count
    player.close()
