"""Episode-torrent providers for anime, Nyaa's trusted/remake flags, and the
pure episode mapping (batches to file indexes, best per quality)."""
from __future__ import annotations

from pathlib import Path

from search_fakes import bencode
from tstream_kit.anime.episodes import (aired_episodes, best_torrent, by_quality, episode_rows, map_batch_files,
                                        torrent_files)
from tstream_kit.anime.settings import build_anime_providers
from tstream_kit.anime.store import EpisodeTorrent
from tstream_kit.config import Settings
from tstream_kit.search.http import Fetcher
from tstream_kit.search.nyaa import parse_nyaa_feed

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "anime"
SHOW = {"id": 154587, "episodes": 28, "status": "FINISHED",
        "title": {"romaji": "Sousou no Frieren", "english": "Frieren: Beyond Journey’s End"}, "synonyms": []}


def test_providers_from_settings() -> None:
    s = Settings.from_env({}, anime_providers="nyaa,torznab", nyaa_url="http://127.0.0.1:1/",
                          torznab="jackett=http://127.0.0.1:2/|KEY,prowlarr=http://127.0.0.1:3/1/")
    ps = build_anime_providers(s, Fetcher())
    assert [p.name for p in ps] == ["nyaa-anime", "jackett-anime", "prowlarr-anime"]
    assert ps[0].category == "1_0" and ps[0].min_interval == 0.0      # a loopback mirror is not paced
    assert all(p.indexer.categories == (5070,) for p in ps[1:])
    assert build_anime_providers(Settings.from_env({}, anime_providers="torznab"), Fetcher()) == []


def test_nyaa_trusted_and_remake_flags() -> None:
    body = (FIXTURES / "nyaa_frieren.xml").read_bytes().replace(b"{BATCH_IH}", b"b" * 40)
    rows = {r.infohash[:4]: r for r in parse_nyaa_feed(body)}
    assert rows["a1a1"].trusted is True and rows["a1a1"].remake is False
    assert rows["a5a5"].remake is True and rows["a3a3"].trusted is False


def test_episode_rows_best_and_batches() -> None:
    body = (FIXTURES / "nyaa_frieren.xml").read_bytes().replace(b"{BATCH_IH}", b"b" * 40)
    rows = episode_rows(SHOW["id"], parse_nyaa_feed(body), SHOW)
    eps = sorted({r.episode for r in rows})
    assert eps == [1, 2, 3]
    assert not any(r.infohash.startswith("a5") for r in rows)          # remake
    ep1 = [r for r in rows if r.episode == 1]
    q = by_quality(ep1)
    assert list(q) == ["1080p", "720p"]
    assert [r.infohash[:2] for r in q["1080p"]] == ["a1", "a3", "bb", "ad"]   # trusted, seeders, batch, dead
    assert best_torrent(ep1).infohash.startswith("a1")
    # the preferred quality without seeders gives way to a seeded one
    dead = [EpisodeTorrent(1, 1, "d" * 40, "x", "m", resolution="1080p", seeders=0),
            EpisodeTorrent(1, 1, "e" * 40, "y", "m", resolution="720p", seeders=9)]
    assert best_torrent(dead).infohash == "e" * 40


def test_batch_files_with_pad_files_and_unnumbered_names() -> None:
    info = bencode({"name": "Show (01-03)", "piece length": 262144, "pieces": b"\0" * 20, "files": [
        {"length": 10, "path": ["NCOP1.mkv"]},
        {"length": 100, "path": ["Show - 01.mkv"]},
        {"length": 5, "path": [".pad", "5"], "attr": "p"},
        {"length": 100, "path": ["Show - 02.mkv"]},
        {"length": 100, "path": ["Show - 03 [v2].mkv"]},
        {"length": 1, "path": ["Show - 02.ass"]}]})
    files = torrent_files(info)
    assert [i for i, _p, _s in files] == [0, 1, 3, 4, 5]                 # libtorrent's indexes
    assert {ep: i for ep, (i, _p) in map_batch_files(files, [1, 2, 3]).items()} == {1: 1, 2: 3, 3: 4}
    plain = [(0, "S/Disc1.mkv", 1), (1, "S/Disc2.mkv", 1)]
    assert {ep: i for ep, (i, _p) in map_batch_files(plain, [7, 8]).items()} == {7: 0, 8: 1}


def test_aired_episodes() -> None:
    assert aired_episodes({"episodes": 12, "status": "FINISHED"}) == 12
    assert aired_episodes({"episodes": 24, "next_airing_episode": {"episode": 6}}) == 5
    assert aired_episodes({"episodes": None, "status": "NOT_YET_RELEASED"}) == 0
