"""One contract for the anime tables in both history databases: SQLite and
PostgreSQL (a schema this test creates and drops)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from history_support import pg_schema, schema_url  # noqa: F401 - fixture
from tstream_kit.anime.store import AnimeStore, EpisodeTorrent, open_anime_store
from tstream_kit.store.history import open_store

UTC = timezone.utc
NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)
IH = ["%040x" % (0xB0 + i) for i in range(4)]

SHOW = {"id": 154587, "title": {"romaji": "Sousou no Frieren", "english": "Frieren: Beyond Journey’s End",
                                "native": "葬送のフリーレン"},
        "synonyms": ["Frieren at the Funeral"], "episodes": 28, "status": "RELEASING", "season": "FALL",
        "season_year": 2023, "genres": ["Adventure", "Drama"], "score": 91,
        "cover_url": "https://s4.anilist.co/file/anilistcdn/media/anime/cover/large/bx154587.jpg",
        "next_airing_episode": {"episode": 12, "airing_at": "2023-11-24T16:00:00Z"}}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path) -> Iterator[AnimeStore]:
    url = "" if request.param == "sqlite" else schema_url(request.getfixturevalue("pg_schema"))
    history = open_store(url, tmp_path / "data")
    history.migrate()
    s = open_anime_store(url, tmp_path / "data")
    assert s.dialect == request.param
    yield s
    s.close()
    history.close()


def row(ep: int, ih: str, **kw) -> EpisodeTorrent:
    return EpisodeTorrent(anime_id=SHOW["id"], episode=ep, infohash=ih, title=f"[G] Frieren - {ep:02d} [1080p]",
                          magnet=f"magnet:?xt=urn:btih:{ih}", resolution="1080p", seeders=10 * ep, **kw)


def test_anime_round_trip_and_update(store: AnimeStore) -> None:
    assert store.get_anime(SHOW["id"]) is None
    store.put_anime(SHOW, fetched_at=NOW, expires_at=NOW + timedelta(hours=1))
    got = store.get_anime(SHOW["id"])
    assert got is not None and got.data == SHOW
    assert got.fetched_at == NOW and got.expires_at == NOW + timedelta(hours=1)
    assert got.torrents_expires_at is None
    changed = {**SHOW, "status": "FINISHED", "next_airing_episode": None}
    store.put_anime(changed, fetched_at=NOW + timedelta(hours=2), expires_at=NOW + timedelta(days=7))
    got = store.get_anime(SHOW["id"])
    assert got.data["status"] == "FINISHED" and got.expires_at == NOW + timedelta(days=7)


def test_torrents_replace_keep_resolved_files_and_expire(store: AnimeStore) -> None:
    store.put_anime(SHOW, fetched_at=NOW, expires_at=NOW + timedelta(hours=1))
    rows = [row(1, IH[0]), row(2, IH[1], trusted=True, remake=False, size=1 << 30),
            row(1, IH[2], batch=True), row(2, IH[2], batch=True)]
    assert store.replace_torrents(SHOW["id"], rows, fetched_at=NOW, expires_at=NOW + timedelta(minutes=30)) == 4
    got = store.torrents(SHOW["id"])
    # by episode, then most seeders first (the batch rows have 10 * episode too: infohash breaks the tie)
    assert [(r.episode, r.infohash) for r in got] == [(1, IH[0]), (1, IH[2]), (2, IH[1]), (2, IH[2])]
    ep2 = store.torrents(SHOW["id"], 2)
    assert {r.infohash for r in ep2} == {IH[1], IH[2]}
    single = next(r for r in ep2 if r.infohash == IH[1])
    assert single.trusted is True and single.remake is False and single.size == 1 << 30 and single.batch is False
    assert single.fetched_at == NOW
    cached = store.get_anime(SHOW["id"])
    assert cached.torrents_fetched_at == NOW and cached.torrents_expires_at == NOW + timedelta(minutes=30)
    # a batch's file found later stays known when the torrents are searched again
    store.set_file(SHOW["id"], 2, IH[2], 3, "Frieren/ep02.mkv")
    later = NOW + timedelta(hours=1)
    store.replace_torrents(SHOW["id"], [row(2, IH[2], batch=True), row(3, IH[3])], fetched_at=later,
                           expires_at=later + timedelta(minutes=30))
    got = {(r.episode, r.infohash): r for r in store.torrents(SHOW["id"])}
    assert set(got) == {(2, IH[2]), (3, IH[3])}
    assert (got[(2, IH[2])].file_index, got[(2, IH[2])].file_path) == (3, "Frieren/ep02.mkv")
    assert got[(3, IH[3])].file_index is None
    # purge: only shows whose data and torrents both expired before the cut-off
    assert store.purge(NOW) == 0
    assert store.purge(later + timedelta(days=1)) == 1
    assert store.get_anime(SHOW["id"]) is None and store.torrents(SHOW["id"]) == []


def test_torrents_need_the_show(store: AnimeStore) -> None:
    with pytest.raises(LookupError):
        store.replace_torrents(999, [], fetched_at=NOW, expires_at=NOW)
