"""Pure helpers: query validation and normalisation, sizes, dates, words.

>>> normalise_query("  Big   Buck\\tBUNNY ")
'big buck bunny'
>>> parse_size("1.2 GiB")
1288490188
>>> words("Big.Buck.Bunny_1080p[x264]")
['big', 'buck', 'bunny', '1080p', 'x264']
"""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["QueryError", "MAX_QUERY_CHARS", "validate_query", "normalise_query",
           "parse_size", "rfc822_to_iso", "unix_to_iso", "words"]

MAX_QUERY_CHARS = 512


class QueryError(ValueError):
    """A query we refuse; the message says what to change."""


def validate_query(raw: str | bytes | None) -> str:
    """The query to send, stripped; :class:`QueryError` for empty, too long,
    non-UTF-8 or control characters.

    >>> validate_query(b"caf\\xc3\\xa9 ")
    'café'
    >>> validate_query("a\\x00b")
    Traceback (most recent call last):
    ...
    tstream_kit.search.query.QueryError: query contains a control character (U+0000 at position 1)
    """
    if raw is None:
        raise QueryError("missing query: pass ?query=words to search for")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError(f"query is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at {exc.start})") from None
    for i, ch in enumerate(raw):
        # Cc: C0/C1 controls (tabs and newlines too); Cs: lone surrogates
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise QueryError(f"query contains a control character (U+{ord(ch):04X} at position {i})")
    text = raw.strip()
    if not text:
        raise QueryError("empty query: pass ?query=words to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is too long: {len(text)} characters, at most {MAX_QUERY_CHARS}")
    return text


def normalise_query(query: str) -> str:
    """The cache-key form: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", query).casefold().split())


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case words of a name: dots, dashes, brackets and underscores split."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


_UNITS = {"b": 1, "bytes": 1, "byte": 1,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | None) -> int | None:
    """Bytes from "1.2 GiB", "734 MiB", "12345" or "1,5 GB"; None if unreadable.

    >>> parse_size("734.5 MiB"), parse_size("12345"), parse_size("lots")
    (770179072, 12345, None)
    """
    if text is None:
        return None
    m = _SIZE.match(text.replace(",", "."))
    if not m:
        return None
    unit = _UNITS.get(m.group(2).lower() or "b")
    if unit is None:
        return None
    try:
        return int(float(m.group(1)) * unit)
    except OverflowError:   # "1e400"-sized digits from a hostile feed: unreadable, not a crash
        return None


def rfc822_to_iso(text: str | None) -> str | None:
    """ISO 8601 UTC from an RSS pubDate; None if unreadable.

    >>> rfc822_to_iso("Sun, 08 Sep 2024 14:05:01 -0000")
    '2024-09-08T14:05:01Z'
    """
    if not text:
        return None
    try:
        dt = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:   # year 1 at +0100 is before datetime.min in UTC
        return None


def unix_to_iso(value: str | int | float | None) -> str | None:
    """ISO 8601 UTC from a Unix time; None for 0, missing or junk.

    >>> unix_to_iso("1700000000")
    '2023-11-14T22:13:20Z'
    """
    try:
        ts = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not ts > 0:   # also NaN
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):   # past year 9999, or inf
        return None


def to_int(value: object) -> int | None:
    """An int from an indexer's number field (str/int), None if absent or junk."""
    if value is None or value == "":
        return None
    try:
        return int(float(str(value)))
    except (ValueError, OverflowError):   # junk, NaN, inf or "1e400"
        return None
