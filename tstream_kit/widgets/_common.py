"""What the widgets share: the client, number formats, refresh loops."""
from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any, Awaitable, Callable

from ..client import Client, default_client

log = logging.getLogger("tstream.widgets")


def resolve_client(client: Client | str | None) -> Client:
    """A :class:`Client`, a base URL, or ``None`` (discovery: :func:`default_client`)."""
    if client is None:
        return default_client()
    if isinstance(client, str):
        return Client(client)
    return client


def format_size(n: float | None) -> str:
    """
    >>> format_size(4212547), format_size(None), format_size(512)
    ('4.0 MiB', '?', '512 B')
    """
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"   # pragma: no cover


def format_rate(bytes_per_s: float | None) -> str:
    """
    >>> format_rate(0), format_rate(3 * 1024 * 1024)
    ('0 B/s', '3.0 MiB/s')
    """
    return format_size(bytes_per_s or 0) + "/s"


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The kernel's asyncio loop (running, or about to run), if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return None
    return None if loop.is_closed() else loop


class Refresher:
    """Calls ``tick()`` every ``interval`` seconds on the kernel's loop until
    stopped (the widget closed). A failing tick is reported through
    ``on_error`` and the loop goes on."""

    def __init__(self, tick: Callable[[], Awaitable[None]], interval: float,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.tick = tick
        self.interval = interval
        self.on_error = on_error
        self.task: asyncio.Task | None = None
        self.ticks = 0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> bool:
        """Start on the kernel's loop; False when there is none (call ``tick`` yourself)."""
        if self.running:
            return True
        loop = kernel_loop()
        if loop is None:
            return False
        self.task = loop.create_task(self._run())
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # noqa: BLE001 - shown by the widget, the loop goes on
                if self.on_error is not None:
                    self.on_error(exc)
                else:
                    log.warning("refresh failed: %s", exc)
            self.ticks += 1
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking client call off the kernel's loop."""
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args))
