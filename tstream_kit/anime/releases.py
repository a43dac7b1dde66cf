"""Release names as people publish them, read into fields (pure, no I/O).

Two families cover nearly everything on Nyaa and Torznab indexers::

    [SubsPlease] Sousou no Frieren - 05 (1080p) [A1B2C3D4].mkv       fansub style
    [Judas] Vinland Saga (Season 2) [1080p][HEVC x265 10bit][Multi-Subs] (Batch)
    [Group] Show Name (01-12) [BD 1080p]                               a range
    Show.Name.S01E05.1080p.WEB.x264-GRP                                scene style
    Show Name S02 1080p BluRay 10-bit x265 Dual Audio-GRP              a season pack

:func:`parse_release` never raises: a name it cannot read gives a
:class:`Release` with only ``title`` set. Episode numbers are absolute as
written (``S01E05`` is season 1, episode 5); mapping them onto an AniList entry
is :mod:`.episodes`' job.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Release", "parse_release", "normalise_title"]

_EXT = re.compile(r"\.(mkv|mp4|avi|m4v|webm|ts|wmv|flv|torrent)$", re.I)
_GROUP = re.compile(r"^\s*[\[【]([^\]】]+)[\]】]\s*")
_TAG = re.compile(r"\[([^\]]*)\]|\(([^)]*)\)|【([^】]*)】")
_HASH = re.compile(r"^[0-9A-F]{8}$", re.I)
_YEAR = re.compile(r"^(19[5-9]\d|20[0-4]\d)$")

_RES = [
    ("2160p", re.compile(r"\b(2160p|4k|uhd|3840x2160)\b", re.I)),
    ("1080p", re.compile(r"(\b|(?<=bd))(1080p|1080i|fhd|1920x1080|1440x1080)\b", re.I)),
    ("720p", re.compile(r"(\b|(?<=bd))(720p|1280x720)\b", re.I)),
    ("480p", re.compile(r"\b(480p|576p|sd|848x480|640x480|720x480)\b", re.I)),
]
_CODEC = [
    ("AV1", re.compile(r"\bav1\b", re.I)),
    ("x265", re.compile(r"\b(x\.?265|h\.?265|hevc)\b", re.I)),
    ("x264", re.compile(r"\b(x\.?264|h\.?264|avc)\b", re.I)),
]
_SOURCE = [
    ("BD", re.compile(r"\bbd(?=\d{3,4}p)|\b(bd|bdrip|bd-?rip|blu-?ray|bdmv|bdremux|bd-?remux|bdiso)\b", re.I)),
    ("WEB", re.compile(r"\b(web|web-?dl|web-?rip|webrip|cr|crunchyroll|amzn|nf|netflix|dsnp|hidive|adn|b-global|bilibili)\b", re.I)),
    ("DVD", re.compile(r"\b(dvd|dvdrip|dvd-?rip)\b", re.I)),
    ("TV", re.compile(r"\b(hdtv|tvrip|tv-?rip)\b", re.I)),
]
_AUDIO = [
    ("FLAC", re.compile(r"\bflac(?:[ .]?\d\.\d)?\b", re.I)),
    ("Opus", re.compile(r"\bopus(?:[ .]?\d\.\d)?\b", re.I)),
    ("TrueHD", re.compile(r"\btrue-?hd\b", re.I)),
    ("DTS", re.compile(r"\bdts(?:-?hd)?(?:[ .-]?ma)?\b", re.I)),
    ("E-AC3", re.compile(r"\b(e-?ac-?3|ddp|dd\+)(?:[ .]?\d\.\d)?", re.I)),
    ("AC3", re.compile(r"(?<![e-])\b(ac-?3|dd)(?:[ .]?\d\.\d)?\b", re.I)),
    ("AAC", re.compile(r"\baac(?:[ .]?\d\.\d)?\b", re.I)),
    ("MP3", re.compile(r"\bmp3\b", re.I)),
]
_DUAL = re.compile(r"\b(dual[ .-]?audio|multi[ .-]?audio|dual|eng?[ .-]?jp|jp[ .-]?en)\b", re.I)
_BIT10 = re.compile(r"\b(10[ .-]?bits?|hi10p?|yuv420p10)\b", re.I)
_BATCH = re.compile(r"\b(batch|complete(?: series| season)?|season pack)\b", re.I)

# episode markers, tried in this order on the "name zone" (outside tags)
_SXXEYY = re.compile(r"\bS(\d{1,2})[ .]?E(\d{1,4})(?:v(\d))?(?:[ .-]?(?:E|-E?)(\d{1,4}))?\b", re.I)
_XFORMAT = re.compile(r"\b(\d{1,2})x(\d{2,3})\b")
_EPWORD = re.compile(r"\b(?:episode|ep\.?|e)[ .]?(\d{1,4})(?:v(\d))?\b", re.I)
_DASH_RANGE = re.compile(r"\s[-–]\s*(\d{1,4})\s*(?:[-~–]|to)\s*(\d{1,4})(?=$|\s)", re.I)
_DASH_EP = re.compile(r"\s[-–]\s*(\d{1,4})(?:\.(5))?(?:v(\d))?(?=$|\s|[^\w])")
_BARE_RANGE = re.compile(r"(?:^|\s)(\d{1,4})\s*[-~]\s*(\d{1,4})(?=$|\s)")
_TRAILING_EP = re.compile(r"\s#?(\d{1,4})(?:v(\d))?$")
_SEASON = re.compile(r"\b(?:S(\d{1,2})(?![\dE])|season[ .]?(\d{1,2})|(\d{1,2})(?:st|nd|rd|th)[ .]season)\b", re.I)
_SEASON_WORD = re.compile(r"\b(second|third|fourth|fifth)[ .]season\b", re.I)
_ORDINALS = {"second": 2, "third": 3, "fourth": 4, "fifth": 5}
_QUALITY_TOKEN = re.compile(
    r"\b(2160p|1080p|1080i|720p|480p|576p|4k|web(?:-?dl|-?rip)?|blu-?ray|bd(?:rip)?|hdtv|x\.?26[45]|h\.?26[45]|"
    r"hevc|av1|aac|flac|opus|10bit|dual[ .-]audio|multi|proper|repack)\b", re.I)


@dataclass
class Release:
    """Fields read from one release name. ``episode`` is set for a single
    episode, ``episode_start``/``episode_end`` for a range (a batch);
    ``batch`` is also true for season packs without numbers."""

    name: str
    title: str = ""
    group: str | None = None
    season: int | None = None
    episode: int | None = None
    episode_start: int | None = None
    episode_end: int | None = None
    version: int | None = None
    batch: bool = False
    resolution: str | None = None
    codec: str | None = None
    source: str | None = None
    audio: list[str] = field(default_factory=list)
    dual_audio: bool = False
    bit_depth: int | None = None
    year: int | None = None
    extension: str | None = None
    checksum: str | None = None

    def covers(self, episode: int) -> bool:
        """Whether this release contains ``episode`` (by its numbers)."""
        if self.episode is not None:
            return self.episode == episode
        if self.episode_start is not None and self.episode_end is not None:
            return self.episode_start <= episode <= self.episode_end
        return False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_title(text: str) -> str:
    """Lower-case words only, for comparing titles: ``"Sousou no Frieren: Part 2"``
    -> ``"sousou no frieren part 2"``."""
    text = re.sub(r"['’`]", "", text.lower())
    return " ".join(re.findall(r"[^\W_]+", text))


def _first(table: list[tuple[str, re.Pattern[str]]], text: str) -> str | None:
    for value, rx in table:
        if rx.search(text):
            return value
    return None


def parse_release(name: str) -> Release:
    r = Release(name=name)
    text = name.strip()
    m = _EXT.search(text)
    if m:
        r.extension = m.group(1).lower()
        text = text[:m.start()]
    # scene names use dots (or underscores) for spaces; keep "5.1", "H.264", "DD+2.0"
    scene = " " not in text.strip() and ("." in text or "_" in text)
    if "_" in text and text.count("_") > text.count(" "):
        text = text.replace("_", " ")
    flat = _despace(text) if scene else text
    # what the name says anywhere
    r.resolution = _first(_RES, flat)
    r.codec = _first(_CODEC, flat)
    r.source = _first(_SOURCE, flat.replace("Blu-Ray", "BluRay"))
    r.audio = [value for value, rx in _AUDIO if rx.search(flat)]
    r.dual_audio = bool(_DUAL.search(flat))
    r.bit_depth = 10 if _BIT10.search(flat) else (8 if re.search(r"\b8[ .-]?bit\b", flat, re.I) else None)
    r.batch = bool(_BATCH.search(flat))

    rest = flat
    g = _GROUP.match(rest)
    if g:
        r.group = g.group(1).strip()
        rest = rest[g.end():]
    elif scene or re.search(r"-[A-Za-z0-9]+$", rest):
        sg = re.search(r"-([A-Za-z][A-Za-z0-9]{1,15})$", rest)
        if sg and not re.fullmatch(r"\d+", sg.group(1)):
            r.group = sg.group(1)
            rest = rest[:sg.start()]

    # tags: [..] and (..) anywhere after the group; some carry episodes
    zone_parts: list[str] = []
    pos = 0
    tags: list[str] = []
    for t in _TAG.finditer(rest):
        zone_parts.append(rest[pos:t.start()])
        pos = t.end()
        tags.append((t.group(1) or t.group(2) or t.group(3) or "").strip())
        zone_parts.append(" \x00 ")   # where a tag was: ends a title
    zone_parts.append(rest[pos:])
    zone = "".join(zone_parts)
    for tag in tags:
        if _HASH.match(tag):
            r.checksum = tag.upper()
        elif _YEAR.match(tag):
            r.year = int(tag)
        else:
            tm = re.fullmatch(r"(?:ep?\s*)?(\d{1,4})\s*[-~]\s*(\d{1,4})(?:\s*(?:end|fin))?", tag, re.I)
            if tm and r.episode_start is None and int(tm.group(1)) < int(tm.group(2)):
                r.episode_start, r.episode_end = int(tm.group(1)), int(tm.group(2))
                continue
            tm = re.fullmatch(r"(?:ep?\s*)?(\d{1,4})(?:v(\d))?", tag, re.I)
            if tm and r.episode is None and not _YEAR.match(tm.group(1)) and int(tm.group(1)) < 2000:
                r.episode = int(tm.group(1))
                r.version = int(tm.group(2)) if tm.group(2) else r.version
                continue
            sm = _SEASON.search(tag) or _SEASON_WORD.search(tag)
            if sm and r.season is None:
                r.season = _season_of(sm)

    title_end = _read_episode(r, zone)
    title = zone[:title_end] if title_end is not None else zone
    title = title.split("\x00")[0]
    # a quality token ends a scene title ("Show Name 1080p WEB ...")
    q = _QUALITY_TOKEN.search(title)
    if q:
        title = title[:q.start()]
    y = re.search(r"\b(19[5-9]\d|20[0-4]\d)\s*$", title.strip())
    if y and scene and len(title.strip()) > 4:
        r.year = r.year or int(y.group(1))
        title = title.strip()[:-4]
    sm = _SEASON.search(title) or _SEASON_WORD.search(title)
    if sm:
        r.season = r.season or _season_of(sm)
        title = title[:sm.start()] + title[sm.end():]
    title = re.sub(r"\b(batch|complete|the complete series)\b", "", title, flags=re.I)
    r.title = re.sub(r"\s+", " ", title).strip(" -–_.,:|+~")
    if r.episode_start is not None and r.episode is None:
        r.batch = True
    if r.episode is None and r.episode_start is None and r.season is not None and not r.batch:
        r.batch = True   # "Show S02 1080p": a season pack
    if r.episode is not None:
        r.episode_start = r.episode_end = None
        if not _BATCH.search(flat):
            r.batch = False
    return r


def _despace(text: str) -> str:
    """Dots between words become spaces; dots inside numbers and codec names stay."""
    out = re.sub(r"(?<![0-9])\.(?![0-9])|(?<=[0-9])\.(?![0-9])|(?<![0-9])\.(?=[0-9])", " ", text)
    out = re.sub(r"\b([HhXx]) (26[45])\b", r"\1.\2", out)     # "H 264" from "H.264"
    out = re.sub(r"\b(DD|DDP|AAC|DD\+|FLAC|Opus) ?(\d) (\d)\b", r"\1\2.\3", out)
    return out


def _season_of(m: re.Match[str]) -> int:
    if m.re is _SEASON_WORD:
        return _ORDINALS[m.group(1).lower()]
    return int(next(g for g in m.groups() if g))


def _read_episode(r: Release, zone: str) -> int | None:
    """Set episode fields from the text outside tags; return where the title ends."""
    m = _SXXEYY.search(zone)
    if m:
        r.season = int(m.group(1))
        first, last = int(m.group(2)), m.group(4)
        if last and int(last) > first:
            r.episode_start, r.episode_end = first, int(last)
        else:
            r.episode = first
        r.version = int(m.group(3)) if m.group(3) else r.version
        return m.start()
    m = _XFORMAT.search(zone)
    if m and not re.search(r"\d{3,4}x\d{3,4}", zone):
        r.season, r.episode = int(m.group(1)), int(m.group(2))
        return m.start()
    head = zone.split("\x00")[0]
    found = _dash_or_word(r, head)
    if found is None and "\x00" in zone:
        found = _dash_or_word(r, zone)   # "Show (2023) (Season 2) - 04 [1080p]"
    if found is not None:
        return found
    return _bare(r, head)


def _dash_or_word(r: Release, head: str) -> int | None:
    m = _DASH_RANGE.search(head)
    if m and int(m.group(1)) < int(m.group(2)):
        r.episode_start, r.episode_end = int(m.group(1)), int(m.group(2))
        return m.start()
    dashes = list(_DASH_EP.finditer(head))
    if dashes:
        m = dashes[-1]
        num = int(m.group(1))
        if not (_YEAR.match(m.group(1)) and len(head[m.end():].strip()) == 0 and num > 1950):
            r.episode = num
            r.version = int(m.group(3)) if m.group(3) else r.version
            return m.start()
    m = _EPWORD.search(head)
    if m:
        r.episode = int(m.group(1))
        r.version = int(m.group(2)) if m.group(2) else r.version
        return m.start()
    return None


def _bare(r: Release, head: str) -> int | None:
    m = _BARE_RANGE.search(head)
    if m and int(m.group(1)) < int(m.group(2)) and not _YEAR.match(m.group(1)):
        r.episode_start, r.episode_end = int(m.group(1)), int(m.group(2))
        return m.start()
    if r.episode is None and r.episode_start is None:
        stripped = head.rstrip()
        m = _TRAILING_EP.search(stripped)
        if m and len(stripped[:m.start()].strip()) >= 2 and not _YEAR.match(m.group(1)) \
                and not re.search(r"\b(S\d|season)\s*$", stripped[:m.start()], re.I):
            r.episode = int(m.group(1))
            r.version = int(m.group(2)) if m.group(2) else r.version
            return m.start()
    return None
