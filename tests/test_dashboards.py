"""The dashboards' Python side without a browser: WatchApp and MonitorApp
against a real (embedded) tstream server and a real loopback seeder; the
HTML they build escapes every stranger's string; `tstream dashboard`'s
arguments; the notebooks only display the apps."""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tstream_kit.client import Client, EmbeddedServer
from tstream_kit.config import Settings
from tstream_kit.dashapps import MonitorApp, WatchApp
from tstream_kit.dashapps.common import esc
from tstream_kit.dashapps.monitor import deps_html, streams_html, torrents_html
from tstream_kit.dashboard import PAGES, dashboards_dir, server_argv
from tstream_kit.mediagen import make_mp4

EVIL = "<img src=x onerror=alert(1)>"
REPO = Path(__file__).resolve().parent.parent


def no_markup(text: str) -> None:
    assert "<img" not in text and "onerror=alert(1)>" not in text.replace("&gt;", ""), text


@pytest.fixture
def embedded(tmp_path: Path):
    server = EmbeddedServer(Settings.from_env({}, data_dir=tmp_path / "data", port=0, host="127.0.0.1").offline())
    yield server
    server.stop()


def test_notebooks_only_display_the_apps() -> None:
    for name, app in zip(PAGES, ("WatchApp", "MonitorApp")):
        nb = nbformat.read(dashboards_dir() / name, as_version=4)
        code = "".join(c.source for c in nb.cells if c.cell_type == "code")
        assert f"from tstream_kit.dashapps import {app}" in code and code.rstrip().endswith(f"{app}()")
        assert not [c for c in nb.cells if c.cell_type == "markdown"]   # Voila would show them on the page


def test_server_argv_loads_both_extensions_and_culls() -> None:
    argv = server_argv(root=Path("/x"), port=1234, token="t", allow_root=False)
    joined = " ".join(argv)
    assert "'voila': True" in joined and "'tstream_kit': True" in joined
    assert "--MappingKernelManager.cull_idle_timeout=30" in argv and "--ServerApp.port=1234" in argv
    assert "--VoilaConfiguration.template=tstream" in argv and "--allow-root" not in argv


def test_template_has_no_cdn() -> None:
    tpl = (REPO / "tstream_kit/dashapps/share/voila/templates/tstream/index.html.j2").read_text()
    code = re.sub(r"\{#.*?#\}", "", tpl, flags=re.S)       # Jinja comments
    assert "cdn" not in code.lower() and "https://" not in code


def test_tables_escape_titles_files_clients_and_errors() -> None:
    t = {"infohash": "a" * 40, "name": EVIL, "state": "downloading", "progress": 0.5, "total_wanted": 10 << 20,
         "download_rate": 2 << 20, "upload_rate": 0, "num_peers": 1, "num_seeds": 1, "readers": 1,
         "all_time_upload": 0, "all_time_download": 5 << 20, "error": EVIL}
    html = torrents_html([t], "a" * 40)
    no_markup(html)
    assert "2.0 MiB/s" in html and "50.0%" in html and "tsd-selected" in html
    s = {"infohash": "a" * 40, "path": EVIL + ".mp4", "client": EVIL, "size": 1 << 20, "position": 1 << 19,
         "buffer_ahead_s": 3.25, "buffer_ahead_bytes": 300_000, "bytes_read": 1 << 19, "stalls": 2,
         "started_at": 0}
    html = streams_html({"streams": [s], "recent_errors": [{"path": EVIL, "error": EVIL}]}, {"a" * 40: EVIL})
    no_markup(html)
    assert "3.2 s" in html and "293.0 KiB" in html and "512.0 KiB of 1.0 MiB" in html
    html = deps_html({"status": "ok", "history": {"store": "postgres", "last_error": EVIL, "queued": 3},
                      "redis": "down", "cache": {}, "search": {"providers": ["nyaa"],
                                                               "last": {"nyaa": {"status": "error", "error": EVIL}}}})
    no_markup(html)
    assert "PostgreSQL" in html and "down" in html


def test_empty_states_are_messages() -> None:
    assert "No torrents in the engine." in torrents_html([])
    assert "No active streams." in streams_html({"streams": [], "recent_errors": []})


@pytest.mark.slow
def test_apps_against_a_real_server(embedded, make_swarm, tmp_path: Path) -> None:
    client = Client(embedded.url)
    clip = make_mp4(seconds=4, width=160, height=90, video_bitrate="200k", faststart=True, seed=3)
    named = tmp_path / "src" / f"{EVIL}.mp4"
    named.parent.mkdir(parents=True)
    named.write_bytes(clip.read_bytes())
    swarm = make_swarm([named])
    embedded.call(lambda r: r.kit.search.remember_torrent_bytes(swarm.torrent_bytes, magnet=swarm.magnet))

    app = WatchApp(client)
    # empty states before anything was watched
    app.presence.hello("")                 # no loop: lists drawn at once
    session = app.presence.session
    assert session and app.player.client._session == session
    texts = lambda box: " ".join(getattr(c, "value", "") for c in box.children)  # noqa: E731
    assert "Nothing to continue yet." in texts(app.continue_box)
    assert "Nothing has been watched" in texts(app.popular_box)
    app.search_box.search("zzzz nothing matches")
    assert "No results for" in app.search_box.message.value and "tsd-empty" in app.search_box.message.value
    app.search_box.search("onerror")
    assert len(app.search_box.results) == 1
    for c in app.search_box.table.children:
        no_markup(getattr(c, "value", ""))
    app.search_box.watch(0)                # Watch -> the player
    assert app.stage.children == (app.player,) and app.player.src
    # the browser fetches the stream with the page's session: a watch in this session's history
    url = client.base_url + app.player.src[len(client.browser_base):] if not app.player.src.startswith("http") \
        else app.player.src
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert len(resp.read()) == named.stat().st_size
    app.refresh_lists()
    assert "Resume" in [c.children[1].description for c in app.continue_box.children]
    for c in app.continue_box.children + app.popular_box.children:
        no_markup(c.children[0].value)
    # the same browser (its stored session) sees the same history; a forged one gets a fresh session
    again = WatchApp(client)
    again.presence.hello(session)
    assert again.presence.session == session
    forged = WatchApp(client)
    forged.presence.hello(session[:-2] + "xx")
    assert forged.presence.session and forged.presence.session != session
    for a in (app, again, forged):
        a.close_all()

    from tstream_kit.store.history import open_store
    mon = MonitorApp(client, store=open_store("", tmp_path / "data"))
    mon.presence.hello("")
    assert mon.refreshes >= 1 and mon.selected == swarm.infohash
    no_markup(mon.torrents.value)
    assert "tsd-torrents" in mon.torrents.value and "No active streams." in mon.streams.value
    assert "SQLite" in mon.deps.value and "Redis" in mon.deps.value and "catalog" in mon.deps.value
    charts = mon.charts.children
    assert len(charts) == 2 and all(len(row.children) == 2 for row in charts), charts
    top = charts[0].children[0]
    assert json.dumps(list(top.data[0].y)).count("<img") == 0
    mon.window.value = 7                   # another window redraws
    assert len(mon.charts.children) == 2
    mon.close_all()
