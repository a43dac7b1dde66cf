"""Range decisions: a table of RFC 9110 cases, the module's doctests, and properties."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tstream_kit.server import ranges
from tstream_kit.server.ranges import MAX_RANGES, RangePlan, content_range_header, parse_range

SIZE = 1000


def whole(size: int = SIZE) -> RangePlan:
    return RangePlan(200, ((0, size - 1),) if size else (), None, size)


def partial(start: int, end: int, size: int = SIZE) -> RangePlan:
    return RangePlan(206, ((start, end),), f"bytes {start}-{end}/{size}", end - start + 1)


def unsatisfiable(size: int = SIZE) -> RangePlan:
    return RangePlan(416, (), f"bytes */{size}", 0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # no header, or one we must ignore -> the whole file
        (None, whole()),
        ("", whole()),
        ("bytes", whole()),
        ("bytes=", whole()),
        ("bytes=,,", whole()),
        ("bytes=abc", whole()),
        ("bytes=1-2-3", whole()),
        ("bytes=--5", whole()),
        ("bytes=-", whole()),
        ("bytes=+1-2", whole()),
        ("bytes=1 -2", whole()),  # no whitespace inside a range-spec
        ("bytes=0x10-20", whole()),
        ("bytes=\u0661-\u0662", whole()),  # Arabic-Indic digits are not DIGIT
        ("bytes=1_0-20", whole()),  # int() would accept the underscore; the grammar does not
        ("bytes=5-1", whole()),  # last < first: invalid
        ("bytes=0-1,5-1", whole()),  # one invalid spec invalidates the set
        ("bytes=0-1,junk", whole()),
        ("items=0-1", whole()),  # unknown unit
        ("bytes 0-1", whole()),
        ("by tes=0-1", whole()),
        # single ranges
        ("bytes=0-0", partial(0, 0)),
        ("bytes=0-99", partial(0, 99)),
        ("bytes=0-", partial(0, 999)),
        ("bytes=500-", partial(500, 999)),
        ("bytes=999-", partial(999, 999)),
        ("bytes=900-5000", partial(900, 999)),  # end clipped
        ("bytes=0-" + "9" * 5000, partial(0, 999)),  # absurd end: clipped, no int() blow-up
        ("bytes=-1", partial(999, 999)),
        ("bytes=-100", partial(900, 999)),
        ("bytes=-1000", partial(0, 999)),
        ("bytes=-5000", partial(0, 999)),  # suffix longer than the file: the whole file, as 206
        ("bytes=-" + "9" * 5000, partial(0, 999)),
        ("bytes=007-010", partial(7, 10)),  # leading zeros are still DIGITs
        ("Bytes=0-9", partial(0, 9)),  # unit is case-insensitive
        ("BYTES=0-9", partial(0, 9)),
        (" bytes = 0-9 ", partial(0, 9)),
        ("bytes=\t0-9\t", partial(0, 9)),
        ("bytes=0-9,", partial(0, 9)),  # empty list elements are allowed
        ("bytes=, ,0-9", partial(0, 9)),
        # unsatisfiable
        ("bytes=1000-", unsatisfiable()),
        ("bytes=1000-2000", unsatisfiable()),
        ("bytes=" + "9" * 5000 + "-", unsatisfiable()),
        ("bytes=-0", unsatisfiable()),
        ("bytes=-000", unsatisfiable()),
        ("bytes=1000-,2000-3000,-0", unsatisfiable()),
        # several ranges: unsatisfiable ones dropped, the rest coalesced
        ("bytes=0-9,2000-3000", partial(0, 9)),
        ("bytes=0-9,10-19", partial(0, 19)),  # adjacent
        ("bytes=10-19,0-9", partial(0, 19)),  # order does not matter
        ("bytes=0-50,25-75", partial(0, 75)),  # overlapping
        ("bytes=0-99,10-20", partial(0, 99)),  # contained
        ("bytes=900-,-50", partial(900, 999)),  # suffix inside an open range
        ("bytes=0-0,-0", partial(0, 0)),
        ("bytes=0-9,20-29", whole()),  # disjoint: whole file instead of multipart
        ("bytes=0-0,-1", whole()),  # first and last byte (a probe some players send)
    ],
)
def test_parse_range(header: str | None, expected: RangePlan) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, whole(0)),
        ("bytes=junk", whole(0)),  # malformed is ignored even for an empty file
        ("bytes=0-", unsatisfiable(0)),
        ("bytes=0-0", unsatisfiable(0)),
        ("bytes=-1", unsatisfiable(0)),
        ("bytes=-0", unsatisfiable(0)),
    ],
)
def test_parse_range_empty_file(header: str | None, expected: RangePlan) -> None:
    assert parse_range(header, 0) == expected


def test_range_count_cap() -> None:
    at_cap = "bytes=" + ",".join(["0-0"] * MAX_RANGES)
    over_cap = "bytes=" + ",".join(["0-0"] * (MAX_RANGES + 1))
    assert parse_range(at_cap, SIZE) == partial(0, 0)
    assert parse_range(over_cap, SIZE) == whole()
    # empty elements do not count towards the cap
    assert parse_range(at_cap + "," * 500, SIZE) == partial(0, 0)


def test_negative_size_is_a_caller_bug() -> None:
    with pytest.raises(ValueError):
        parse_range("bytes=0-", -1)


def test_headers_for_each_status() -> None:
    assert parse_range("bytes=0-99", SIZE).headers() == {
        "Accept-Ranges": "bytes",
        "Content-Length": "100",
        "Content-Range": "bytes 0-99/1000",
    }
    assert parse_range(None, SIZE).headers() == {"Accept-Ranges": "bytes", "Content-Length": "1000"}
    assert parse_range("bytes=5000-", SIZE).headers() == {
        "Accept-Ranges": "bytes",
        "Content-Length": "0",
        "Content-Range": "bytes */1000",
    }


@pytest.mark.parametrize(("start", "end", "size"), [(-1, 0, 10), (5, 4, 10), (0, 10, 10), (0, 0, 0)])
def test_content_range_header_rejects_ranges_outside_the_file(start: int, end: int, size: int) -> None:
    with pytest.raises(ValueError):
        content_range_header(start, end, size)


def test_content_range_header() -> None:
    assert content_range_header(0, 0, 1) == "bytes 0-0/1"
    assert content_range_header(10, 19, 20) == "bytes 10-19/20"


def test_doctests() -> None:
    result = doctest.testmod(ranges, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10
    assert result.failed == 0


def test_all_names_exist() -> None:
    assert sorted(ranges.__all__) == sorted(set(ranges.__all__))
    for name in ranges.__all__:
        assert hasattr(ranges, name)


# --- properties ---------------------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=2**50)


@given(data=st.data(), size=sizes)
def test_int_range_within_file(data: st.DataObject, size: int) -> None:
    first = data.draw(st.integers(0, size - 1), label="first")
    last = data.draw(st.integers(first, size * 2), label="last")
    plan = parse_range(f"bytes={first}-{last}", size)
    assert plan.status == 206
    ((start, end),) = plan.ranges
    assert (start, end) == (first, min(last, size - 1))
    assert 0 <= start <= end < size
    assert plan.length == end - start + 1
    assert plan.content_range == f"bytes {start}-{end}/{size}"


@given(size=sizes, suffix=st.integers(1, 2**52))
def test_suffix_range_is_the_tail(size: int, suffix: int) -> None:
    plan = parse_range(f"bytes=-{suffix}", size)
    ((start, end),) = plan.ranges
    assert end == size - 1
    assert plan.length == min(suffix, size)


@given(size=sizes, offset=st.integers(0, 2**52))
def test_start_at_or_past_end_is_416(size: int, offset: int) -> None:
    plan = parse_range(f"bytes={size + offset}-", size)
    assert plan == RangePlan(416, (), f"bytes */{size}", 0)


@given(
    size=st.integers(1, 300),
    pairs=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 400)), min_size=1, max_size=8),
)
def test_multi_range_matches_byte_set_oracle(size: int, pairs: list[tuple[int, int]]) -> None:
    header = "bytes=" + ", ".join(f"{min(a, b)}-{max(a, b)}" for a, b in pairs)
    wanted = {byte for a, b in pairs for byte in range(min(a, b), max(a, b) + 1) if byte < size}
    plan = parse_range(header, size)
    if not wanted:
        assert plan == RangePlan(416, (), f"bytes */{size}", 0)
    elif max(wanted) - min(wanted) + 1 == len(wanted):  # one contiguous run: exactly that, 206
        assert plan == partial(min(wanted), max(wanted), size)
    else:  # several runs: the whole file rather than multipart
        assert plan == whole(size)


@given(header=st.text(max_size=200), size=st.integers(0, 10**6))
def test_any_header_gives_a_sane_plan(header: str, size: int) -> None:
    plan = parse_range(header, size)
    assert plan.status in (200, 206, 416)
    for start, end in plan.ranges:
        assert 0 <= start <= end < size
    assert plan.length == sum(end - start + 1 for start, end in plan.ranges)
    assert (plan.content_range is None) == (plan.status == 200)
