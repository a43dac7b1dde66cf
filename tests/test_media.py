"""File kinds, default file choice, MP4 duration and bitrate estimates."""

from __future__ import annotations

import doctest
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tstream_kit import media
from tstream_kit.media import (
    DEFAULT_BYTES_PER_SECOND,
    FileEntry,
    browser_playable,
    choose_default_file,
    estimate_bitrate,
    kind_of,
    mime_of,
    mp4_duration,
)


@pytest.mark.parametrize(
    ("path", "kind", "mime", "playable"),
    [
        ("movie.mp4", "video", "video/mp4", True),
        ("Movie.M4V", "video", "video/mp4", True),
        ("Show/S01E01.mkv", "video", "video/x-matroska", True),
        ("clip.webm", "video", "video/webm", True),
        ("clip.mov", "video", "video/quicktime", True),
        ("clip.ogv", "video", "video/ogg", True),
        ("old.avi", "video", "video/x-msvideo", False),
        ("broadcast.ts", "video", "video/mp2t", False),
        ("bluray.m2ts", "video", "video/mp2t", False),
        ("old.wmv", "video", "video/x-ms-wmv", False),
        ("old.flv", "video", "video/x-flv", False),
        ("dvd.mpg", "video", "video/mpeg", False),
        ("dvd.mpeg", "video", "video/mpeg", False),
        ("phone.3gp", "video", "video/3gpp", False),
        ("song.mp3", "audio", "audio/mpeg", True),
        ("song.m4a", "audio", "audio/mp4", True),
        ("song.aac", "audio", "audio/aac", True),
        ("song.flac", "audio", "audio/flac", True),
        ("song.ogg", "audio", "audio/ogg", True),
        ("song.opus", "audio", "audio/ogg", True),
        ("song.wav", "audio", "audio/wav", True),
        ("movie.en.srt", "subtitle", "application/x-subrip", False),
        ("movie.vtt", "subtitle", "text/vtt", False),
        ("movie.ass", "subtitle", "text/x-ssa", False),
        ("movie.ssa", "subtitle", "text/x-ssa", False),
        ("movie.sub", "subtitle", "application/octet-stream", False),
        ("movie.idx", "subtitle", "application/octet-stream", False),
        ("info.nfo", "other", "application/octet-stream", False),
        ("cover.jpg", "other", "application/octet-stream", False),
        ("README", "other", "application/octet-stream", False),
        (".mp4", "other", "application/octet-stream", False),  # a hidden file, not an extension
        ("dir.mp4/readme", "other", "application/octet-stream", False),  # the directory's dot
        ("Windows\\Path\\Film.MKV", "video", "video/x-matroska", True),
        ("archive.mp4.part", "other", "application/octet-stream", False),
    ],
)
def test_kind_mime_playable(path: str, kind: str, mime: str, playable: bool) -> None:
    assert kind_of(path) == kind
    assert mime_of(path) == mime
    assert browser_playable(path) is playable
    entry = FileEntry(index=0, path=path, size=1, offset=0)
    assert (entry.kind, entry.mime, entry.playable) == (kind, mime, playable)


def entries(*specs: tuple[str, int]) -> list[FileEntry]:
    """FileEntry list with consecutive offsets, like a torrent's file list."""
    files, offset = [], 0
    for index, (path, size) in enumerate(specs):
        files.append(FileEntry(index=index, path=path, size=size, offset=offset))
        offset += size
    return files


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ((), None),
        ((("movie.mkv", 10),), 0),
        # the largest playable video, even over a bigger unplayable one
        ((("sample.mp4", 5), ("movie.mp4", 900), ("movie.avi", 1000), ("movie.srt", 1)), 1),
        # no playable video: the largest video
        ((("a.avi", 100), ("b.wmv", 300), ("c.mp3", 10_000)), 1),
        # no video: the largest audio
        ((("cover.jpg", 10_000), ("01.flac", 300), ("02.flac", 400), ("notes.txt", 1)), 2),
        # nothing media: the largest file
        ((("a.txt", 1), ("b.iso", 50), ("c.srt", 20)), 1),
        # ties go to the lowest index
        ((("a.mp4", 7), ("b.mp4", 7)), 0),
        ((("x.nfo", 0),), 0),
    ],
)
def test_choose_default_file(specs: tuple[tuple[str, int], ...], expected: int | None) -> None:
    assert choose_default_file(entries(*specs)) == expected


