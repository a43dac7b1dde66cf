"""Nothing lost while PostgreSQL is unreachable: watches wait in the durable
outbox and reach the database exactly once when it is back. The link is a
TCP proxy the test cuts and restores, in front of the real server."""
from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from history_support import PG_BASE, TcpProxy, pg_schema, schema_url  # noqa: F401 - fixture
from tstream_kit.store.history import Watch, open_store, utcnow
from tstream_kit.store.history.service import HistoryService
from tstream_kit.store.outbox import Outbox


def direct_rows(schema: str) -> list[tuple]:
    with psycopg.connect(schema_url(schema), connect_timeout=5) as c:
        return c.execute("SELECT id::text, position_s FROM watched_torrents ORDER BY id").fetchall()


def watches_total(schema: str) -> int:
    with psycopg.connect(schema_url(schema), connect_timeout=5) as c:
        return int(c.execute("SELECT coalesce(sum(watches), 0) FROM watch_daily").fetchone()[0])


async def wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def new_watch(session: str, n: int) -> Watch:
    now = utcnow()
    ih = "%040x" % (0xC0FFEE + n)
    return Watch(id=str(uuid.uuid4()), session_id=session, infohash=ih, magnet=f"magnet:?xt=urn:btih:{ih}",
                 title=f"film {n}", file_index=0, position_s=0.0, watched_at=now, updated_at=now)


@pytest.mark.slow
async def test_watches_survive_an_outage_and_a_restart_exactly_once(pg_schema: str, tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", int(PG_BASE.split(":")[-1].split("/")[0]))
    url = schema_url(pg_schema, PG_BASE.replace(":5432/", f":{proxy.port}/"))
    data = tmp_path / "data"
    svc = HistoryService(url, data)
    try:
        await svc.start()
        assert svc.migrated
        before = [new_watch("s1", i) for i in range(3)]
        for w in before:
            assert await svc.record(w) is True

        proxy.cut()
        during = [new_watch(f"s{i % 3}", 10 + i) for i in range(20)]
        for w in during:
            assert await svc.record(w) is False             # queued, not lost
        moved = during[0].with_position(321.0)
        assert await svc.record(moved) is False
        assert svc.outbox is not None and svc.outbox.count() == 21
        # while the database is down, resume still answers from the queue
        got = await svc.resume("s0", moved.infohash, 0)
        assert got is not None and got.position_s == 321.0
        # the process stops and starts again with the database still down
        await svc.stop()
        svc = HistoryService(url, data)
        await svc.start()
        assert svc.outbox is not None and svc.outbox.count() == 21
        more = [new_watch("s9", 50 + i) for i in range(5)]
        for w in more:
            assert await svc.record(w) is False

        proxy.restore()
        svc._wake.set()                                      # what the next POST would do

        async def drained() -> bool:
            return svc.outbox.count() == 0

        await wait_for(drained, timeout=60)
        expected = {w.id for w in before + during + more}
        rows = direct_rows(pg_schema)
        assert sorted(r[0] for r in rows) == sorted(expected)    # each exactly once
        assert dict(rows)[moved.id] == 321.0
        assert watches_total(pg_schema) == len(expected)        # popularity counted each once
    finally:
        await svc.stop()
        proxy.close()


def test_a_redelivered_batch_changes_nothing(pg_schema: str, tmp_path: Path) -> None:
    """A crash after the database committed but before the outbox row was
    deleted delivers the batch again: the upsert on the id makes it a no-op."""
    store = open_store(schema_url(pg_schema), tmp_path)
    box = Outbox(tmp_path / "outbox.sqlite3")
    try:
        store.migrate()
        ws = [new_watch("s", i) for i in range(10)]
        for w in ws:
            box.append(w)
        batch = [w for _, w in box.peek()]
        store.upsert(batch)                        # committed ... then "crash" before the delete
        assert box.count() == 10
        assert box.deliver(store.upsert) == 10     # after the restart
        assert box.count() == 0
        assert store.count() == 10 and watches_total(pg_schema) == 10
        assert sum(p.watches for p in store.popular(days=1, limit=100)) == 10
    finally:
        store.close()
        box.close()


async def test_sqlite_service_delivers_inline(tmp_path: Path) -> None:
    svc = HistoryService("", tmp_path / "data")
    await svc.start()
    try:
        w = new_watch("s", 1)
        assert await svc.record(w) is True
        assert svc.outbox is not None and svc.outbox.count() == 0
        assert [x.id for x in await svc.history("s")] == [w.id]
    finally:
        await svc.stop()
