"""Headless Chromium for browser tests (Playwright's async API, Debian's chromium).

Shared by the playback tests and, later, the dashboard tests::

    from browser import chromium_page          # the module sits next to the tests

    async def test_x(chromium_page):           # fixture: a fresh Page in a fresh browser
        await chromium_page.goto(url)
        ...
        await chromium_page.shoot()            # -> artifacts/screenshots/<test>.png

or without pytest fixtures::

    async with launch_chromium() as browser:
        page = await browser.new_page()

Rules (see /work/shared/FACTS.md): the system chromium at ``/usr/bin/chromium``
(never ``playwright install``), the flags in :data:`CHROMIUM_ARGS`, a fresh
user-data directory per launch, every wait bounded by a timeout, and the
browser closed (its process group gone) at teardown even when the test fails.

The async API keeps the browser on the test's event loop, so a Tornado server
started in the same test (``start_server``) answers the browser from that loop
while the test awaits Playwright calls: no threads, no second loop.

Screenshots go to ``artifacts/screenshots/<test>.png`` (``<test>`` is the test's
node name, sanitised). The fixture saves one at teardown if the test saved
none, and always saves ``<test>-failed.png`` when the test failed.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

CHROMIUM = os.environ.get("TSTREAM_CHROMIUM", "/usr/bin/chromium")

#: flags from FACTS.md, plus two that keep the browser on loopback and let a
#: page start media without a click (the page calls video.play() itself)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",
    "--autoplay-policy=no-user-gesture-required",
]

#: seconds for launching the browser and closing it
LAUNCH_TIMEOUT_S = 30.0
#: default timeout of every Playwright action and wait on a page (ms)
PAGE_TIMEOUT_MS = 20_000

REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_DIR = Path(os.environ.get("TSTREAM_SCREENSHOTS", REPO_ROOT / "artifacts" / "screenshots"))

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "launch_chromium", "screenshot_path", "chromium_page",
           "BrowserPage", "chromium_available"]


def chromium_available() -> bool:
    if not Path(CHROMIUM).exists():
        return False
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return False
    return True


def screenshot_path(name: str, suffix: str = "") -> Path:
    """``artifacts/screenshots/<name><suffix>.png`` with a file-system-safe name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150] or "screenshot"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR / f"{safe}{suffix}.png"


@contextlib.asynccontextmanager
async def launch_chromium(*, timeout_s: float = LAUNCH_TIMEOUT_S,
                          extra_args: list[str] | None = None) -> AsyncIterator[Any]:
    """A headless Chromium (Playwright ``BrowserContext``-less ``Browser``) with a
    fresh user-data directory; closed, and the directory removed, on exit."""
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no chromium at {CHROMIUM}: CI must install Debian's chromium")
        pytest.skip(f"no chromium at {CHROMIUM}")
    profile = Path(tempfile.mkdtemp(prefix="tstream-chromium-"))
    args = CHROMIUM_ARGS + list(extra_args or [])
    async with async_playwright() as pw:
        # launch_persistent_context is the only way to pass a user-data dir;
        # it returns a context, and the browser dies with it.
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=args,
            timeout=timeout_s * 1000, viewport={"width": 1000, "height": 760},
            handle_sigint=False, handle_sigterm=False, handle_sighup=False,
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            with contextlib.suppress(Exception):
                await context.close()
            shutil.rmtree(profile, ignore_errors=True)


class BrowserPage:
    """A Playwright ``Page`` plus the browser messages and a screenshot helper.

    Attribute access falls through to the page (``bp.goto``, ``bp.evaluate``...).
    ``console`` and ``page_errors`` collect what the page logged, for messages
    in failed assertions.
    """

    def __init__(self, page: Any, context: Any, name: str) -> None:
        self.page = page
        self.context = context
        self.name = name
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.shots: list[Path] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def __getattr__(self, item: str) -> Any:
        return getattr(self.page, item)

    async def shoot(self, suffix: str = "") -> Path | None:
        """Save ``<test><suffix>.png``; never raises (a screenshot is evidence, not a check)."""
        if self.page.is_closed():
            return None
        path = screenshot_path(self.name, suffix)
        try:
            await self.page.screenshot(path=str(path), timeout=10_000)
        except Exception:  # noqa: BLE001 - a dying page must not hide the real failure
            return None
        self.shots.append(path)
        return path

    def log_tail(self, n: int = 20) -> str:
        lines = self.console[-n:] + [f"pageerror: {e}" for e in self.page_errors[-n:]]
        return "\n".join(lines) or "(no console output)"


@pytest.fixture
async def chromium_page(request: pytest.FixtureRequest) -> AsyncIterator[BrowserPage]:
    """A fresh Chromium and one page in it; screenshots at teardown."""
    failed_before = request.session.testsfailed
    async with launch_chromium() as context:
        page = context.pages[0] if context.pages else await context.new_page()
        bp = BrowserPage(page, context, request.node.name)
        try:
            yield bp
        finally:
            # the call-phase report is logged before fixture teardown
            if request.session.testsfailed > failed_before:
                await bp.shoot("-failed")
            elif not bp.shots:
                await bp.shoot()