def test_choose_default_file_returns_the_entry_index_not_the_position() -> None:
    files = [FileEntry(index=7, path="b.mp4", size=10, offset=0), FileEntry(index=3, path="a.txt", size=99, offset=10)]
    assert choose_default_file(files) == 7


@given(st.lists(st.tuples(st.sampled_from(["a.mp4", "b.avi", "c.mp3", "d.txt", "e.srt"]), st.integers(0, 10**12))))
def test_choose_default_file_picks_a_member_of_the_best_class(specs: list[tuple[str, int]]) -> None:
    files = entries(*specs)
    chosen = choose_default_file(files)
    if not files:
        assert chosen is None
        return
    assert chosen is not None
    best = files[chosen]  # index == position in `entries`
    rank = {"a.mp4": 0, "b.avi": 1, "c.mp3": 2}
    assert all(rank.get(best.path, 3) <= rank.get(f.path, 3) for f in files)
    assert all(best.size >= f.size for f in files if rank.get(f.path, 3) == rank.get(best.path, 3))


# --- mp4_duration -------------------------------------------------------------------------------

MVHD_TAIL = (
    struct.pack(">IH10x", 0x0001_0000, 0x0100)  # rate 1.0, volume 1.0, reserved
    + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000)  # unity matrix
    + bytes(24)  # pre_defined
    + struct.pack(">I", 2)  # next_track_ID
)


def box(kind: bytes, payload: bytes, *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mvhd(timescale: int, duration: int, *, version: int = 0, large: bool = False) -> bytes:
    if version == 0:
        fields = struct.pack(">IIII", 0, 0, timescale, duration)
    else:
        fields = struct.pack(">QQIQ", 0, 0, timescale, duration)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + fields + MVHD_TAIL, large=large)


def mp4(moov_first: bool, mvhd_box: bytes, media_bytes: bytes = b"\x00" * 4096) -> bytes:
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
    moov = box(b"moov", mvhd_box + box(b"trak", b"\x00" * 64))
    mdat = box(b"mdat", media_bytes)
    return ftyp + moov + mdat if moov_first else ftyp + mdat + moov


def test_mvhd_sizes_match_the_spec() -> None:
    assert len(mvhd(1000, 1, version=0)) == 108
    assert len(mvhd(1000, 1, version=1)) == 120


@pytest.mark.parametrize(
    ("mvhd_box", "seconds"),
    [
        (mvhd(1000, 596_461), 596.461),
        (mvhd(90_000, 90_000 * 60, version=1), 60.0),
        (mvhd(600, 2**33, version=1), 2**33 / 600),  # needs the 64-bit duration
        (mvhd(1000, 1500, large=True), 1.5),
        (mvhd(1000, 1500, version=1, large=True), 1.5),
    ],
)
@pytest.mark.parametrize("moov_first", [True, False])
def test_mp4_duration_from_whole_file(mvhd_box: bytes, seconds: float, moov_first: bool) -> None:
    assert mp4_duration(mp4(moov_first, mvhd_box)) == pytest.approx(seconds)


def test_mp4_duration_from_head_and_tail_chunks() -> None:
    head_file = mp4(True, mvhd(1000, 12_345), media_bytes=bytes(1 << 20))
    tail_file = mp4(False, mvhd(1000, 54_321, version=1), media_bytes=bytes(1 << 20))
    assert mp4_duration(head_file[:4096]) == pytest.approx(12.345)
    assert mp4_duration(tail_file[-4096:]) == pytest.approx(54.321)
    assert mp4_duration(memoryview(tail_file)[-4096:]) == pytest.approx(54.321)
    assert mp4_duration(bytearray(head_file[:4096])) == pytest.approx(12.345)


def test_mp4_duration_from_a_chunk_starting_mid_file() -> None:
    data = mp4(True, mvhd(1000, 2_000))
    moov_at = data.index(b"moov") - 4
    # starting inside ftyp, at the moov box, and right at the mvhd box itself
    for start in (3, moov_at, moov_at + 8):
        assert mp4_duration(data[start:]) == pytest.approx(2.0), start


