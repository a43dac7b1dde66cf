"""From search results to episodes (pure: no I/O).

1. :func:`matches_show`: does a release belong to this show (any of its
   titles, same season)?
2. :func:`episode_rows`: one :class:`EpisodeTorrent` per episode a release
   holds; remakes are passed over, a batch gives a row per episode it covers.
3. :func:`by_quality`: for one episode, torrents grouped by resolution, best
   first (Nyaa-trusted first, then seeders, then the newer version).
4. :func:`torrent_files` and :func:`map_batch_files`: a batch's file list (from
   its info dictionary, with libtorrent's file indexes) and which file is
   which episode.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from ..search.base import Result
from ..search.bencode import bdecode
from .releases import Release, normalise_title, parse_release
from .store import EpisodeTorrent

__all__ = ["show_titles", "matches_show", "episode_rows", "by_quality", "best_torrent", "torrent_files",
           "map_batch_files", "QUALITIES", "aired_episodes", "VIDEO_EXTENSIONS"]

QUALITIES = ("2160p", "1080p", "720p", "480p", "unknown")
VIDEO_EXTENSIONS = (".mkv", ".mp4", ".avi", ".m4v", ".webm", ".ts")
_SEASON_IN_TITLE = re.compile(
    r"\b(?:season\s*(\d{1,2})|(\d{1,2})(?:st|nd|rd|th)\s+season|s(\d{1,2})|part\s*(\d{1,2})|(second|third|fourth|fifth)\s+season)\b",
    re.I)
_ORD = {"second": 2, "third": 3, "fourth": 4, "fifth": 5}


def _split_season(title: str) -> tuple[str, int | None]:
    m = _SEASON_IN_TITLE.search(title)
    if not m:
        return normalise_title(title), None
    g = next(x for x in m.groups() if x)
    season = _ORD[g.lower()] if g.lower() in _ORD else int(g)
    return normalise_title(title[:m.start()] + " " + title[m.end():]), season


def show_titles(show: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(normalised base title, season) for the romaji, English and synonym titles."""
    t = show.get("title") or {}
    names = [t.get("romaji"), t.get("english"), *(show.get("synonyms") or [])]
    out: list[tuple[str, int | None]] = []
    for n in names:
        if n and re.search(r"[A-Za-z]", n):
            key = _split_season(n)
            if key[0] and key not in out:
                out.append(key)
    return out


def search_queries(show: dict[str, Any], limit: int = 2) -> list[str]:
    """What to ask the indexers: the romaji title, then the English one."""
    t = show.get("title") or {}
    out: list[str] = []
    for n in (t.get("romaji"), t.get("english")):
        if n:
            q = re.sub(r"[^\w\s'’-]", " ", n)
            q = re.sub(r"\s+", " ", q).strip()
            if q and q.lower() not in (x.lower() for x in out):
                out.append(q)
    return out[:limit]


def matches_show(release: Release, titles: Sequence[tuple[str, int | None]]) -> bool:
    name = normalise_title(release.title)
    if not name:
        return False
    for base, season in titles:
        if name != base:
            continue
        want = season or 1
        got = release.season or 1
        if got == want or (release.season is None and season is not None):
            return True
    return False


def episode_rows(anime_id: int, results: Iterable[Result], show: dict[str, Any]) -> list[EpisodeTorrent]:
    """Rows of ``episode_torrents`` for the results that are this show's."""
    titles = show_titles(show)
    total = show.get("episodes")
    out: dict[tuple[int, str], EpisodeTorrent] = {}
    for r in results:
        if r.remake:
            continue   # Nyaa marks re-uploads of others' work: passed over
        rel = parse_release(r.title)
        if not matches_show(rel, titles):
            continue
        if rel.episode is not None:
            episodes = [rel.episode]
        elif rel.episode_start is not None and rel.episode_end is not None:
            episodes = list(range(rel.episode_start, rel.episode_end + 1))
        elif rel.batch and total:
            episodes = list(range(1, int(total) + 1))   # a season pack: every episode
        else:
            continue
        if total:
            episodes = [e for e in episodes if 1 <= e <= int(total)]
        batch = rel.episode is None
        for ep in episodes:
            row = EpisodeTorrent(
                anime_id=anime_id, episode=ep, infohash=r.infohash, title=r.title, magnet=r.magnet,
                resolution=rel.resolution, codec=rel.codec, source=rel.source, release_group=rel.group,
                version=rel.version, batch=batch, seeders=r.seeders, leechers=r.leechers, size=r.size,
                trusted=r.trusted, remake=r.remake, provider=r.provider)
            out.setdefault((ep, r.infohash), row)
    return sorted(out.values(), key=lambda x: (x.episode, *_rank(x)))


