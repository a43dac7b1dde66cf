"""HTTP ``Range`` decisions (RFC 9110 §14): header text and file size in, a `RangePlan` out.

Pure functions, no Tornado, no libtorrent: the stream handler asks `parse_range` what to send
and only writes it. GET and HEAD use the same plan, so they send the same headers.

Policy, with the RFC's permission for each choice:

* A header that is malformed, uses a unit other than ``bytes``, has an invalid range
  (``last < first``) or more than `MAX_RANGES` ranges is ignored: 200 with the whole file
  (§14.2: a server MAY ignore the Range header field; it MUST ignore unknown units).
* Ranges that start at or past the end are unsatisfiable and dropped; if none is left the
  answer is 416 with ``Content-Range: bytes */size`` (§15.5.17). An end past the file is clipped.
* Several ranges are sorted and coalesced when they overlap or touch. If one range remains it is
  served as a normal 206. If several remain we serve 200 with the whole file instead of a
  ``multipart/byteranges`` body: browsers never send multi-range requests for media (the
  ``<video>`` element asks for ``bytes=N-``), so multipart would be code and tests for no user,
  and the whole file is always a correct answer (§14.2).
* A zero-length file cannot satisfy any range (there is no byte to point at, and
  ``bytes 0--1/0`` cannot be written), so any well-formed Range on it gets 416.

>>> parse_range("bytes=0-", 1000)
RangePlan(status=206, ranges=((0, 999),), content_range='bytes 0-999/1000', length=1000)
>>> parse_range("bytes=2000-", 1000)
RangePlan(status=416, ranges=(), content_range='bytes */1000', length=0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MAX_RANGES",
    "RangePlan",
    "content_range_header",
    "parse_range",
]

# Far above anything a real client sends, low enough that a hostile header costs nothing.
MAX_RANGES = 100

# Positions are compared with the file size only, so digits beyond this many can be treated as
# "larger than any file" without converting them (int() refuses strings over 4300 digits).
_MAX_POSITION_DIGITS = 30
_OVERSIZED_POSITION = 10**_MAX_POSITION_DIGITS

# int-range "first-last" (last optional) or suffix-range "-length"; ASCII digits only, and no
# whitespace inside a range-spec (OWS is allowed only around the list's commas).
_RANGE_SPEC = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)", re.ASCII)
# range-unit is a token (§5.6.2), compared case-insensitively.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)


@dataclass(frozen=True)
class RangePlan:
    """What to send for one request.

    status:        200 (whole file), 206 (one range) or 416 (nothing satisfiable)
    ranges:        inclusive (start, end) byte positions to send, clipped to the file; for 200
                   this is the whole file ``((0, size - 1),)``, or ``()`` when the file is empty
    content_range: the ``Content-Range`` value for 206 and 416, None for 200
    length:        the ``Content-Length`` of the body (0 for 416)
    """

    status: int
    ranges: tuple[tuple[int, int], ...]
    content_range: str | None
    length: int

    def headers(self) -> dict[str, str]:
        """Accept-Ranges, Content-Length and, when needed, Content-Range for this plan."""
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(self.length)}
        if self.content_range is not None:
            headers["Content-Range"] = self.content_range
        return headers


def content_range_header(start: int, end: int, size: int) -> str:
    """The ``Content-Range`` value for bytes ``start..end`` (inclusive) of a ``size``-byte file.

    >>> content_range_header(0, 99, 1000)
    'bytes 0-99/1000'
    >>> content_range_header(0, 1000, 1000)
    Traceback (most recent call last):
    ...
    ValueError: range 0-1000 is not within a 1000-byte file
    """
    if not 0 <= start <= end < size:
        raise ValueError(f"range {start}-{end} is not within a {size}-byte file")
    return f"bytes {start}-{end}/{size}"


def parse_range(header: str | None, size: int) -> RangePlan:
    """Decide the response to a request with ``Range: header`` for a ``size``-byte file.

    >>> parse_range(None, 1000).status
    200
    >>> parse_range("bytes=0-99", 1000)
    RangePlan(status=206, ranges=((0, 99),), content_range='bytes 0-99/1000', length=100)
    >>> parse_range("bytes=-100", 1000).ranges       # suffix: the last 100 bytes
    ((900, 999),)
    >>> parse_range("bytes=900-5000", 1000).ranges   # an end past the file is clipped
    ((900, 999),)
    >>> parse_range("bytes=-0", 1000).status         # a zero-length suffix selects nothing
    416
    >>> parse_range("bytes=5-1", 1000).status        # invalid range: header ignored
    200
    >>> parse_range("items=0-1", 1000).status        # unknown unit: header ignored
    200
    >>> parse_range("bytes=0-9, 10-19", 1000).ranges # adjacent ranges coalesce into one
    ((0, 19),)
    >>> parse_range("bytes=0-9, 20-29", 1000)        # disjoint ranges: the whole file instead
    RangePlan(status=200, ranges=((0, 999),), content_range=None, length=1000)
    >>> parse_range("bytes=0-", 0)
    RangePlan(status=416, ranges=(), content_range='bytes */0', length=0)
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    specs = _parse_range_set(header)
    if specs is None:
        return _whole_file(size)

    satisfiable = [r for r in (_clip(first, last, size) for first, last in specs) if r is not None]
    if not satisfiable:
        return RangePlan(status=416, ranges=(), content_range=f"bytes */{size}", length=0)

    merged = _coalesce(satisfiable)
    if len(merged) > 1:
        return _whole_file(size)
    start, end = merged[0]
    return RangePlan(
        status=206,
        ranges=((start, end),),
        content_range=content_range_header(start, end, size),
        length=end - start + 1,
    )


def _whole_file(size: int) -> RangePlan:
    ranges = ((0, size - 1),) if size > 0 else ()
    return RangePlan(status=200, ranges=ranges, content_range=None, length=size)


# A parsed range-spec: (first, last) for int-range with last None when open-ended, or
# (None, length) for a suffix-range.
_Spec = tuple[int | None, int | None]


def _parse_range_set(header: str | None) -> list[_Spec] | None:
    """The range-specs of a ``bytes`` Range header, or None when the header must be ignored."""
    if header is None:
        return None
    unit, equals, range_set = header.partition("=")
    unit = unit.strip()
    if not equals or not _TOKEN.fullmatch(unit) or unit.lower() != "bytes":
        return None
    specs: list[_Spec] = []
    # 1#range-spec: a comma list whose empty elements recipients must accept (§5.6.1.2).
    for element in range_set.split(","):
        element = element.strip(" \t")
        if not element:
            continue
        if len(specs) == MAX_RANGES:
            return None
        match = _RANGE_SPEC.fullmatch(element)
        if match is None:
            return None
        first_text, last_text, suffix_text = match.groups()
        if suffix_text is not None:
            specs.append((None, _position(suffix_text)))
            continue
        first = _position(first_text)
        last = _position(last_text) if last_text else None
        if last is not None and last < first:
            return None  # an invalid int-range makes the whole range-set invalid
        specs.append((first, last))
    return specs or None


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _OVERSIZED_POSITION if len(digits) > _MAX_POSITION_DIGITS else int(digits)


def _clip(first: int | None, last: int | None, size: int) -> tuple[int, int] | None:
    """Inclusive byte positions within the file, or None when the spec is unsatisfiable."""
    if first is None:  # suffix-range: the last `last` bytes
        assert last is not None
        if last == 0 or size == 0:
            return None
        return max(size - last, 0), size - 1
    if first >= size:
        return None
    end = size - 1 if last is None else min(last, size - 1)
    return first, end


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted ranges with overlapping or adjacent ones merged."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
