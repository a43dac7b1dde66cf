"""The player page in a real browser: a torrent on a loopback swarm plays in headless Chromium.

Each test seeds real H.264/AAC MP4s (``mediagen``) from a :class:`LocalSwarm` on 127.0.0.1,
starts the tstream server (``start_server``, port 0, offline settings), opens
``/?magnet=...`` in Debian's chromium through Playwright and watches ``<video id=player>``.

Everything runs on the test's event loop: Playwright's async API, the Tornado server and the
engine's alert reader. While the test awaits a Playwright call the loop is free to answer the
browser's requests, so no thread or second loop is needed, and teardown is plain ``await``.
JSON API calls go through ``urllib`` in a worker thread (``asyncio.to_thread``) for the same
reason: the server must keep running while the call waits.

Every wait has a timeout; a timed-out wait fails with the video element's state, the page's
status line and its console, and a screenshot in ``artifacts/screenshots/``.
"""
from __future__ import annotations

import asyncio
import os
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from tstream_kit import mediagen
from tstream_kit.config import Settings
from tstream_kit.engine.swarm import LocalSwarm
from tstream_kit.server.app import RunningServer, start_server

try:  # tests/ is on sys.path in pytest's default (prepend) import mode
    from browser import BrowserPage, chromium_available, chromium_page  # noqa: F401
except ImportError:  # pragma: no cover - --import-mode=importlib with tests as a package
    from tests.browser import BrowserPage, chromium_available, chromium_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    # locally, skip without chromium; under CI a missing browser is a failure
    pytest.mark.skipif(not chromium_available() and not os.environ.get("CI"),
                       reason="needs /usr/bin/chromium and playwright"),
]

WIDTH, HEIGHT = 640, 360
#: ms to wait for the video to start (metadata + first pieces + decode)
PLAY_TIMEOUT_MS = 20_000
#: ms for a seek to land and play on
SEEK_TIMEOUT_MS = 20_000
#: seconds the server may take to drop a stream after its client left
RELEASE_TIMEOUT_S = 5.0

# The JS state we report when a wait fails, and check in the predicates.
VIDEO_STATE_JS = """() => {
  const v = document.getElementById("player");
  const s = document.getElementById("status");
  const f = document.getElementById("files");
  const ranges = [];
  for (let i = 0; i < v.buffered.length; i++) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
  return {
    src: v.currentSrc, currentTime: v.currentTime, duration: v.duration,
    readyState: v.readyState, networkState: v.networkState, paused: v.paused,
    seeking: v.seeking, ended: v.ended, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
    error: v.error ? {code: v.error.code, message: v.error.message} : null,
    buffered: ranges,
    status: s.textContent, statusClass: s.className,
    filesHidden: f.hidden, fileOptions: Array.from(f.options).map(o => [o.value, o.textContent]),
    fileValue: f.value,
  };
}"""


# --------------------------------------------------------------------------- helpers
def page_url(server: RunningServer, magnet: str, file_index: int | None = None) -> str:
    q = {"magnet": magnet}
    if file_index is not None:
        q["file_index"] = str(file_index)
    return f"{server.url}/?{urllib.parse.urlencode(q)}"


# No proxies, whatever the environment says: all traffic stays on 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json_blocking(url: str, timeout: float) -> Any:
    with _OPENER.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


async def api_get(server: RunningServer, path: str, timeout: float = 10.0) -> Any:
    """GET a JSON endpoint from a worker thread, so the server keeps serving meanwhile."""
    return await asyncio.wait_for(
        asyncio.to_thread(_get_json_blocking, server.url + path, timeout), timeout + 2)


async def video_state(page: BrowserPage) -> dict[str, Any]:
    try:
        return await page.evaluate(VIDEO_STATE_JS)
    except Exception as exc:  # noqa: BLE001 - only used for failure messages
        return {"unavailable": repr(exc)}


async def wait_video(page: BrowserPage, predicate: str, what: str, timeout_ms: int,
                     arg: Any = None) -> dict[str, Any]:
    """Wait until ``predicate`` (a JS function of the video element and ``arg``) is true;
    fail with the element's state and the page's console when it is not in time."""
    js = f"([arg]) => {{ const v = document.getElementById('player'); return ({predicate})(v, arg); }}"
    started = time.monotonic()
    try:
        await page.wait_for_function(js, arg=[arg], timeout=timeout_ms, polling=100)
        failure = None
    except Exception as exc:  # playwright TimeoutError, or the page died
        failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    state = await video_state(page)
    if failure is not None:
        await page.shoot("-timeout")
        pytest.fail(
            f"gave up after {time.monotonic() - started:.1f} s waiting for {what} ({failure})\n"
            f"video state: {json.dumps(state, indent=1)}\nconsole:\n{page.log_tail()}",
            pytrace=False)
    return state