def _rank(t: EpisodeTorrent) -> tuple[Any, ...]:
    # trusted first, then the most seeders, a single episode before a batch, newer version first
    return (t.trusted is not True, -(t.seeders or 0), t.batch, -(t.version or 1), t.infohash)


def by_quality(rows: Iterable[EpisodeTorrent]) -> dict[str, list[EpisodeTorrent]]:
    """Torrents of one episode grouped by resolution (best first), qualities
    in :data:`QUALITIES` order, empty ones left out."""
    groups: dict[str, list[EpisodeTorrent]] = {}
    for r in rows:
        groups.setdefault(r.resolution if r.resolution in QUALITIES else "unknown", []).append(r)
    return {q: sorted(groups[q], key=_rank) for q in QUALITIES if q in groups}


def best_torrent(rows: Iterable[EpisodeTorrent], prefer: str = "1080p") -> EpisodeTorrent | None:
    """The one to play: the best of the preferred quality if it has seeders,
    else the best-seeded of any quality (higher resolution on a tie)."""
    groups = by_quality(rows)
    if not groups:
        return None
    first = groups.get(prefer, [None])[0]
    if first is not None and (first.seeders or 0) > 0:
        return first
    candidates = [g[0] for g in groups.values()]
    return sorted(candidates, key=lambda t: ((t.seeders or 0) <= 0, t.trusted is not True,
                                             QUALITIES.index(t.resolution if t.resolution in QUALITIES else "unknown"),
                                             -(t.seeders or 0)))[0]


def aired_episodes(show: dict[str, Any]) -> int | None:
    """How many episodes are out: all of a finished show's, those before the
    next airing one while it airs; None when AniList does not say."""
    nxt = show.get("next_airing_episode") or {}
    if nxt.get("episode"):
        return max(0, int(nxt["episode"]) - 1)
    if show.get("status") == "NOT_YET_RELEASED":
        return 0
    return show.get("episodes")


def torrent_files(info: bytes) -> list[tuple[int, str, int]]:
    """(libtorrent file index, path, size) of a bencoded info dictionary.
    Pad files (BEP 47) take an index but are not listed, as libtorrent does."""
    d = bdecode(info)
    if not isinstance(d, dict) or b"name" not in d:
        return []
    raw_name = d.get(b"name.utf-8", d[b"name"])
    name = raw_name.decode("utf-8", "replace") if isinstance(raw_name, bytes) else str(raw_name)
    if b"files" not in d:
        return [(0, name, int(d.get(b"length", 0)))]
    out = []
    for i, f in enumerate(d[b"files"]):
        attr = f.get(b"attr", b"")
        if isinstance(attr, bytes) and b"p" in attr:
            continue
        parts = f.get(b"path.utf-8", f.get(b"path", []))
        path = "/".join([name] + [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p) for p in parts])
        out.append((i, path, int(f.get(b"length", 0))))
    return out


def map_batch_files(files: Sequence[tuple[int, str, int]], episodes: Sequence[int]) -> dict[int, tuple[int, str]]:
    """episode -> (file index, path) inside a batch. Each video file's name is
    parsed; extras (NCOP/NCED/PV/specials folders) are ignored. When the names
    carry no numbers but there are exactly as many videos as episodes, they are
    taken in path order."""
    videos = [(i, p, s) for i, p, s in files if p.lower().endswith(VIDEO_EXTENSIONS)
              and not re.search(r"\b(nc ?op|nc ?ed|ncop\d*|nced\d*|pv|cm|menu|preview|trailer|extras?|specials?|sps?|bonus)\b",
                                p.lower().replace("_", " "))]
    wanted = set(episodes)
    out: dict[int, tuple[int, str]] = {}
    unnumbered = []
    for i, p, _s in videos:
        rel = parse_release(p.rsplit("/", 1)[-1])
        if rel.episode is not None and rel.episode in wanted and rel.episode not in out:
            out[rel.episode] = (i, p)
        elif rel.episode is None:
            unnumbered.append((i, p))
    if not out and unnumbered and len(unnumbered) == len(episodes):
        for ep, (i, p) in zip(sorted(episodes), sorted(unnumbered, key=lambda x: x[1])):
            out[ep] = (i, p)
    if not out and len(videos) == len(episodes):   # numbers that are not episodes (e.g. "Vol.1")
        for ep, (i, p, _s) in zip(sorted(episodes), sorted(videos, key=lambda x: x[1])):
            out[ep] = (i, p)
    return out
