"""What the files in a torrent are, which one to play, and how long an MP4 runs. Pure: no I/O.

Everything here decides from names and bytes the caller already has. The container-level guesses
(`browser_playable`) are refined later by probing the actual codecs; they exist so the file list
can be shown, and a default file chosen, before a single piece has arrived.
"""

from __future__ import annotations

import math
import posixpath
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_BYTES_PER_SECOND",
    "FileEntry",
    "Kind",
    "browser_playable",
    "choose_default_file",
    "estimate_bitrate",
    "extension_of",
    "kind_of",
    "mime_of",
    "mp4_duration",
]

Kind = Literal["video", "audio", "subtitle", "other"]

_VIDEO_EXTENSIONS = frozenset(
    "mp4 m4v mkv webm mov avi ts m2ts wmv flv mpg mpeg ogv 3gp".split()
)
_AUDIO_EXTENSIONS = frozenset("mp3 m4a aac flac ogg opus wav".split())
_SUBTITLE_EXTENSIONS = frozenset("srt ass ssa vtt sub idx".split())

_MIME_BY_EXTENSION: dict[str, str] = {
    # m4v is MP4 with an Apple name; video/mp4 is what every browser recognises.
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    # <video> sniffs the bytes rather than trusting this, so Matroska still plays in Chromium.
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "avi": "video/x-msvideo",
    "ts": "video/mp2t",
    "m2ts": "video/mp2t",
    "wmv": "video/x-ms-wmv",
    "flv": "video/x-flv",
    "mpg": "video/mpeg",
    "mpeg": "video/mpeg",
    "ogv": "video/ogg",
    "3gp": "video/3gpp",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    # .opus files are Ogg containers (RFC 7845), so they share Ogg's type.
    "opus": "audio/ogg",
    "wav": "audio/wav",
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "ass": "text/x-ssa",
    "ssa": "text/x-ssa",
    # .sub is MicroDVD text or VobSub binary and .idx belongs to VobSub: no honest single type,
    # so they fall through to application/octet-stream.
}
_DEFAULT_MIME = "application/octet-stream"

# Containers a current Chromium/Firefox/Safari <video> or <audio> usually opens. MKV and MOV are
# included because they usually hold H.264/AAC (Chromium plays them); AVI, WMV, FLV and MPEG-TS
# are not demuxed by browsers at all. A guess per container, refined by probing the codecs.
_BROWSER_CONTAINERS = frozenset(
    "mp4 m4v webm mkv mov ogv mp3 m4a aac flac ogg opus wav".split()
)

# Without a known duration we assume 8 Mbit/s: above typical 1080p H.264 web releases (3-6
# Mbit/s), so read-ahead sized from it errs on the side of buffering too much rather than too little.
DEFAULT_BYTES_PER_SECOND = 1_000_000.0


def extension_of(path: str) -> str:
    """Lowercase extension without the dot; '' when there is none. Accepts / or \\ separators.

    >>> extension_of("Show/S01E01.MKV"), extension_of(".hidden"), extension_of("README")
    ('mkv', '', '')
    """
    return posixpath.splitext(path.replace("\\", "/"))[1][1:].lower()


def kind_of(path: str) -> Kind:
    """'video', 'audio', 'subtitle' or 'other', by extension.

    >>> kind_of("a/b/movie.mp4"), kind_of("track.FLAC"), kind_of("movie.en.srt"), kind_of("x.nfo")
    ('video', 'audio', 'subtitle', 'other')
    """
    extension = extension_of(path)
    if extension in _VIDEO_EXTENSIONS:
        return "video"
    if extension in _AUDIO_EXTENSIONS:
        return "audio"
    if extension in _SUBTITLE_EXTENSIONS:
        return "subtitle"
    return "other"


def mime_of(path: str) -> str:
    """The Content-Type to serve the file with, by extension; application/octet-stream if unknown."""
    return _MIME_BY_EXTENSION.get(extension_of(path), _DEFAULT_MIME)


def browser_playable(path: str) -> bool:
    """Whether a browser is likely to play the file natively, judged by container only.

    A container-level guess: an MKV holding HEVC will not play in most browsers, and this still
    says True. Probing the codecs refines it once the file head has been fetched.
    """
    return extension_of(path) in _BROWSER_CONTAINERS


