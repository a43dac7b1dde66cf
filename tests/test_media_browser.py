"""Media browsers cannot play directly, in a real browser (issue 7).

An H.264 MKV (with a SubRip track), an HEVC MP4 and an MP4 with AC3 audio (``mediagen.make_clip``,
the imageio-ffmpeg binary has an ``ac3`` encoder) are seeded on a loopback swarm and opened in the
player page in headless Chromium (Debian's, through Playwright). The page probes each, sees it
cannot play it directly and plays fragmented MP4 from ``api/transcode`` through Media Source
Extensions: readyState >= 3, currentTime advances, a seek to a later time plays on from there,
and the MKV's subtitle track is in ``video.textTracks`` with its cues. Closing the page stops
ffmpeg.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tstream_kit import mediagen
from tstream_kit.server.app import RunningServer

try:
    from browser import BrowserPage, chromium_available, chromium_page  # noqa: F401
except ImportError:  # pragma: no cover
    from tests.browser import BrowserPage, chromium_available, chromium_page  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not chromium_available() and not os.environ.get("CI"),
                       reason="needs /usr/bin/chromium and playwright"),
]

SUBS = [(0.5, 4.0, "Hello there"), (5.0, 9.0, "Second cue"), (14.0, 18.0, "Late cue")]
CLIPS = {
    "h264-mkv": dict(video="h264", audio="aac", container="mkv", subtitles=SUBS),
    "hevc-mp4": dict(video="hevc", audio="aac", container="mp4"),
    "ac3-mp4": dict(video="h264", audio="ac3", container="mp4"),
}
EXPECTED_MODE = {"h264-mkv": "remux", "hevc-mp4": "transcode", "ac3-mp4": "transcode"}

STATE_JS = """() => {
  const v = document.getElementById("player");
  const r = [];
  for (let i = 0; i < v.buffered.length; i++) r.push([v.buffered.start(i), v.buffered.end(i)]);
  const tracks = Array.from(v.textTracks).map(t => ({label: t.label, mode: t.mode,
      cues: t.cues ? Array.from(t.cues).map(c => [c.startTime, c.text]) : null}));
  return {src: v.currentSrc, t: v.currentTime, d: v.duration, rs: v.readyState, paused: v.paused,
          seeking: v.seeking, err: v.error && v.error.message, buffered: r, tracks,
          status: document.getElementById("status").textContent};
}"""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


async def api_get(server: RunningServer, path: str) -> Any:
    def get() -> Any:
        with _OPENER.open(server.url + path, timeout=10) as r:
            return json.loads(r.read())
    return await asyncio.wait_for(asyncio.to_thread(get), 15)


async def wait_for(page: BrowserPage, predicate: str, what: str, timeout_ms: int = 30_000) -> dict:
    js = f"() => {{ const v = document.getElementById('player'); return ({predicate})(v); }}"
    try:
        await page.wait_for_function(js, timeout=timeout_ms, polling=100)
    except Exception as exc:  # noqa: BLE001
        state = await page.evaluate(STATE_JS)
        await page.shoot("-timeout")
        pytest.fail(f"{what}: {type(exc).__name__}\nstate: {state}\nconsole:\n{page.log_tail()}")
    return await page.evaluate(STATE_JS)


@pytest.mark.parametrize("kind", list(CLIPS))
async def test_plays_seeks_and_shows_subtitles(kind: str, server: RunningServer, make_swarm,
                                              chromium_page: BrowserPage) -> None:
    clip = mediagen.make_clip(seconds=24, **CLIPS[kind])
    swarm = make_swarm([clip])
    page = chromium_page
    await page.goto(f"{server.url}/?{urllib.parse.urlencode({'magnet': swarm.magnet})}")

    st = await wait_for(page, "v => v.readyState >= 3 && v.currentTime > 0.3", "first frames")
    assert st["src"].startswith("blob:"), st            # played through MSE, not the raw file
    assert abs(st["d"] - 24) < 1, st                    # the whole duration from the probe
    jobs = (await api_get(server, "/api/transcodes"))["transcodes"]
    assert [j["mode"] for j in jobs] in ([EXPECTED_MODE[kind]], []), jobs
    t0 = st["t"]
    await wait_for(page, f"v => v.currentTime > {t0 + 0.7}", "playback advancing")

    # seek ahead to a time not buffered yet: a new transcode starts near it and plays on
    await page.evaluate("() => { document.getElementById('player').currentTime = 16; }")
    st = await wait_for(page, "v => !v.seeking && v.readyState >= 3 && v.currentTime >= 16.4",
                        "playing after a seek to 16 s")
    assert st["err"] is None and st["t"] < 22, st

    if kind == "h264-mkv":
        st = await wait_for(page, "v => v.textTracks.length >= 1 && v.textTracks[0].cues "
                                  "&& v.textTracks[0].cues.length >= 3", "subtitle cues")
        cues = st["tracks"][0]["cues"]
        assert [c[1] for c in cues] == ["Hello there", "Second cue", "Late cue"], st["tracks"]
        assert abs(cues[0][0] - 0.5) < 0.01 and st["tracks"][0]["mode"] == "showing"
    await page.shoot()

    # the viewer leaves: the server stops its ffmpeg
    await page.goto("about:blank")
    deadline = time.monotonic() + 10
    while (await api_get(server, "/api/transcodes"))["transcodes"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert (await api_get(server, "/api/transcodes"))["transcodes"] == []
