"""Both dashboards in headless Chromium, served by `tstream dashboard` itself
(a real process: Jupyter Server + voila + the tstream extension, loopback
seeders rate-limited so the numbers move while we look).

Screenshots: artifacts/screenshots/ (not committed)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from browser import chromium_available, chromium_page, launch_chromium, screenshot_path  # noqa: F401
from jupyter_support import free_port, offline_env
from tstream_kit.mediagen import make_mp4

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not chromium_available(), reason="no chromium/playwright")]

TOKEN = "tstream-dashboard-test"
EVIL = "<img src=x onerror=alert(1)>"
VIDEO = ".tstream-player video"
#: records alert() and any <img src=x> error instead of letting them run
TRAP = """window.__xss = []; window.alert = (m) => window.__xss.push(String(m));"""


class Dashboard:
    def __init__(self, base: str, proc: subprocess.Popen, log: Path) -> None:
        self.base, self.proc, self.log = base, proc, log

    def url(self, page: str) -> str:
        return f"{self.base}/voila/render/{page}?token={TOKEN}"

    def api(self, path: str) -> object:
        req = urllib.request.Request(f"{self.base}{path}", headers={"Authorization": f"token {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@contextlib.contextmanager
def dashboard(tmp: Path, *extra: str, start_timeout: float = 90.0) -> Iterator[Dashboard]:
    port = free_port()
    env = offline_env(tmp)
    log = tmp / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tstream_kit.cli", "dashboard", f"--port={port}",
                                 f"--token={TOKEN}", "--seed-rate=400k", *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(tmp))
    d = Dashboard(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + start_timeout
        while "Ctrl-C to stop" not in log.read_text(errors="replace"):      # ready: URLs printed
            assert proc.poll() is None, "dashboard exited:\n" + d.log_tail()
            assert time.monotonic() < deadline, "dashboard did not start:\n" + d.log_tail()
            time.sleep(0.2)
        while True:                                                           # readiness: the port
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no port:\n" + d.log_tail()
                time.sleep(0.2)
        yield d
    finally:
        proc.send_signal(signal.SIGINT)       # Jupyter asks twice; a second one shuts down at once
        time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def wait_js(page, js: str, arg=None, timeout_ms: int = 30_000):
    return await page.wait_for_function(js, arg=arg, timeout=timeout_ms, polling=200)


async def open_app(page, d: Dashboard, name: str, cls: str) -> float:
    t0 = time.monotonic()
    await page.goto(d.url(name), wait_until="commit", timeout=60_000)
    await page.wait_for_selector(f".{cls}", timeout=60_000)
    return time.monotonic() - t0


async def search(page, text: str) -> None:
    box = page.locator(".tstream-searchbox input[type=text]")
    await box.fill(text)
    await box.press("Enter")


async def test_watch_and_monitor(tmp_path: Path, chromium_page) -> None:  # noqa: F811
    page = chromium_page
    with dashboard(tmp_path) as d:
        try:
            context = page.context
            # the monitor first: nothing streams yet, and it says so
            mon = await context.new_page()
            first = await open_app(mon, d, "monitor.ipynb", "tsd-monitor")
            await wait_js(mon, "() => /update #[1-9]/.test(document.querySelector('.tsd-live').textContent)")
            assert "No active streams." in await mon.locator(".tsd-streams-box").text_content()
            await mon.screenshot(path=str(screenshot_path("monitor_empty")), full_page=True)

            # the watch app: empty history, popular and search are messages, not blanks
            watch_paint = await open_app(page, d, "watch.ipynb", "tsd-watch")
            await wait_js(page, "() => /Nothing to continue yet/.test(document.querySelector('.tsd-continue').textContent)")
            assert "Nothing has been watched" in await page.locator(".tsd-popular").text_content()
            await search(page, "qqqq nothing like this")
            await wait_js(page, "() => /No results for/.test(document.querySelector('.tstream-searchbox').textContent)")
            assert await page.locator(".tstream-searchbox .tsd-empty").count() == 1
            await page.shoot("-empty")

            # search -> Watch -> it plays
            await search(page, "tstream demo")
            watch = page.locator(".tstream-searchbox button:has-text('Watch')")
            await watch.first.wait_for(timeout=20_000)
            await watch.first.click()
            await wait_js(page, f"() => {{ const v = document.querySelector('{VIDEO}'); return v && v.currentTime > 1.5; }}")
            state = await page.evaluate(f"() => {{ const v = document.querySelector('{VIDEO}');"
                                        " return {t: v.currentTime, d: v.duration, paused: v.paused, err: v.error}; }")
            assert not state["paused"] and state["err"] is None and state["d"] > 50, state
            # keys: arrow right seeks +10 s, space pauses and plays
            await page.locator(VIDEO).click()         # focus on the page (the native click toggles: undo)
            await page.evaluate(f"() => document.querySelector('{VIDEO}').play()")
            await page.evaluate("() => document.activeElement && document.activeElement.blur()")
            t0 = await page.evaluate(f"() => document.querySelector('{VIDEO}').currentTime")
            await page.keyboard.press("ArrowRight")
            await wait_js(page, f"(t0) => document.querySelector('{VIDEO}').currentTime > t0 + 8", arg=t0)
            await page.keyboard.press("Space")
            await wait_js(page, f"() => document.querySelector('{VIDEO}').paused")
            await page.keyboard.press("Space")
            await wait_js(page, f"() => !document.querySelector('{VIDEO}').paused")
            # seek to 80 %: plays on from there
            target = await page.evaluate(f"() => {{ const v = document.querySelector('{VIDEO}');"
                                         " v.currentTime = v.duration * 0.8; return v.currentTime; }")
            await wait_js(page, f"(x) => {{ const v = document.querySelector('{VIDEO}');"
                                " return !v.seeking && v.currentTime > x + 1; }", arg=target, timeout_ms=40_000)
            await page.shoot("-playing")

            # the monitor shows that stream, its peer, and numbers that move
            await mon.bring_to_front()
            await wait_js(mon, "() => { const t = document.querySelector('.tsd-streams-box table.tsd-streams');"
                               " return t && /tstream-demo\\.mp4/.test(t.textContent); }")
            await mon.screenshot(path=str(screenshot_path("monitor_streaming")), full_page=True)
            await wait_js(mon, "() => document.querySelectorAll('.tstream-stats tbody tr, .tstream-stats .tss-peers tr')"
                               ".length > 0 || /1 peer/.test(document.querySelector('.tstream-stats').textContent)")
            live = lambda: mon.evaluate("() => [document.querySelector('.tsd-live').textContent,"  # noqa: E731
                                        " document.querySelector('.tsd-torrents-box').textContent,"
                                        " document.querySelector('.tsd-streams-box').textContent]")
            before = await live()
            await wait_js(mon, "(b) => document.querySelector('.tsd-live').textContent !== b", arg=before[0],
                          timeout_ms=5_000)
            after = await live()
            n = lambda s: int(s.rsplit("#", 1)[1])  # noqa: E731
            assert n(after[0]) > n(before[0])
            assert after[1:] != before[1:], "torrent and stream numbers did not change between two refreshes"
            await mon.screenshot(path=str(screenshot_path("monitor_streaming")), full_page=True)

            # continue watching now lists the clip with Resume
            await page.evaluate(f"() => document.querySelector('{VIDEO}').pause()")
            await wait_js(page, "() => /Resume|Watch again/.test(document.querySelector('.tsd-continue').textContent)",
                          timeout_ms=30_000)
            await page.shoot()
            print(f"first paint: monitor {first:.2f} s, watch {watch_paint:.2f} s")
            assert not [e for e in page.page_errors if "tstream" in e.lower()], page.page_errors
        except BaseException:
            print("dashboard log:\n" + d.log_tail())
            print("browser log:\n" + page.log_tail())
            raise


async def test_strangers_titles_never_run(tmp_path: Path, chromium_page) -> None:  # noqa: F811
    page = chromium_page
    clip = make_mp4(seconds=6, width=320, height=180, video_bitrate="300k", faststart=True, seed=5)
    evil = tmp_path / "src" / f"{EVIL}.mp4"
    evil.parent.mkdir(parents=True)
    evil.write_bytes(clip.read_bytes())
    with dashboard(tmp_path, "--no-demo", "--seed", str(evil)) as d:
        try:
            await page.context.add_init_script(TRAP)
            await open_app(page, d, "watch.ipynb", "tsd-watch")
            await search(page, "onerror")
            row = page.locator(".tstream-searchbox", has_text=EVIL)
            await row.wait_for(timeout=20_000)
            await page.locator(".tstream-searchbox button:has-text('Watch')").first.click()
            await wait_js(page, f"() => {{ const v = document.querySelector('{VIDEO}'); return v && v.currentTime > 0.5; }}")
            mon = await page.context.new_page()
            await open_app(mon, d, "monitor.ipynb", "tsd-monitor")
            await wait_js(mon, "(e) => document.querySelector('.tsd-torrents-box').textContent.includes(e)", arg=EVIL)
            await mon.wait_for_timeout(2_000)
            for p in (page, mon):
                assert await p.evaluate("() => window.__xss") == []
                assert await p.locator("img[src='x']").count() == 0
            await mon.screenshot(path=str(screenshot_path("monitor_xss")), full_page=True)
            await page.shoot()
        except BaseException:
            print("dashboard log:\n" + d.log_tail())
            raise


async def test_closed_pages_leave_few_kernels(tmp_path: Path) -> None:
    """20 page loads closed without Voila's unload beacon (like a crashed tab):
    a minute later at most a few kernels remain (presence stops the refresh
    loops, Jupyter culls idle disconnected kernels)."""
    with dashboard(tmp_path, "--no-demo") as d:
        async with launch_chromium() as context:
            for i in range(20):
                page = await context.new_page()
                name, cls = ("monitor.ipynb", "tsd-monitor") if i % 2 else ("watch.ipynb", "tsd-watch")
                await open_app(page, d, name, cls)
                await page.wait_for_timeout(500)
                await page.close(run_before_unload=False)
        peak = len(d.api("/api/kernels"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kernels = d.api("/api/kernels")
            if len(kernels) <= 3:
                break
            time.sleep(2)
        print(f"kernels: {peak} right after, {len(kernels)} after {60 - (deadline - time.monotonic()):.0f} s")
        assert len(kernels) <= 3, (peak, kernels)