@dataclass(frozen=True)
class FileEntry:
    """One file inside a torrent."""

    index: int  # libtorrent's file index (what /api/stream?file_index= takes)
    path: str  # path inside the torrent, '/'-separated
    size: int  # bytes
    offset: int  # byte offset of the file's first byte within the torrent's concatenated data

    @property
    def kind(self) -> Kind:
        return kind_of(self.path)

    @property
    def mime(self) -> str:
        return mime_of(self.path)

    @property
    def playable(self) -> bool:
        return browser_playable(self.path)


def choose_default_file(files: Sequence[FileEntry]) -> int | None:
    """The ``index`` of the file to play when the user has not chosen one.

    In order of preference: the largest browser-playable video, the largest video, the largest
    audio file, the largest file. Largest, because samples, trailers and extras are smaller than
    the feature. Ties go to the lowest index. None for an empty torrent.
    """
    preferences = (
        lambda f: f.kind == "video" and f.playable,
        lambda f: f.kind == "video",
        lambda f: f.kind == "audio",
        lambda f: True,
    )
    for wanted in preferences:
        candidates = [f for f in files if wanted(f)]
        if candidates:
            return max(candidates, key=lambda f: (f.size, -f.index)).index
    return None


# --- MP4 duration -------------------------------------------------------------------------------
# ISO/IEC 14496-12 `mvhd` (movie header) box, the first child of `moov`:
#   size:u32 'mvhd' [largesize:u64 when size == 1] version:u8 flags:u24
#   v0: creation:u32 modification:u32 timescale:u32 duration:u32   then 80 fixed bytes
#   v1: creation:u64 modification:u64 timescale:u32 duration:u64   then 80 fixed bytes
_MVHD_TAIL_BYTES = 80  # rate, volume, reserved, matrix, pre_defined, next_track_ID
_MVHD_V0_FIELDS = struct.Struct(">IIII")  # creation, modification, timescale, duration
_MVHD_V1_FIELDS = struct.Struct(">QQIQ")
_UNKNOWN_DURATION = {0: 0xFFFF_FFFF, 1: 0xFFFF_FFFF_FFFF_FFFF}


def mp4_duration(data: bytes | bytearray | memoryview) -> float | None:
    """Seconds from the first valid ``mvhd`` box found in ``data``, or None.

    ``data`` may be any chunk of the file: its head (``moov`` before ``mdat``), its tail (``moov``
    after ``mdat``), or a piece that starts mid-file. Because the chunk may start anywhere we scan
    for the ``mvhd`` type and accept a hit only if its box header is consistent: version 0 or 1,
    the exact size the version implies (so stray 'mvhd' bytes in media data are rejected), and a
    non-zero timescale. The chunk may end anywhere after the duration field (the box's fixed
    tail is not needed). A zero or all-ones duration means "unknown" (fragmented MP4) and gives None.
    """
    buffer = bytes(data)
    position = buffer.find(b"mvhd", 4)
    while position != -1:
        duration = _duration_from_mvhd_at(buffer, position - 4)
        if duration is not None:
            return duration
        position = buffer.find(b"mvhd", position + 1)
    return None


def _duration_from_mvhd_at(buffer: bytes, box_start: int) -> float | None:
    (size,) = struct.unpack_from(">I", buffer, box_start)
    header_length = 8
    if size == 1:  # 64-bit largesize follows the type
        if box_start + 16 > len(buffer):
            return None
        (size,) = struct.unpack_from(">Q", buffer, box_start + 8)
        header_length = 16
    fields_start = box_start + header_length + 4  # after version and flags
    if fields_start > len(buffer):
        return None
    version = buffer[box_start + header_length]
    if version == 0:
        fields = _MVHD_V0_FIELDS
    elif version == 1:
        fields = _MVHD_V1_FIELDS
    else:
        return None
    if size != header_length + 4 + fields.size + _MVHD_TAIL_BYTES:
        return None
    if fields_start + fields.size > len(buffer):
        return None
    _, _, timescale, duration = fields.unpack_from(buffer, fields_start)
    if timescale == 0 or duration == 0 or duration == _UNKNOWN_DURATION[version]:
        return None
    return float(duration / timescale)


def estimate_bitrate(size: int, duration: float | None) -> float:
    """Average bytes per second of a ``size``-byte file lasting ``duration`` seconds.

    When the duration is unknown (None, zero, negative, NaN or infinite) this returns
    DEFAULT_BYTES_PER_SECOND (1 MB/s, about 8 Mbit/s).

    >>> estimate_bitrate(600_000_000, 1200.0), estimate_bitrate(600_000_000, None)
    (500000.0, 1000000.0)
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return DEFAULT_BYTES_PER_SECOND
    return size / duration