PLAYING = """(v, a) => v.currentTime > a.t && v.readyState >= 3 && !v.seeking && !v.paused
                         && v.videoWidth === a.w && !v.error"""


async def wait_playing(page: BrowserPage, past: float, what: str,
                       timeout_ms: int = PLAY_TIMEOUT_MS) -> dict[str, Any]:
    state = await wait_video(page, PLAYING, what, timeout_ms, {"t": past, "w": WIDTH})
    assert state["error"] is None, state
    return state


def streams_for(listing: dict[str, Any], infohash: str) -> list[dict[str, Any]]:
    return [s for s in listing["streams"] if s["infohash"] == infohash]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
async def tstream(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The tstream server on 127.0.0.1:<free port>, offline engine, own data dir."""
    settings = Settings.from_env({}, data_dir=tmp_path / "data", port=0).offline()
    running = await start_server(settings)
    try:
        yield running
    finally:
        await asyncio.wait_for(running.stop(), 30)


@pytest.fixture
def seed(make_swarm: Callable[..., LocalSwarm]) -> Callable[..., LocalSwarm]:
    """seed([files], name=...) -> a LocalSwarm on 127.0.0.1 (conftest's make_swarm)."""
    return make_swarm


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    return d


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("faststart", [True, False], ids=["faststart", "moov-at-end"])
async def test_plays_and_seeks(faststart: bool, src: Path, seed, tstream: RunningServer,
                               chromium_page: BrowserPage) -> None:
    movie = mediagen.make_mp4(src / "movie.mp4", seconds=40, width=WIDTH, height=HEIGHT,
                              faststart=faststart)
    boxes = mediagen.mp4_box_order(movie)
    assert (boxes.index("moov") < boxes.index("mdat")) == faststart, boxes
    swarm = seed([movie])
    page = chromium_page

    t0 = time.monotonic()
    await page.goto(page_url(tstream, swarm.magnet))
    state = await wait_playing(page, 1.0, "the video to play past 1 s")
    started_s = time.monotonic() - t0
    assert state["videoHeight"] == HEIGHT
    assert abs(state["duration"] - 40) < 1, state
    assert state["statusClass"] != "error", state

    await page.evaluate("() => { document.getElementById('player').currentTime = 30; }")
    t1 = time.monotonic()
    state = await wait_playing(page, 31.0, "the video to play past 31 s after a seek to 30 s",
                               SEEK_TIMEOUT_MS)
    seek_s = time.monotonic() - t1
    assert state["error"] is None
    assert state["statusClass"] != "error", state
    await page.shoot()
    print(f"start-to-1s {started_s:.2f} s, seek-to-31s {seek_s:.2f} s")


async def test_file_picker_plays_second_file(src: Path, seed, tstream: RunningServer,
                                             chromium_page: BrowserPage) -> None:
    long_mp4 = mediagen.make_mp4(src / "a-long.mp4", seconds=20, seed=1)
    short_mp4 = mediagen.make_mp4(src / "b-short.mp4", seconds=8, seed=2)
    subs = mediagen.make_subtitle_srt(src / "b-short.srt", ["one", "two", "three"])
    long_s = mediagen.probe_media(long_mp4).duration_s
    short_s = mediagen.probe_media(short_mp4).duration_s
    assert long_s and short_s and abs(long_s - short_s) > 5
    swarm = seed([long_mp4, short_mp4, subs], name="two-movies")
    page = chromium_page

    await page.goto(page_url(tstream, swarm.magnet))
    # the default file (the largest playable video) starts first
    state = await wait_playing(page, 0.5, "the default file to play")
    assert abs(state["duration"] - long_s) < 1, state
    assert state["filesHidden"] is False, "the file picker is hidden for a 3-file torrent"
    labels = [label for _, label in state["fileOptions"]]
    assert len(labels) == 3, labels
    assert any("b-short.srt" in x for x in labels), labels

    info = await api_get(tstream, "/api/info?" + urllib.parse.urlencode({"magnet": swarm.magnet}))
    second = next(f for f in info["files"] if f["path"].endswith("b-short.mp4"))
    assert state["fileValue"] != str(second["index"]), "the second file was already chosen"

    await page.select_option("#files", value=str(second["index"]))
    state = await wait_video(
        page, "(v, a) => Math.abs(v.duration - a.d) < 1 && v.currentTime > 1 && v.readyState >= 3"
              " && !v.error",
        "the second file to play", PLAY_TIMEOUT_MS, {"d": short_s})
    assert f"file_index={second['index']}" in state["src"], state["src"]
    assert abs(state["duration"] - short_s) < 1, state
    assert state["error"] is None
    await page.shoot()


async def test_unplayable_file_shows_readable_error(src: Path, seed, tstream: RunningServer,
                                                    chromium_page: BrowserPage) -> None:
    import random
    junk = src / "not-a-movie.mp4"
    junk.write_bytes(random.Random(7).randbytes(3 * 1024 * 1024))
    swarm = seed([junk])
    page = chromium_page

    await page.goto(page_url(tstream, swarm.magnet))
    state = await wait_video(
        page, "(v) => document.getElementById('status').className === 'error'"
              " && document.getElementById('status').textContent.trim().length > 0",
        "an error in #status", PLAY_TIMEOUT_MS)
    text = state["status"].strip()
    assert state["error"] is not None, state      # the element itself failed, not the page
    assert 10 < len(text) < 300, text
    lowered = text.lower()
    for sign in ("traceback", "exception", "undefined", "[object", "  at ", "\n"):
        assert sign not in lowered, f"{sign!r} in the status text: {text!r}"
    assert "play" in lowered or "format" in lowered or "support" in lowered, text
    assert not page.page_errors, page.page_errors
    await page.shoot()


async def test_stream_released_when_page_closes(src: Path, seed, tstream: RunningServer,
                                                chromium_page: BrowserPage) -> None:
    # Big enough (~230 MB, 40 Mbit/s) that Chromium does not read it in one go: its buffer
    # fills (it had read ~80 MB at 1 s of playback), the response waits on the socket and the
    # stream stays open while the video plays. A small file is read whole by one request, and
    # its stream ends while the video still plays from the browser's buffer.
    movie = mediagen.make_mp4_of_size(src / "big.mp4", min_bytes=200_000_000)
    swarm = seed([movie])
    page = chromium_page

    await page.goto(page_url(tstream, swarm.magnet))
    await wait_playing(page, 1.0, "the video to play past 1 s")
    listing = await api_get(tstream, "/api/streams")
    mine = streams_for(listing, swarm.infohash)
    state = await video_state(page)
    assert not state["paused"] and state["currentTime"] > 1, state
    assert mine, f"no stream for {swarm.infohash} while the video plays: {listing}"
    assert all(s["file_index"] == 0 for s in mine), mine
    assert all(s["path"].endswith("big.mp4") for s in mine), mine
    await page.shoot()
    print(f"open streams while playing: {[(s['position'], s['bytes_read']) for s in mine]}")

    await page.close()
    t0 = time.monotonic()
    while True:
        listing = await api_get(tstream, "/api/streams")
        mine = streams_for(listing, swarm.infohash)
        if not mine:
            break
        if time.monotonic() - t0 > RELEASE_TIMEOUT_S:
            pytest.fail(f"{len(mine)} stream(s) still open {RELEASE_TIMEOUT_S} s after the page "
                        f"closed: {json.dumps(mine, indent=1)}", pytrace=False)
        await asyncio.sleep(0.1)
    print(f"stream released {time.monotonic() - t0:.2f} s after the page closed")


BAD_MAGNET = "magnet:?xt=urn:btih:nothex"
ERROR_STATUS_JS = """() => { const s = document.getElementById('status');
  return s.className === 'error' && s.textContent.trim().length > 0; }"""


async def _open_bad_magnet(tstream: RunningServer, page: BrowserPage) -> dict[str, Any]:
    await page.goto(page_url(tstream, BAD_MAGNET))
    try:
        await page.wait_for_function(ERROR_STATUS_JS, timeout=PLAY_TIMEOUT_MS, polling=100)
        shown = True
    except Exception:  # noqa: BLE001 - reported below with the page state
        shown = False
    if not shown:
        pytest.fail(f"no error in #status: {await video_state(page)}", pytrace=False)
    return await page.evaluate("""() => { const s = document.getElementById('status');
        return {text: s.textContent, color: getComputedStyle(s).color}; }""")


async def test_bad_magnet_shows_the_server_message(tstream: RunningServer,
                                                   chromium_page: BrowserPage) -> None:
    """api/info answers 400 with a JSON error; the page shows that text, not 'HTTP 400'."""
    shown = await _open_bad_magnet(tstream, chromium_page)
    assert "infohash" in shown["text"] and "HTTP 400" not in shown["text"], shown
    await chromium_page.shoot()


async def test_error_status_is_shown_in_the_error_colour(tstream: RunningServer,
                                                         chromium_page: BrowserPage) -> None:
    shown = await _open_bad_magnet(tstream, chromium_page)
    assert shown["color"] == "rgb(176, 0, 32)", shown   # #b00020
