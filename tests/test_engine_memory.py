"""The engine gives freed heap memory back to the system (engine/session.py: release_free_memory)."""
from __future__ import annotations

import asyncio
import time

from tstream_kit.engine import Engine


async def test_the_status_tick_returns_free_heap_memory(engine: Engine) -> None:
    from tstream_kit.engine.session import release_free_memory
    took = release_free_memory()
    assert 0 <= took < 1
    engine.trim_seconds = -1.0
    deadline = time.monotonic() + 5
    while engine.trim_seconds < 0:          # the ticker ran malloc_trim once more
        assert time.monotonic() < deadline, "the status ticker never trimmed"
        await asyncio.sleep(0.05)
    assert 0 <= engine.trim_seconds < 1
