"""One contract for every HistoryStore: SQLite (embedded default) and
PostgreSQL (the real server, in a schema these tests create and drop)."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from history_support import pg_schema, schema_url  # noqa: F401 - fixture
from tstream_kit.store.history import HistoryStore, Watch, open_store
from tstream_kit.store.history.base import Cursor, load_migrations

UTC = timezone.utc
NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
IH = ["%040x" % (0xA0 + i) for i in range(6)]


def make_watch(session: str, ih: str, at: datetime, *, file_index: int | None = 0, title: str = "",
               position: float = 0.0, wid: str | None = None) -> Watch:
    return Watch(id=wid or str(uuid.uuid4()), session_id=session, infohash=ih,
                 magnet=f"magnet:?xt=urn:btih:{ih}", title=title or f"title {ih[-2:]}",
                 file_index=file_index, file_path=f"dir/file{file_index}.mp4", position_s=position,
                 duration_s=None, watched_at=at, updated_at=at)


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path: Path) -> Iterator[Callable[[], HistoryStore]]:
    """A factory of store objects on one fresh database (several objects =
    several processes' connections)."""
    if request.param == "sqlite":
        url = ""
    else:
        url = schema_url(request.getfixturevalue("pg_schema"))
    made: list[HistoryStore] = []

    def make() -> HistoryStore:
        s = open_store(url, tmp_path / "data")
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def store(store_factory) -> HistoryStore:
    s = store_factory()
    s.migrate()
    return s


def test_migrations_are_versioned_and_idempotent(store_factory) -> None:
    s = store_factory()
    assert s.schema_versions() == []
    versions = [m.version for m in load_migrations(s.dialect)]
    assert versions and versions == sorted(versions)
    assert s.migrate() == versions
    assert s.migrate() == []
    assert s.schema_versions() == versions
    assert s.count() == 0


def test_concurrent_migrations_apply_once(store_factory) -> None:
    """Four connections start at once; the lock makes one apply and the
    others find it done (plain CREATE TABLE would fail on a race)."""
    stores = [store_factory() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run(s: HistoryStore) -> None:
        barrier.wait(timeout=10)
        try:
            results.append(s.migrate())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    applied = [r for r in results if r]
    assert len(applied) == 1 and sorted(len(r) for r in results) == [0, 0, 0, len(applied[0])]


def test_round_trip_every_field(store: HistoryStore) -> None:
    w = Watch(id=str(uuid.uuid4()), session_id="s-ü", infohash=IH[0], magnet="magnet:?xt=urn:btih:" + IH[0],
              title="Ünïcode — 映画", file_index=None, file_path=None, position_s=0.0, duration_s=None,
              watched_at=NOW, updated_at=NOW)
    assert store.upsert([w]) == 1
    assert store.get(w.id) == w
    w2 = make_watch("s", IH[1], NOW, file_index=3, position=12.25)
    w2 = Watch(**{**w2.__dict__, "duration_s": 5400.5})
    store.upsert([w2])
    assert store.get(w2.id) == w2
    assert store.get(str(uuid.uuid4())) is None


def test_upsert_is_idempotent_on_the_id(store: HistoryStore) -> None:
    w = make_watch("s1", IH[0], NOW)
    assert store.upsert([w]) == 1
    assert store.upsert([w]) == 0
    assert store.upsert([w, w]) == 0        # a batch may carry one id twice
    assert store.count() == 1
    [p] = store.popular(days=7, now=NOW)
    assert (p.watches, p.sessions) == (1, 1)


def test_position_updates_last_writer_wins_within_the_session(store: HistoryStore) -> None:
    w = make_watch("s1", IH[0], NOW)
    store.upsert([w])
    newer = w.with_position(300.0, 5400.0, at=NOW + timedelta(minutes=5))
    older = w.with_position(100.0, at=NOW + timedelta(minutes=1))
    assert store.upsert([newer]) == 0
    assert store.upsert([older]) == 0       # late delivery of an older update
    got = store.get(w.id)
    assert got is not None and (got.position_s, got.duration_s) == (300.0, 5400.0)
    assert got.watched_at == NOW and got.updated_at == NOW + timedelta(minutes=5)
    # the same id from another session changes nothing
    thief = Watch(**{**newer.__dict__, "session_id": "s2", "position_s": 1.0,
                     "updated_at": NOW + timedelta(hours=1)})
    store.upsert([thief])
    got = store.get(w.id)
    assert got is not None and got.session_id == "s1" and got.position_s == 300.0
    [p] = store.popular(days=7, now=NOW)
    assert p.watches == 1                    # updates are not watches


def test_history_is_per_session_newest_first_and_paginates(store: HistoryStore) -> None:
    mine = [make_watch("me", IH[i % 3], NOW - timedelta(minutes=i // 2)) for i in range(25)]  # pairs share a time
    theirs = [make_watch("you", IH[0], NOW + timedelta(minutes=1)) for _ in range(5)]
    store.upsert(mine + theirs)
    full = store.history("me", limit=100)
    assert {w.id for w in full} == {w.id for w in mine}
    assert [w.watched_at for w in full] == sorted((w.watched_at for w in full), reverse=True)
    pages, before = [], None
    while True:
        page = store.history("me", limit=4, before=before)
        if not page:
            break
        pages += page
        before = Cursor(page[-1].watched_at, page[-1].id)
    assert [w.id for w in pages] == [w.id for w in full]      # every row once, across equal times
    older = store.history("me", limit=100, before=Cursor(NOW - timedelta(minutes=10)))
    assert older and all(w.watched_at < NOW - timedelta(minutes=10) for w in older)
    assert {w.session_id for w in store.history("you")} == {"you"}
    assert store.history("nobody") == []


def test_cursor_text_forms() -> None:
    c = Cursor(NOW, str(uuid.uuid4()))
    assert Cursor.parse(c.encode()) == c
    assert Cursor.parse("2025-03-14T12:00:00Z") == Cursor(NOW)
    assert Cursor.parse(str(int(NOW.timestamp()))) == Cursor(NOW)
    with pytest.raises(ValueError):
        Cursor.parse("yesterday")


def test_resume_is_the_latest_position_of_that_file_in_that_session(store: HistoryStore) -> None:
    a = make_watch("me", IH[0], NOW - timedelta(days=2), file_index=1, position=50)
    b = make_watch("me", IH[0], NOW - timedelta(days=1), file_index=1, position=70)
    other_file = make_watch("me", IH[0], NOW, file_index=2, position=999)
    other_session = make_watch("you", IH[0], NOW, file_index=1, position=5)
    no_index = make_watch("me", IH[1], NOW, file_index=None, position=8)
    store.upsert([a, b, other_file, other_session, no_index])
    got = store.resume("me", IH[0], 1)
    assert got is not None and got.id == b.id and got.position_s == 70
    store.upsert([a.with_position(80, at=NOW)])     # an older watch resumed later wins
    got = store.resume("me", IH[0], 1)
    assert got is not None and got.id == a.id and got.position_s == 80
    assert store.resume("me", IH[1], None).id == no_index.id
    assert store.resume("me", IH[2], 1) is None
    assert store.resume("stranger", IH[0], 1) is None


def test_popular_counts_watches_and_distinct_sessions_in_the_window(store: HistoryStore) -> None:
    ws = []
    # IH0: 5 watches by 2 sessions today; IH1: 3 watches by 3 sessions 3 days ago;
    # IH2: 10 watches 40 days ago (outside 30 days); IH3: one watch today, one 20 days ago by s9
    ws += [make_watch(f"s{i % 2}", IH[0], NOW - timedelta(hours=i)) for i in range(5)]
    ws += [make_watch(f"t{i}", IH[1], NOW - timedelta(days=3)) for i in range(3)]
    ws += [make_watch("old", IH[2], NOW - timedelta(days=40)) for _ in range(10)]
    ws += [make_watch("s9", IH[3], NOW), make_watch("s9", IH[3], NOW - timedelta(days=20), title="newest?")]
    store.upsert(ws)
    top = store.popular(days=30, limit=10, now=NOW)
    assert [(p.infohash, p.watches, p.sessions) for p in top] == [
        (IH[0], 5, 2), (IH[1], 3, 3), (IH[3], 2, 1)]
    assert top[0].title == f"title {IH[0][-2:]}" and top[0].magnet.endswith(IH[0])
    assert top[2].title == f"title {IH[3][-2:]}"      # the latest day's title
    assert [p.infohash for p in store.popular(days=30, limit=2, now=NOW)] == [IH[0], IH[1]]
    assert [(p.infohash, p.watches) for p in store.popular(days=1, now=NOW)] == [(IH[0], 5), (IH[3], 1)]
    assert {p.infohash for p in store.popular(days=60, now=NOW)} == {IH[0], IH[1], IH[2], IH[3]}
    assert store.popular(days=30, now=NOW + timedelta(days=400)) == []


def test_query_runs_read_only_aggregates(store: HistoryStore) -> None:
    store.upsert([make_watch("me", IH[0], NOW), make_watch("you", IH[0], NOW)])
    cols, rows = store.query("SELECT count(DISTINCT session_id) AS n FROM watched_torrents")
    assert cols == ["n"] and rows == [(2,)]
