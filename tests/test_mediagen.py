"""Tests for tstream_kit.mediagen: real ffmpeg runs, real files, box order read from the bytes."""

from __future__ import annotations

import os
import struct
import subprocess
import time

import pytest

from tstream_kit import mediagen


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # A private cache: the tests must exercise generation, not find a file from an earlier run.
    return tmp_path_factory.mktemp("media-cache")


@pytest.fixture(scope="module")
def faststart_mp4(cache):
    return mediagen.make_mp4(seconds=3, faststart=True, cache_dir=cache)


@pytest.fixture(scope="module")
def moov_end_mp4(cache):
    return mediagen.make_mp4(seconds=3, faststart=False, cache_dir=cache)


def test_faststart_puts_moov_before_mdat(faststart_mp4):
    order = mediagen.mp4_box_order(faststart_mp4)
    assert order[0] == "ftyp"
    assert order.index("moov") < order.index("mdat"), order


def test_moov_at_end(moov_end_mp4):
    order = mediagen.mp4_box_order(moov_end_mp4)
    assert order[0] == "ftyp"
    assert order.index("moov") > order.index("mdat"), order
    assert order[-1] == "moov"


@pytest.mark.parametrize("which", ["faststart_mp4", "moov_end_mp4"])
def test_file_starts_with_ftyp_box(request, which):
    path = request.getfixturevalue(which)
    head = path.read_bytes()[:8]
    size, kind = struct.unpack(">I4s", head)
    assert kind == b"ftyp"
    assert 16 <= size <= 64


@pytest.mark.parametrize("which", ["faststart_mp4", "moov_end_mp4"])
def test_streams_are_h264_high_and_aac_stereo(request, which):
    info = mediagen.probe_media(request.getfixturevalue(which))
    assert info.video_codec == "h264", info.raw
    assert info.video_profile in ("Main", "High"), info.raw
    assert info.pix_fmt == "yuv420p", info.raw
    assert (info.width, info.height) == (640, 360)
    assert info.audio_codec == "aac", info.raw
    assert info.audio_channels == "stereo", info.raw
    assert info.duration_s == pytest.approx(3.0, abs=0.2)


def test_size_follows_bitrate(faststart_mp4):
    # 3 s at 1 Mbit/s video + 128 kbit/s audio is ~420 kB; noise keeps x264 from undershooting.
    size = faststart_mp4.stat().st_size
    assert 250_000 < size < 800_000, size


def test_higher_bitrate_gives_bigger_file(cache, faststart_mp4):
    big = mediagen.make_mp4(seconds=3, video_bitrate="4M", cache_dir=cache)
    assert big.stat().st_size > 2.5 * faststart_mp4.stat().st_size


def test_cache_hit_returns_same_file_untouched(cache, faststart_mp4):
    before = faststart_mp4.stat()
    time.sleep(0.01)
    again = mediagen.make_mp4(seconds=3, faststart=True, cache_dir=cache)
    assert again == faststart_mp4
    after = again.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)


def test_explicit_path_is_linked_from_cache(cache, faststart_mp4, tmp_path):
    dest = mediagen.make_mp4(tmp_path / "movie.mp4", seconds=3, cache_dir=cache)
    assert dest == tmp_path / "movie.mp4"
    assert dest.read_bytes() == faststart_mp4.read_bytes()
    assert faststart_mp4.stat().st_mtime_ns == dest.stat().st_mtime_ns  # not re-encoded
    # Asking again for an existing identical file is a no-op.
    assert mediagen.make_mp4(dest, seconds=3, cache_dir=cache) == dest


def test_seed_changes_the_bytes(cache, faststart_mp4):
    other = mediagen.make_mp4(seconds=3, seed=7, cache_dir=cache)
    assert other != faststart_mp4
    assert other.read_bytes() != faststart_mp4.read_bytes()


def test_no_temp_files_left_in_cache(cache, faststart_mp4, moov_end_mp4):
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_ffmpeg_failure_raises_with_stderr(cache):
    # testsrc2 refuses a picture this large, so ffmpeg exits non-zero before encoding.
    with pytest.raises(RuntimeError, match=r"ffmpeg failed(.|\n)*Picture size 20000x20000"):
        mediagen.make_mp4(seconds=1, width=20000, height=20000, cache_dir=cache)
    assert not [p for p in cache.iterdir() if p.name.startswith(".gen-")]


def test_bad_arguments():
    with pytest.raises(ValueError):
        mediagen.make_mp4(seconds=0)
    with pytest.raises(ValueError):
        mediagen.make_mp4(seconds=1, width=641)
    with pytest.raises(ValueError):
        mediagen.make_mp4(seconds=1, video_bitrate="-5")
    with pytest.raises(TypeError):
        mediagen.make_mp4_of_size(min_bytes=1000, seconds=3)


def test_box_order_reads_largesize_and_to_end_boxes(tmp_path):
    p = tmp_path / "synthetic.mp4"
    ftyp = struct.pack(">I4s4sI", 16, b"ftyp", b"isom", 0)
    big = struct.pack(">I4sQ", 1, b"free", 16 + 4) + b"\0" * 4  # 64-bit size
    tail = struct.pack(">I4s", 0, b"mdat") + b"x" * 10  # size 0: to end of file
    p.write_bytes(ftyp + big + tail)
    assert mediagen.mp4_box_order(p) == ["ftyp", "free", "mdat"]


def test_subtitle_srt(tmp_path):
    p = mediagen.make_subtitle_srt(tmp_path / "a.srt", ["hello", (5.0, 6.5, "world")])
    assert p.read_text() == (
        "1\n00:00:00,000 --> 00:00:02,000\nhello\n\n"
        "2\n00:00:05,000 --> 00:00:06,500\nworld\n"
    )


@pytest.mark.slow
def test_make_mp4_of_size_reaches_100_mb_quickly(cache):
    t0 = time.monotonic()
    path = mediagen.make_mp4_of_size(min_bytes=100_000_000, cache_dir=cache)
    elapsed = time.monotonic() - t0
    size = path.stat().st_size
    assert size >= 100_000_000
    assert size < 160_000_000, size  # the 10 % margin should not balloon
    assert elapsed < 60, f"took {elapsed:.1f} s"
    order = mediagen.mp4_box_order(path)
    assert order.index("moov") < order.index("mdat")
    info = mediagen.probe_media(path)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.duration_s and info.duration_s > 10
    # The concatenated file must decode end to end without errors.
    proc = subprocess.run(
        [mediagen.ffmpeg_exe(), "-v", "error", "-nostdin", "-i", os.fspath(path),
         "-f", "null", "-"],
        capture_output=True, timeout=120,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr[-2000:]
