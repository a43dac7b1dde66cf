"""Background upkeep of a running kit: the disk quota and periodic resume data.

Every ``QUOTA_INTERVAL`` seconds the downloads are measured against
``TSTREAM_DISK_QUOTA`` (idle torrents evicted, least recently watched first);
every ``TSTREAM_RESUME_INTERVAL`` seconds (default ``RESUME_INTERVAL``) the
resume data of torrents that changed is written, so even a crash (no graceful
shutdown) loses at most that much.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .limits import enforce_disk_quota

if TYPE_CHECKING:  # pragma: no cover
    from ..kit import Kit

log = logging.getLogger("tstream.ops")

__all__ = ["Housekeeper"]

QUOTA_INTERVAL = 5.0
RESUME_INTERVAL = 60.0


class Housekeeper:
    def __init__(self, kit: "Kit", *, quota_interval: float = QUOTA_INTERVAL,
                 resume_interval: float = RESUME_INTERVAL) -> None:
        self.kit = kit
        self.quota_interval = quota_interval
        self.resume_interval = resume_interval
        self._task: asyncio.Task | None = None
        self.evicted: list[str] = []

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def run_once(self, *, save_resume: bool = False) -> list[str]:
        evicted = await enforce_disk_quota(self.kit)
        self.evicted += evicted
        if save_resume and self.kit.engine.config.resume:
            n = await self.kit.engine.save_all_resume_data(self.kit.settings.shutdown_timeout,
                                                           only_if_modified=True)
            if n:
                log.debug("saved resume data of %d torrents", n)
        return evicted

    async def _run(self) -> None:
        last_resume = time.monotonic()
        while True:
            await asyncio.sleep(min(self.quota_interval, self.resume_interval))
            due = time.monotonic() - last_resume >= self.resume_interval
            try:
                await self.run_once(save_resume=due)
            except asyncio.CancelledError:
                raise
            except Exception:   # upkeep must never stop the server
                log.exception("housekeeping")
            if due:
                last_resume = time.monotonic()