def test_mp4_duration_skips_stray_mvhd_bytes_in_media_data() -> None:
    decoy = b"junkmvhd" + bytes(200)  # 'mvhd' with a size field of b'junk'
    # plausible version, timescale and duration; only the box size gives it away
    decoy_v0_wrong_size = struct.pack(">I4sB3xIIII", 50, b"mvhd", 0, 0, 0, 1000, 99_000) + MVHD_TAIL
    decoy_bad_version = struct.pack(">I4sB", 108, b"mvhd", 7) + bytes(103)
    data = mp4(False, mvhd(1000, 7_000), media_bytes=decoy + decoy_v0_wrong_size + decoy_bad_version)
    assert mp4_duration(data) == pytest.approx(7.0)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"mvhd",
        bytes(4096),
        mvhd(1000, 5_000)[: 8 + 4 + 16 - 1],  # cut inside the duration field
        mvhd(1000, 5_000, version=1)[: 8 + 4 + 28 - 1],
        mvhd(1000, 5_000, large=True)[:14],  # cut inside the 64-bit size
        mvhd(0, 5_000),  # zero timescale
        mvhd(1000, 0),  # fragmented MP4: duration lives elsewhere
        mvhd(1000, 0xFFFF_FFFF),  # "unknown" in version 0
        mvhd(1000, 0xFFFF_FFFF_FFFF_FFFF, version=1),
        box(b"moov", box(b"trak", bytes(64))),  # no mvhd at all
    ],
)
def test_mp4_duration_none(data: bytes) -> None:
    assert mp4_duration(data) is None


def test_mp4_duration_exactly_the_box_is_enough() -> None:
    assert mp4_duration(mvhd(1000, 5_000)) == pytest.approx(5.0)
    assert mp4_duration(mvhd(1000, 5_000, version=1, large=True)) == pytest.approx(5.0)


def test_mp4_duration_chunk_may_end_after_the_duration_field() -> None:
    # A read that stops inside the box's fixed tail still carries the duration.
    assert mp4_duration(mvhd(1000, 5_000)[: 8 + 4 + 16]) == pytest.approx(5.0)
    assert mp4_duration(mvhd(1000, 5_000, version=1)[: 8 + 4 + 28]) == pytest.approx(5.0)


@given(st.binary(max_size=2048))
def test_mp4_duration_never_raises_on_junk(data: bytes) -> None:
    result = mp4_duration(data)
    assert result is None or (math.isfinite(result) and result > 0)


@given(
    version=st.sampled_from([0, 1]),
    timescale=st.integers(1, 2**32 - 1),
    ticks=st.integers(1, 2**32 - 2),
    prefix=st.binary(max_size=64),
    suffix=st.binary(max_size=64),
)
def test_mp4_duration_finds_any_embedded_box(
    version: int, timescale: int, ticks: int, prefix: bytes, suffix: bytes
) -> None:
    data = prefix.replace(b"mvhd", b"xxxx") + mvhd(timescale, ticks, version=version) + suffix
    assert mp4_duration(data) == pytest.approx(ticks / timescale)


# --- estimate_bitrate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "duration", "expected"),
    [
        (600_000_000, 1200.0, 500_000.0),
        (1_000, 0.5, 2_000.0),
        (0, 10.0, 0.0),
        (600_000_000, None, DEFAULT_BYTES_PER_SECOND),
        (600_000_000, 0.0, DEFAULT_BYTES_PER_SECOND),
        (600_000_000, -3.0, DEFAULT_BYTES_PER_SECOND),
        (600_000_000, math.nan, DEFAULT_BYTES_PER_SECOND),
        (600_000_000, math.inf, DEFAULT_BYTES_PER_SECOND),
    ],
)
def test_estimate_bitrate(size: int, duration: float | None, expected: float) -> None:
    assert estimate_bitrate(size, duration) == expected


def test_default_bitrate_is_8_mbit() -> None:
    assert DEFAULT_BYTES_PER_SECOND * 8 == 8_000_000


def test_estimate_bitrate_rejects_negative_size() -> None:
    with pytest.raises(ValueError):
        estimate_bitrate(-1, 10.0)


def test_doctests() -> None:
    result = doctest.testmod(media)
    assert result.attempted >= 3
    assert result.failed == 0


def test_all_names_exist() -> None:
    for name in media.__all__:
        assert hasattr(media, name)
