"""Time to first frame in real headless Chromium (Debian's /usr/bin/chromium via Playwright).

Used by ``bench/stream_bench.py``. One browser (a fresh profile) per benchmark; one fresh page
per measurement. The page is ``about:blank`` with a ``<video muted autoplay>`` added by script;
the benchmark calls ``set_src(url)`` and the page records, on its own clock (epoch ms,
``performance.timeOrigin + performance.now()``):

* ``src``: when ``src`` was set; ``playing``: the first ``playing`` event; ``frame``: the first
  ``requestVideoFrameCallback`` (a frame was presented), when Chromium delivers it;
* after ``seek(0.8)``: ``seek_at`` (``currentTime = 0.8 * duration``) and ``seeked``.

Never ``playwright install``: Playwright drives the system chromium by ``executable_path``.
Every wait is bounded by ``timeout``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

CHROMIUM = os.environ.get("TSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--no-proxy-server",
]
LAUNCH_TIMEOUT_S = 30.0

_PAGE_JS = r"""
() => {
  const now = () => performance.timeOrigin + performance.now();
  const b = window.__b = {events: []};
  const v = document.createElement('video');
  v.muted = true; v.autoplay = true; v.preload = 'auto'; v.playsInline = true;
  v.width = 320; v.height = 180;
  document.body.appendChild(v);
  for (const ev of ['loadedmetadata', 'loadeddata', 'canplay', 'playing', 'waiting', 'seeking',
                    'seeked', 'error', 'stalled']) {
    v.addEventListener(ev, () => {
      const t = now();
      b.events.push([ev, t]);
      if (!(ev in b)) b[ev] = t;
      if (ev === 'error') b.error = (v.error && (v.error.code + ' ' + v.error.message)) || 'error';
    });
  }
  window.__setSrc = (url) => {
    b.src = now();
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(() => { b.frame = now(); });
    v.src = url;
    const p = v.play();
    if (p) p.catch(e => { b.play_error = String(e); });
    return b.src;
  };
  window.__seek = (fraction) => {
    b.seek_at = now();
    b.seek_target = v.duration * fraction;
    v.addEventListener('seeked', () => { b.seeked_after = now(); }, {once: true});
    v.currentTime = b.seek_target;
    return b.seek_at;
  };
}
"""


def chromium_unavailable() -> Optional[str]:
    """Why the browser figure cannot be measured here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright wheel is not installed (pip install playwright; never `playwright install`)"
    return None


class Browser:
    """Headless Chromium with a fresh profile; ``with Browser() as b: b.page()``."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._pw = None
        self.context = None
        self.profile: Optional[Path] = None

    def __enter__(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        self.profile = Path(tempfile.mkdtemp(prefix="tstream-bench-chromium-"))
        self._pw = sync_playwright().start()
        try:
            self.context = self._pw.chromium.launch_persistent_context(
                str(self.profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                timeout=LAUNCH_TIMEOUT_S * 1000, handle_sigint=False, handle_sigterm=False,
                handle_sighup=False)
            self.context.set_default_timeout(self.timeout * 1000)
            self.version = self.context.browser.version if self.context.browser else None
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.context is not None:
                self.context.close()
        finally:
            if self._pw is not None:
                self._pw.stop()
            if self.profile:
                shutil.rmtree(self.profile, ignore_errors=True)

    def page(self) -> "VideoPage":
        return VideoPage(self.context.new_page(), self.timeout)


class VideoPage:
    def __init__(self, page: Any, timeout: float) -> None:
        self.page = page
        self.timeout = timeout
        page.set_content("<!doctype html><html><body style='margin:0'></body></html>")
        page.evaluate(_PAGE_JS)

    def set_src(self, url: str) -> float:
        """Sets the video's src; returns the page's epoch (s) at that moment."""
        return self.page.evaluate("u => window.__setSrc(u)", url) / 1000

    def wait(self, key: str, what: str) -> dict:
        expr = f"() => window.__b.{key} || window.__b.error"
        try:
            self.page.wait_for_function(expr, timeout=self.timeout * 1000, polling=5)
        except Exception as e:  # playwright TimeoutError
            raise TimeoutError(f"browser: no {what} within {self.timeout:.0f} s; events "
                               f"{self.state().get('events')}") from e
        state = self.state()
        if state.get("error") and not state.get(key):
            raise RuntimeError(f"browser: video error before {what}: {state['error']}")
        return state

    def seek(self, fraction: float) -> float:
        return self.page.evaluate("f => window.__seek(f)", fraction) / 1000

    def state(self) -> dict:
        return self.page.evaluate("() => window.__b")

    def close(self) -> None:
        self.page.close()


def play_and_seek(page: VideoPage, url: str, *, seek_fraction: float = 0.8) -> dict:
    """Set src, wait for ``playing``, seek to ``seek_fraction``, wait for ``seeked``.
    Epochs in seconds (page clock); durations in seconds."""
    src = page.set_src(url)
    st = page.wait("playing", "playing event")
    page.seek(seek_fraction)
    st = page.wait("seeked_after", "seeked event")
    ms = 1000.0
    return {
        "src_epoch": src,
        "playing_epoch": st["playing"] / ms,
        "frame_epoch": st["frame"] / ms if st.get("frame") else None,
        "src_to_playing_s": st["playing"] / ms - src,
        "src_to_loadedmetadata_s": (st["loadedmetadata"] / ms - src) if st.get("loadedmetadata") else None,
        "src_to_frame_s": (st["frame"] / ms - src) if st.get("frame") else None,
        "seek_target_s": st.get("seek_target"),
        "seek_to_seeked_s": (st["seeked_after"] - st["seek_at"]) / ms,
        "events": [(e, round(t / ms - src, 4)) for e, t in st["events"]],
    }
