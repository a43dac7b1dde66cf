"""Subtitles to WebVTT (what ``<track>`` takes). Pure: bytes in, text out.

SubRip (``.srt``), SubStation Alpha (``.ass``/``.ssa``: the ``[Events]`` Dialogue lines, override
tags like ``{\\an8}`` dropped, ``\\N`` as a line break) and WebVTT itself. Text files come in any
encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252 (which decodes every
byte, so old European releases still read).
"""
from __future__ import annotations

import re

__all__ = ["decode_text", "srt_to_vtt", "ass_to_vtt", "normalise_vtt", "to_webvtt",
           "SUBTITLE_FORMATS", "language_from_name", "SubtitleError"]

SUBTITLE_FORMATS = ("srt", "ass", "ssa", "vtt")


class SubtitleError(ValueError):
    """Not a subtitle file we can read."""


def decode_text(data: bytes) -> str:
    """
    >>> decode_text("\\ufeffé".encode("utf-8")), decode_text("é".encode("cp1252"))
    ('é', 'é')
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


_SRT_TIME = re.compile(
    r"(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})\s*-->\s*(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})(.*)")


def _ts(h: str, m: str, s: str, frac: str) -> str:
    ms = int(frac.ljust(3, "0")[:3])
    return f"{int(h):02d}:{int(m):02d}:{int(s):02d}.{ms:03d}"


def _clean_cue_text(text: str) -> str:
    text = re.sub(r"\{\\[^}]*\}", "", text)          # {\an8} and friends
    return text.replace("-->", "->").strip("\n")


def srt_to_vtt(text: str) -> str:
    """
    >>> print(srt_to_vtt("1\\r\\n00:00:01,000 --> 00:00:02,500\\r\\n<i>Hi</i>\\r\\n"))
    WEBVTT
    <BLANKLINE>
    00:00:01.000 --> 00:00:02.500
    <i>Hi</i>
    <BLANKLINE>
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    cues = []
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.split("\n")]
        for i, line in enumerate(lines):
            m = _SRT_TIME.match(line.strip())
            if m:
                g = m.groups()
                body = _clean_cue_text("\n".join(lines[i + 1:]))
                if body.strip():
                    cues.append(f"{_ts(*g[0:4])} --> {_ts(*g[4:8])}\n{body}")
                break
    if not cues and text.strip():
        raise SubtitleError("no SubRip cues found (expected '00:00:01,000 --> 00:00:02,000' lines)")
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def _ass_time(t: str) -> tuple[float, str]:
    h, m, s = t.strip().split(":")
    sec, _, cs = s.partition(".")
    total = int(h) * 3600 + int(m) * 60 + int(sec) + int((cs or "0").ljust(2, "0")[:2]) / 100
    ms = int(round(total * 1000))
    hh, ms = divmod(ms, 3_600_000)
    mm, ms = divmod(ms, 60_000)
    ss, ms = divmod(ms, 1000)
    return total, f"{hh:02d}:{mm:02d}:{ss:02d}.{ms:03d}"


def ass_to_vtt(text: str) -> str:
    r"""
    >>> ass = ("[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    ...        "Dialogue: 0,0:00:01.50,0:00:03.00,Default,,0,0,0,,{\\i1}Hello{\\i0}, you\\Nthere\n")
    >>> print(ass_to_vtt(ass))
    WEBVTT
    <BLANKLINE>
    00:00:01.500 --> 00:00:03.000
    Hello, you
    there
    <BLANKLINE>
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    fmt: list[str] | None = None
    in_events = False
    cues: list[tuple[float, str]] = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("["):
            in_events = s.lower() == "[events]"
            continue
        if not in_events:
            continue
        if s.lower().startswith("format:"):
            fmt = [x.strip().lower() for x in s[7:].split(",")]
        elif s.lower().startswith("dialogue:") and fmt:
            values = s[9:].lstrip().split(",", len(fmt) - 1)
            if len(values) != len(fmt):
                continue
            row = dict(zip(fmt, values))
            try:
                start, start_s = _ass_time(row["start"])
                _, end_s = _ass_time(row["end"])
            except (KeyError, ValueError):
                continue
            body = row.get("text", "")
            body = re.sub(r"\{[^}]*\}", "", body).replace("\\N", "\n").replace("\\n", "\n")
            body = _clean_cue_text(body.replace("\\h", " "))
            if body.strip():
                cues.append((start, f"{start_s} --> {end_s}\n{body}"))
    if fmt is None:
        raise SubtitleError("no [Events] Format line: not an ASS/SSA file")
    cues.sort(key=lambda c: c[0])
    return "WEBVTT\n\n" + "\n\n".join(c for _, c in cues) + "\n"


def normalise_vtt(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    if not text.startswith("WEBVTT"):
        raise SubtitleError("a WebVTT file starts with 'WEBVTT'")
    return text


def to_webvtt(fmt: str, data: bytes) -> str:
    """``fmt`` is the extension: srt, ass, ssa or vtt."""
    text = decode_text(data)
    fmt = fmt.lower().lstrip(".")
    if fmt == "srt":
        return srt_to_vtt(text)
    if fmt in ("ass", "ssa"):
        return ass_to_vtt(text)
    if fmt == "vtt":
        return normalise_vtt(text)
    raise SubtitleError(f"subtitle format {fmt!r} is not supported (srt, ass, ssa, vtt)")


_LANG_RE = re.compile(r"[._\-\s\[(]([a-z]{2,3}(?:-[a-z]{2})?)[\])]?\.(?:srt|ass|ssa|vtt)$", re.I)
_NOT_LANGS = {"sdh", "cc", "hi", "the", "sub", "subs", "forced", "full"}


def language_from_name(name: str) -> str | None:
    """
    >>> language_from_name("Movie.2020.en.srt"), language_from_name("ep01.[eng].ass"), language_from_name("subs.srt")
    ('en', 'eng', None)
    """
    m = _LANG_RE.search(name)
    if not m or m.group(1).lower() in _NOT_LANGS:
        return None
    return m.group(1).lower()
