"""What both dashboards share: HTML that escapes every stranger's string,
human units, the presence/session widget and the keyboard shortcuts.

Everything shown in a table is built here as HTML text with :func:`esc`
applied to every value that came from outside (titles, file names, peer
client strings, error messages): nothing a torrent says is ever markup.
"""
from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import anywidget
import traitlets as t

from ..client import ApiError, Client, ClientError
from ..widgets import format_rate, format_size
from ..widgets._common import Refresher, kernel_loop

log = logging.getLogger("tstream.dashboards")

__all__ = ["esc", "format_size", "format_rate", "format_clock", "format_ago", "table", "empty", "bar",
           "Presence", "Keys", "error_text", "PRESENCE_TIMEOUT_S"]

#: the page is gone when it has not pinged for this long: refresh loops stop,
#: the kernel goes idle and Jupyter's culler can take it
PRESENCE_TIMEOUT_S = 10.0
_HERE = Path(__file__).parent


def esc(value: Any) -> str:
    """Text for HTML (element content and quoted attributes).

    >>> esc('<img src=x onerror=alert(1)>')
    '&lt;img src=x onerror=alert(1)&gt;'
    """
    return html.escape("" if value is None else str(value), quote=True)


def format_clock(seconds: float | None) -> str:
    """
    >>> format_clock(65), format_clock(3725.2), format_clock(None)
    ('1:05', '1:02:05', '--:--')
    """
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_ago(seconds: float) -> str:
    """
    >>> format_ago(5), format_ago(125), format_ago(7300), format_ago(200000)
    ('just now', '2 min ago', '2 h ago', '2 days ago')
    """
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'' if days == 1 else 's'} ago"


def error_text(exc: BaseException) -> str:
    """A client error in words (no class names, no traceback)."""
    if isinstance(exc, ApiError):
        return exc.message
    return str(exc) or exc.__class__.__name__


def bar(fraction: float, colour: str | None = None) -> str:
    pct = max(0.0, min(1.0, float(fraction or 0))) * 100
    style = f"width:{pct:.1f}%" + (f";background:{colour}" if colour else "")
    return f'<span class="tsd-bar" title="{pct:.1f}%"><i style="{style}"></i></span>'


def empty(message: str, detail: str = "") -> str:
    """A deliberate empty state: what is missing and how it gets filled."""
    out = f'<div class="tsd-empty"><b>{esc(message)}</b>'
    if detail:
        out += f" {esc(detail)}"
    return out + "</div>"


def table(headers: Sequence[tuple[str, str]], rows: Iterable[Sequence[str]], *, cls: str = "",
          row_classes: Sequence[str] | None = None) -> str:
    """``headers`` are (label, css class); ``rows`` hold cell HTML already
    escaped by the caller (use :func:`esc` for every value)."""
    head = "".join(f'<th class="{c}">{esc(h)}</th>' for h, c in headers)
    body = []
    for i, row in enumerate(rows):
        rc = row_classes[i] if row_classes and i < len(row_classes) else ""
        cells = "".join(f'<td class="{c}">{cell}</td>' for (_, c), cell in zip(headers, row))
        body.append(f'<tr class="{rc}">{cells}</tr>')
    return f'<table class="tsd-table {cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class Presence(anywidget.AnyWidget):
    """Invisible: the browser says hello (with the history session it kept in
    localStorage) and pings every ``interval_ms``. ``on_hello(fn(client))``
    gets a client carrying the page's session; ``on_lost(fn())`` runs once
    when pings stop for :data:`PRESENCE_TIMEOUT_S` (the page was closed)."""

    _esm = _HERE / "presence.js"
    _css = _HERE / "dash.css"
    interval_ms = t.Int(2000).tag(sync=True)

    def __init__(self, client: Client, *, timeout: float = PRESENCE_TIMEOUT_S, **kw: Any) -> None:
        super().__init__(**kw)
        self.client = client
        self.timeout = timeout
        self.last_ping: float | None = None
        self.session: str | None = None
        self.lost = False
        self._hello: list[Callable[[Client], Any]] = []
        self._lost: list[Callable[[], Any]] = []
        self._watchdog = Refresher(self._check, 2.0)
        self.on_msg(self._message)

    def on_hello(self, fn: Callable[[Client], Any]) -> None:
        self._hello.append(fn)

    def on_lost(self, fn: Callable[[], Any]) -> None:
        self._lost.append(fn)

    # -------------------------------------------------------------- browser
    def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        self.last_ping = time.monotonic()
        if content.get("type") == "hello":
            self.hello(str(content.get("session") or ""))

    def hello(self, stored: str = "") -> Client:
        """Adopt the browser's session if it still verifies, else start one
        (and tell the browser to keep it)."""
        client = session_client(self.client, stored) if stored else None
        if client is None:
            client = session_client(self.client, None)
            try:
                token = client.session_token()
                self.send({"type": "session", "token": token})
            except ClientError as exc:
                log.info("no history session: %s", exc)
        self.session = client._session
        self.last_ping = time.monotonic()
        self.lost = False
        if loop_running():
            self._watchdog.start()
        for fn in list(self._hello):
            try:
                fn(client)
            except Exception:   # noqa: BLE001 - one failing part must not stop the others
                log.exception("dashboard hello handler failed")
        return client

    async def _check(self) -> None:
        if self.last_ping is None or self.lost:
            return
        if time.monotonic() - self.last_ping > self.timeout:
            self.gone()

    def gone(self) -> None:
        """The page is gone: stop everything that refreshes."""
        self.lost = True
        self._watchdog.stop()
        for fn in list(self._lost):
            try:
                fn()
            except Exception:   # noqa: BLE001
                log.exception("dashboard shutdown handler failed")

    def close(self) -> None:
        self._watchdog.stop()
        super().close()


def session_client(base: Client, token: str | None) -> Client | None:
    """``base`` with the history session ``token`` (``None``: a fresh one);
    ``None`` when the token no longer verifies (e.g. another secret)."""
    client = Client(base.base_url, timeout=base.timeout, token=base.token, browser_base=base.browser_base,
                    session=token or None, kind=base.kind)
    if token:
        try:
            client.history(limit=1)
        except ApiError as exc:
            if exc.status in (400, 401):
                return None
            raise
        except ClientError:
            return None
    return client


class Keys(anywidget.AnyWidget):
    """Keyboard shortcuts for the page's player (a help line, and feedback)."""

    _esm = _HERE / "keys.js"
    _css = _HERE / "dash.css"
    last_action = t.Unicode("").tag(sync=True)


def loop_running() -> bool:
    loop = kernel_loop()
    return loop is not None and loop.is_running()
