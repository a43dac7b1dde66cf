"""The anime browser (watch dashboard section and widget) without a browser:
a real embedded tstream server, AniList and Nyaa as local servers in a
thread of their own; search -> details -> episodes -> watch -> next."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from anime_fakes import AnimeFakes
from tstream_kit.client import Client, EmbeddedServer
from tstream_kit.config import Settings
from tstream_kit.widgets.anime import AnimeBrowser, episode_title

EVIL = "<img src=x onerror=alert(1)>"


class ThreadedFakes:
    """AnimeFakes on an event loop in a thread (the client is synchronous)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake: AnimeFakes = asyncio.run_coroutine_threadsafe(AnimeFakes().start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def setup(tmp_path: Path):
    fakes = ThreadedFakes()
    f = fakes.fake
    server = EmbeddedServer(Settings.from_env({}, data_dir=tmp_path / "data", port=0, host="127.0.0.1",
                                              anilist_url=f.anilist_url, nyaa_url=f.nyaa_url,
                                              search_timeout=5.0, anilist_timeout=5.0).offline())
    yield Client(server.url, timeout=30), f
    server.stop()
    fakes.close()


def test_search_open_watch_and_next(setup) -> None:
    client, fake = setup
    played: list[tuple[str, int | None, str]] = []
    browser = AnimeBrowser(client, on_watch=lambda m, i, t: played.append((m, i, t)))
    shows = browser.search("frieren")
    assert [s["id"] for s in shows] == [154587] and len(browser.results.children) == 1
    assert browser.trending() and browser.popular()[0]["id"] == 101922
    show = browser.open_show(154587)
    assert show["title"]["romaji"] == "Sousou no Frieren"
    assert "Sousou no Frieren" in browser.details.value and "28 episodes" in browser.details.value
    assert len(browser.episode_list.children) == 28
    watch_buttons = [row.children[0] for row in browser.episode_list.children]
    assert [b.disabled for b in watch_buttons[:5]] == [False, False, False, True, True]
    assert "3 of 28 episodes have torrents" in browser.message.value
    # Watch episode 2: the trusted 1080p single, its context above the player and in its title
    watch_buttons[1].click()
    magnet, file_index, title = played[-1]
    assert "a4a4a4a4" in magnet and title == "Frieren: Beyond Journey’s End — Episode 2 · 1080p · SubsPlease"
    assert "episode 2 of 28" in browser.context.value and "trusted" in browser.context.value
    # nothing watched in this session yet: Next episode starts at 1
    nxt = browser.next_episode()
    assert nxt["episode"] == 1 and "a1a1a1a1" in played[-1][0]
    client.record(played[-1][0], file_index=0, position_s=1410, duration_s=1420, title=played[-1][2])
    nxt = browser.next_episode()
    assert nxt["episode"] == 2 and "finished episode 1" in browser.message.value


def test_strangers_strings_are_escaped_and_errors_are_said(setup) -> None:
    client, fake = setup
    browser = AnimeBrowser(client)
    browser.show = {"id": 1, "title": {"english": EVIL}, "episodes": 3}
    t = browser.watch_episode(1, torrent={"magnet": "magnet:?xt=urn:btih:" + "c" * 40, "resolution": EVIL,
                                          "release_group": EVIL, "seeders": 1})
    assert t is not None and "<img" not in browser.context.value
    assert episode_title(browser.show, 1, t).startswith(EVIL)   # plain text for the player's textContent
    assert browser.search("") == [] and "Type a title" in browser.message.value
    fake.modes["anilist"] = "500"
    assert browser.search("zzz") == [] and "AniList" in browser.message.value
    assert browser.open_show(999999) is None
