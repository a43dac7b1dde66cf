"""Real test media made with the ffmpeg binary shipped in the ``imageio-ffmpeg`` wheel.

Tests and benchmarks need genuine H.264/AAC MP4 files: a browser must play them, a Range request
must land on real boxes, and a torrent of them must have realistic piece counts. The content is a
moving test pattern with temporal noise, so the encoder cannot squeeze it to nothing and a target
bitrate gives a predictable size.

Files are cached on disk, keyed by every parameter that changes the bytes, so a second test or bench
run gets the same file back without re-encoding. Generation writes to a temporary name in the cache
directory and renames it into place, so a half-written file is never visible under the final name.

Public API::

    make_mp4(path=None, *, seconds, width=640, height=360, fps=25, video_bitrate="1M",
             faststart=True, seed=None, cache_dir=None) -> Path
    make_mp4_of_size(path=None, *, min_bytes, cache_dir=None, **kw) -> Path
    mp4_box_order(path) -> list[str]
    probe_media(path) -> MediaInfo
    make_subtitle_srt(path, lines) -> Path
    ffmpeg_exe() -> str
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Union

__all__ = [
    "MediaInfo",
    "cache_dir_default",
    "ffmpeg_exe",
    "make_mp4",
    "make_mp4_of_size",
    "make_subtitle_srt",
    "mp4_box_order",
    "probe_media",
]

# Bump when the ffmpeg command line changes, so old cache entries are not reused.
_RECIPE_VERSION = 1
# Noise strength (0-100) added to the test pattern: strong enough that x264 needs the bits we
# ask for, weak enough that the pattern (and its clock) stays readable.
_NOISE_STRENGTH = 25
# Longer files are encoded once as a segment of this length and concatenated with `-c copy`:
# encoding is the slow part, copying is close to disk speed.
_SEGMENT_SECONDS = 10.0
# Bitrate used by make_mp4_of_size when the caller gives none: high enough that 100 MB is ~20 s
# of 640x360 video (about 4 s of encoding on 2 cores with -preset ultrafast).
_SIZE_BITRATE = "40M"
# Subprocess limits; generous, a hung ffmpeg must still not hang a test run forever.
_ENCODE_TIMEOUT_S = 300.0
_PROBE_TIMEOUT_S = 30.0
_STDERR_TAIL_CHARS = 2000


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary from the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def cache_dir_default() -> Path:
    """``$TSTREAM_MEDIA_CACHE`` if set, else ``~/.cache/tstream/media``."""
    env = os.environ.get("TSTREAM_MEDIA_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "tstream" / "media"


def _bitrate_bps(rate: Union[str, int, float]) -> float:
    """``"1M"`` -> 1e6, ``"800k"`` -> 8e5, ``2500000`` -> 2.5e6 (ffmpeg's SI suffixes).

    >>> _bitrate_bps("1M"), _bitrate_bps("800k"), _bitrate_bps(64000)
    (1000000.0, 800000.0, 64000.0)
    """
    if isinstance(rate, (int, float)):
        return float(rate)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]?)\s*", rate)
    if not m:
        raise ValueError(f"bad bitrate {rate!r}: use e.g. '800k', '4M' or a number of bit/s")
    mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    return float(m.group(1)) * mult


def _run(cmd: Sequence[str], *, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"").decode("utf-8", "replace")[-_STDERR_TAIL_CHARS:]
        raise RuntimeError(f"ffmpeg timed out after {timeout:.0f} s while {what}:\n{tail}") from e
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-_STDERR_TAIL_CHARS:]
        raise RuntimeError(
            f"ffmpeg failed (exit {proc.returncode}) while {what}:\n"
            f"command: {' '.join(cmd)}\n{tail}"
        )
    return proc


def _cache_key(params: dict) -> str:
    blob = json.dumps(params, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _deliver(cached: Path, path: Union[str, os.PathLike, None]) -> Path:
    """Return the cached file itself, or place it at ``path`` (hard link, else copy)."""
    if path is None:
        return cached
    dest = Path(path)
    try:
        if dest.exists() and os.path.samefile(dest, cached):
            return dest
    except OSError:
        pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        try:
            os.link(cached, tmp)
        except OSError:  # other file system, or links not allowed
            shutil.copyfile(cached, tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _encode_cmd(out: Path, *, seconds: float, width: int, height: int, fps: int,
                video_bitrate: str, faststart: bool, seed: int) -> list[str]:
    gop = max(1, int(round(fps)))  # one keyframe per second: seeks land quickly
    vbps = _bitrate_bps(video_bitrate)
    video = (
        f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds:.3f},"
        f"noise=alls={_NOISE_STRENGTH}:allf=t+u:all_seed={seed}"
    )
    # The seed also moves the tone, so two seeds differ in audio too.
    audio = f"sine=frequency={220 + (seed % 64) * 10}:sample_rate=48000:duration={seconds:.3f}"
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", video,
        "-f", "lavfi", "-i", audio,
        "-map", "0:v:0", "-map", "1:a:0",
        "-c:v", "libx264", "-preset", "ultrafast",
        # ultrafast alone turns off CABAC and 8x8 transforms, which makes the stream Constrained
        # Baseline; browsers and the brief want High, which costs little at these sizes.
        "-x264-params", "cabac=1:8x8dct=1",
        "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-b:v", f"{int(vbps)}", "-maxrate", f"{int(vbps * 1.5)}", "-bufsize", f"{int(vbps * 2)}",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        "-shortest",
        "-map_metadata", "-1", "-fflags", "+bitexact",
        "-flags:v", "+bitexact", "-flags:a", "+bitexact",
    ]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    cmd += ["-f", "mp4", str(out)]
    return cmd


def make_mp4(
    path: Union[str, os.PathLike, None] = None,
    *,
    seconds: float,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    video_bitrate: Union[str, int] = "1M",
    faststart: bool = True,
    seed: Union[int, None] = None,
    cache_dir: Union[str, os.PathLike, None] = None,
) -> Path:
    """Make (or fetch from the cache) an H.264 High + AAC stereo MP4.

    ``faststart=True`` puts ``moov`` before ``mdat``; ``False`` leaves it at the end, as a camera or
    a naive muxer would. ``seed`` changes the noise and the tone, giving different bytes for the
    same parameters (``None`` is seed 0). With ``path=None`` the cached file itself is returned;
    otherwise the cached file is hard-linked (or copied) to ``path`` and ``path`` is returned.
    Raises ``RuntimeError`` with ffmpeg's stderr tail if ffmpeg fails or times out.
    """
    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    if width % 2 or height % 2:
        raise ValueError("width and height must be even for yuv420p")
    if _bitrate_bps(video_bitrate) <= 0:
        raise ValueError(f"video_bitrate must be > 0, not {video_bitrate!r}")
    seed = 0 if seed is None else int(seed)
    params = dict(
        kind="mp4", v=_RECIPE_VERSION, seconds=round(float(seconds), 3), width=width,
        height=height, fps=fps, video_bitrate=str(video_bitrate), faststart=bool(faststart),
        seed=seed,
    )
    cdir = Path(cache_dir) if cache_dir is not None else cache_dir_default()
    cdir.mkdir(parents=True, exist_ok=True)
    name = f"tstream-{width}x{height}-{params['seconds']:g}s-{'fs' if faststart else 'moovend'}"
    cached = cdir / f"{name}-{_cache_key(params)}.mp4"
    if not cached.exists():
        _generate(cached, params)
    return _deliver(cached, path)


def _generate(cached: Path, p: dict) -> None:
    seconds = p["seconds"]
    enc = dict(width=p["width"], height=p["height"], fps=p["fps"],
               video_bitrate=p["video_bitrate"], seed=p["seed"])
    with tempfile.TemporaryDirectory(prefix=".gen-", dir=cached.parent) as tmpdir:
        tmp = Path(tmpdir)
        out = tmp / "out.mp4"
        if seconds <= _SEGMENT_SECONDS * 1.5:
            _run(_encode_cmd(out, seconds=seconds, faststart=p["faststart"], **enc),
                 timeout=_ENCODE_TIMEOUT_S, what=f"encoding {cached.name}")
        else:
            # Encode whole segments once and concatenate copies: the concat demuxer rewrites the
            # timestamps, so the result is one continuous file with a keyframe every second.
            n_full = int(seconds // _SEGMENT_SECONDS)
            rest = seconds - n_full * _SEGMENT_SECONDS
            seg = tmp / "seg.mp4"
            _run(_encode_cmd(seg, seconds=_SEGMENT_SECONDS, faststart=False, **enc),
                 timeout=_ENCODE_TIMEOUT_S, what=f"encoding a segment of {cached.name}")
            parts = [seg] * n_full
            if rest >= 1.0 / p["fps"]:
                tail = tmp / "tail.mp4"
                _run(_encode_cmd(tail, seconds=rest, faststart=False, **enc),
                     timeout=_ENCODE_TIMEOUT_S, what=f"encoding the tail of {cached.name}")
                parts.append(tail)
            listing = tmp / "list.txt"
            listing.write_text("".join(f"file '{x.name}'\n" for x in parts))
            cmd = [
                ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "concat", "-safe", "0", "-i", str(listing),
                "-c", "copy", "-map_metadata", "-1", "-fflags", "+bitexact",
            ]
            if p["faststart"]:
                cmd += ["-movflags", "+faststart"]
            cmd += ["-f", "mp4", str(out)]
            _run(cmd, timeout=_ENCODE_TIMEOUT_S, what=f"concatenating {cached.name}")
        os.replace(out, cached)  # atomic: readers see no file or the whole file


def make_mp4_of_size(
    path: Union[str, os.PathLike, None] = None,
    *,
    min_bytes: int,
    cache_dir: Union[str, os.PathLike, None] = None,
    **kw,
) -> Path:
    """An MP4 of at least ``min_bytes``; other keywords as for :func:`make_mp4`.

    Picks the duration from the bitrate (default 40 Mbit/s at 640x360, so 100 MB is ~20 s of
    video, generated in a few seconds) with a 10 % margin, and lengthens it if the result is still
    short. ``seconds`` may not be passed.
    """
    if "seconds" in kw:
        raise TypeError("make_mp4_of_size picks seconds itself; use make_mp4 for a fixed length")
    kw.setdefault("video_bitrate", _SIZE_BITRATE)
    total_bps = _bitrate_bps(kw["video_bitrate"]) + 128_000
    seconds = max(1.0, math.ceil(min_bytes * 8 / total_bps * 1.10))
    for _ in range(4):
        out = make_mp4(None, seconds=seconds, cache_dir=cache_dir, **kw)
        size = out.stat().st_size
        if size >= min_bytes:
            return _deliver(out, path)
        seconds = math.ceil(seconds * min_bytes / max(size, 1) * 1.10)
    raise RuntimeError(f"could not reach {min_bytes} bytes (last try {size} bytes, {seconds} s)")


def mp4_box_order(path: Union[str, os.PathLike]) -> list[str]:
    """Top-level ISO-BMFF box types in file order, e.g. ``['ftyp', 'moov', 'free', 'mdat']``."""
    boxes: list[str] = []
    p = Path(path)
    file_size = p.stat().st_size
    with p.open("rb") as f:
        pos = 0
        while pos + 8 <= file_size:
            f.seek(pos)
            header = f.read(16)
            size, kind = struct.unpack(">I4s", header[:8])
            if size == 1:  # 64-bit "largesize" follows the type
                if len(header) < 16:
                    raise ValueError(f"truncated largesize box at offset {pos}")
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:  # box runs to the end of the file
                size = file_size - pos
            if size < 8:
                raise ValueError(f"bad box size {size} at offset {pos} in {p}")
            boxes.append(kind.decode("latin-1"))
            pos += size
    return boxes


@dataclass(frozen=True)
class MediaInfo:
    """What ``ffmpeg -i`` says about a file (there is no ffprobe in the wheel)."""

    container: str  # e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_s: Union[float, None]
    video_codec: Union[str, None]  # e.g. "h264"
    video_profile: Union[str, None]  # e.g. "High"
    pix_fmt: Union[str, None]
    width: Union[int, None]
    height: Union[int, None]
    audio_codec: Union[str, None]  # e.g. "aac"
    audio_channels: Union[str, None]  # e.g. "stereo"
    raw: str  # the stderr text, for assertions and debugging


_VIDEO_RE = re.compile(
    r"Stream #\S+.*?: Video: (?P<codec>\w+)(?: \((?P<profile>[^)]*)\))?.*?, "
    r"(?P<pix>yuv\w+|nv12|rgb\w+|gray\w*)(?:\([^)]*\))?, (?P<w>\d+)x(?P<h>\d+)"
)
_AUDIO_RE = re.compile(
    r"Stream #\S+.*?: Audio: (?P<codec>\w+)[^,]*, \d+ Hz, (?P<layout>[\w.()]+)"
)


def probe_media(path: Union[str, os.PathLike]) -> MediaInfo:
    """Parse ``ffmpeg -i PATH`` (which exits 1 for want of an output: that is expected)."""
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=_PROBE_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"ffmpeg -i timed out on {path}") from e
    text = proc.stderr.decode("utf-8", "replace")
    m_in = re.search(r"Input #0, ([^,]+(?:,[^ ,]+)*), from", text)
    if not m_in:
        raise RuntimeError(f"ffmpeg could not read {path}:\n{text[-_STDERR_TAIL_CHARS:]}")
    m_dur = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", text)
    duration = None
    if m_dur:
        h, m, s = m_dur.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    mv = _VIDEO_RE.search(text)
    ma = _AUDIO_RE.search(text)
    return MediaInfo(
        container=m_in.group(1),
        duration_s=duration,
        video_codec=mv.group("codec") if mv else None,
        video_profile=mv.group("profile") if mv else None,
        pix_fmt=mv.group("pix") if mv else None,
        width=int(mv.group("w")) if mv else None,
        height=int(mv.group("h")) if mv else None,
        audio_codec=ma.group("codec") if ma else None,
        audio_channels=ma.group("layout") if ma else None,
        raw=text,
    )


def _srt_time(t: float) -> str:
    """
    >>> _srt_time(3661.5)
    '01:01:01,500'
    """
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def make_subtitle_srt(
    path: Union[str, os.PathLike],
    lines: Iterable[Union[str, tuple[float, float, str]]],
) -> Path:
    """Write an SRT file. Each item is a text (shown for 2 s, one after another) or a
    ``(start_s, end_s, text)`` tuple. Returns the path."""
    blocks = []
    t = 0.0
    for i, item in enumerate(lines, start=1):
        if isinstance(item, str):
            start, end, text = t, t + 2.0, item
        else:
            start, end, text = item
        t = end
        blocks.append(f"{i}\n{_srt_time(start)} --> {_srt_time(end)}\n{text}\n")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(blocks), encoding="utf-8")
    return p


# --- clips in other codecs and containers (issue 7: media browsers cannot play) --------------
def make_clip(
    path: Union[str, os.PathLike, None] = None,
    *,
    seconds: float,
    video: str = "h264",
    audio: str = "aac",
    container: str = "mp4",
    subtitles: Sequence[tuple[float, float, str]] = (),
    subtitle_language: str = "eng",
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    video_bitrate: str = "1M",
    cache_dir: Union[str, os.PathLike, None] = None,
) -> Path:
    """A test-pattern clip with ``video`` in ``h264``/``hevc``, ``audio`` in ``aac``/``ac3``/
    ``flac``/``opus``, in ``mp4`` or ``mkv``; ``subtitles`` (start, end, text) become a SubRip
    track (MKV only). A key frame every second. Cached like :func:`make_mp4`."""
    vcodec = {"h264": ["libx264", "-profile:v", "high", "-x264-params", "cabac=1:8x8dct=1"],
              "hevc": ["libx265", "-tag:v", "hvc1", "-x265-params", "log-level=error"]}[video]
    acodec = {"aac": ["aac", "-b:a", "128k"], "ac3": ["ac3", "-b:a", "192k"],
              "flac": ["flac"], "opus": ["libopus", "-b:a", "96k"]}[audio]
    if container not in ("mp4", "mkv"):
        raise ValueError("container must be mp4 or mkv")
    if subtitles and container != "mkv":
        raise ValueError("subtitle tracks: use container='mkv'")
    params = dict(kind="clip", v=2, seconds=round(float(seconds), 3), video=video, audio=audio,
                  container=container, subs=[list(s) for s in subtitles], lang=subtitle_language,
                  width=width, height=height, fps=fps, br=str(video_bitrate))
    cdir = Path(cache_dir) if cache_dir is not None else cache_dir_default()
    cdir.mkdir(parents=True, exist_ok=True)
    cached = cdir / f"tstream-clip-{video}-{audio}-{params['seconds']:g}s-{_cache_key(params)}.{container}"
    if not cached.exists():
        vbps = _bitrate_bps(video_bitrate)
        with tempfile.TemporaryDirectory(prefix=".gen-", dir=cdir) as tmpdir:
            out = Path(tmpdir) / f"out.{container}"
            cmd = [
                ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i",
                f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds:.3f},"
                f"noise=alls={_NOISE_STRENGTH}:allf=t+u:all_seed=7",
                "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={seconds:.3f}",
            ]
            if subtitles:
                srt = make_subtitle_srt(Path(tmpdir) / "subs.srt", subtitles)
                cmd += ["-i", str(srt)]
            cmd += ["-map", "0:v:0", "-map", "1:a:0"]
            if subtitles:
                cmd += ["-map", "2:s:0", "-c:s", "srt", "-metadata:s:s:0", f"language={subtitle_language}"]
            cmd += ["-c:v", *vcodec, "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-b:v", str(int(vbps)), "-g", str(fps), "-keyint_min", str(fps),
                    "-c:a", *acodec, "-ac", "2", "-map_metadata", "-1"]   # no -shortest: subtitles end early
            if container == "mp4":
                cmd += ["-movflags", "+faststart", "-f", "mp4"]
            else:
                cmd += ["-f", "matroska"]
            cmd.append(str(out))
            _run(cmd, timeout=_ENCODE_TIMEOUT_S, what=f"encoding {cached.name}")
            os.replace(out, cached)
    return _deliver(cached, path)
