"""The Player and StatsPanel in a real browser: a Voila page served by a real
Jupyter Server with the tstream extension, in headless Chromium. The kernel
finds the extension by itself; the <video> plays the demo clip from
<base_url>tstream/api/stream behind Jupyter's cookie."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from browser import chromium_available, chromium_page  # noqa: F401  (fixture)
from jupyter_support import jupyter_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE = '''from tstream_kit.client import default_client
from tstream_kit.demo import start_demo_swarm
from tstream_kit.widgets import Player, StatsPanel

client = default_client()
demo = start_demo_swarm(seconds=30)
player = Player(client, demo.magnet, autoplay=True, muted=True)
stats = StatsPanel(client).follow(player)
print("client:", client.kind, client.browser_base)
display(player, stats)'''


def write_page(root: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell(PAGE)]
    nbformat.write(nb, root / "player_page.ipynb")
    return "player_page.ipynb"


async def video_state(page) -> dict:
    return await page.evaluate("""() => { const v = document.querySelector('.tstream-player video');
        if (!v) return null;
        return {t: v.currentTime, d: v.duration, rs: v.readyState, paused: v.paused,
                err: v.error ? v.error.code : 0, src: v.currentSrc}; }""")


async def wait_for(page, js: str, timeout_ms: int = 30_000, arg=None):
    return await page.wait_for_function(js, arg=arg, timeout=timeout_ms, polling=200)


@pytest.mark.skipif(not chromium_available(), reason="no chromium/playwright")
async def test_voila_page_plays_seeks_and_shows_live_stats(tmp_path: Path, chromium_page) -> None:  # noqa: F811
    page = chromium_page
    with jupyter_server(tmp_path, voila=True) as server:
        name = write_page(server.root)
        try:
            await page.goto(f"{server.base}/voila/render/{name}?token={server.token}",
                            wait_until="domcontentloaded", timeout=60_000)
            await page.wait_for_selector(".tstream-player video", timeout=60_000)
            await page.wait_for_selector(".tstream-stats canvas", timeout=30_000)
            # the kernel found the extension: the video's URL is at the page's own origin
            state = await video_state(page)
            assert "/tstream/api/stream?" in state["src"] and state["src"].startswith(server.base), state
            await wait_for(page, "() => { const v = document.querySelector('.tstream-player video');"
                                 " return v && v.readyState >= 3; }")
            first = (await video_state(page))["t"]
            await wait_for(page, "(t0) => document.querySelector('.tstream-player video').currentTime > t0 + 1",
                           arg=first)
            state = await video_state(page)
            assert not state["paused"] and state["err"] == 0 and state["d"] > 20, state

            # seek to 80 %: it plays from there
            target = await page.evaluate("""() => { const v = document.querySelector('.tstream-player video');
                v.currentTime = v.duration * 0.8; return v.currentTime; }""")
            await wait_for(page, "(x) => { const v = document.querySelector('.tstream-player video');"
                                 " return !v.seeking && v.currentTime > x + 1 && v.readyState >= 3; }", arg=target)
            state = await video_state(page)
            assert state["t"] >= 0.8 * state["d"] and state["err"] == 0, state

            # the stats panel's numbers change between two refreshes
            summary = page.locator(".tstream-stats .tss-summary")
            await wait_for(page, "() => /update #[1-9]/.test(document.querySelector('.tstream-stats .tss-summary')"
                                 ".textContent)")
            before = await summary.text_content()
            await wait_for(page, "(b) => document.querySelector('.tstream-stats .tss-summary').textContent !== b",
                           arg=before, timeout_ms=10_000)
            after = await summary.text_content()
            n = lambda s: int(s.rsplit("#", 1)[1])  # noqa: E731
            assert n(after) > n(before), (before, after)
            assert "pieces of" in after
            # the player's own status line (peers, speed, downloaded) is drawn, and no error shows
            status = await page.locator(".tstream-player .tsp-status").text_content()
            assert "downloaded" in status and "peer" in status, status
            assert await page.locator(".tstream-player .tsp-error").is_hidden()
            assert not [e for e in page.page_errors if "tstream" in e.lower()], page.page_errors
            await page.shoot()
        except BaseException:
            print("jupyter log:\n" + server.log_tail())
            print("browser log:\n" + page.log_tail())
            raise
