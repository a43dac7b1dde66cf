"""What a media file holds, from ``ffmpeg -i``, and how a browser can play it. Pure: no I/O.

The imageio-ffmpeg wheel ships no ffprobe, so :func:`parse_ffmpeg_info` reads the report that
``ffmpeg -i URL`` prints on stderr (it exits 1 for want of an output; that is expected).
ffmpeg reads the file through tstream's loopback source (``transcode/source.py``), i.e. through a
:class:`FileReader`: only the pieces that hold the header and index (an MP4's ``moov``, an MKV's
``Tracks``/``SeekHead``, a few MB of packets for codec parameters) are fetched.

:func:`playback_plan` then decides: ``direct`` (the browser plays the bytes as they are),
``remux`` (H.264 with AAC in a container browsers do not all open, e.g. Matroska: copied into
fragmented MP4) or ``transcode`` (HEVC, 10-bit H.264, MPEG-2 ... re-encoded to H.264; AC3, DTS,
FLAC, TrueHD ... to AAC).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Stream", "MediaProbe", "parse_ffmpeg_info", "playback_plan", "ProbeError"]


class ProbeError(RuntimeError):
    """ffmpeg could not read the file (not media, truncated, or no data in time)."""


@dataclass
class Stream:
    index: int                 # ffmpeg's stream number in the file (#0:N)
    type: str                  # video, audio, subtitle, data, attachment
    codec: str                 # h264, hevc, aac, ac3, subrip, ass ...
    profile: str | None = None
    language: str | None = None   # ISO 639-2 from the container ("eng", "jpn"), None if unset
    title: str | None = None
    default: bool = False
    forced: bool = False
    width: int | None = None
    height: int | None = None
    pix_fmt: str | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: str | None = None   # "stereo", "5.1(side)" ...


@dataclass
class MediaProbe:
    container: str             # ffmpeg's demuxer names: "matroska,webm", "mov,mp4,m4a,3gp,3g2,mj2"
    duration_s: float | None
    bitrate_kbps: int | None
    streams: list[Stream] = field(default_factory=list)

    def of_type(self, kind: str) -> list[Stream]:
        return [s for s in self.streams if s.type == kind]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["video"] = [asdict(s) for s in self.of_type("video")]
        out["audio"] = [asdict(s) for s in self.of_type("audio")]
        out["subtitles"] = [asdict(s) for s in self.of_type("subtitle")]
        del out["streams"]
        return out


_INPUT_RE = re.compile(r"^Input #0, (?P<fmt>.+?), from ", re.M)
_DURATION_RE = re.compile(
    r"Duration: (?:(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)|N/A)(?:, start: [-\d.]+)?"
    r"(?:, bitrate: (?P<br>\d+) kb/s)?")
_STREAM_RE = re.compile(
    r"^\s*Stream #0:(?P<idx>\d+)(?:\[0x[0-9a-f]+\])?(?:\((?P<lang>[^)]*)\))?: "
    r"(?P<type>Video|Audio|Subtitle|Data|Attachment): (?P<rest>.*)$")
_META_RE = re.compile(r"^\s+(?P<key>[A-Za-z_-]+)\s*: (?P<value>.*)$")


def _split_top(text: str) -> list[str]:
    """Split ffmpeg's stream description at commas outside parentheses.

    >>> _split_top("yuv420p(tv, bt709, progressive), 640x360 [SAR 1:1 DAR 16:9], 25 fps")
    ['yuv420p(tv, bt709, progressive)', '640x360 [SAR 1:1 DAR 16:9]', '25 fps']
    """
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur).strip())
    return parts


def _parse_stream(m: re.Match) -> Stream:
    kind = m.group("type").lower()
    rest = m.group("rest")
    flags = re.findall(r"\((default|forced)\)", rest)
    rest = re.sub(r"\s*\((default|forced|attached pic|dependent|visual impaired|"
                  r"hearing impaired|original|comment|lyrics|karaoke|dub|descriptions|"
                  r"captions|metadata)\)", "", rest)
    parts = _split_top(rest)
    head = parts[0] if parts else ""
    cm = re.match(r"(?P<codec>[\w-]+)(?: \((?P<profile>[^)]*)\))?", head)
    codec = cm.group("codec") if cm else head
    profile = cm.group("profile") if cm and cm.group("profile") else None
    if profile and re.fullmatch(r"[\w]+ / 0x[0-9A-Fa-f]+", profile):
        profile = None   # a codec tag ("avc1 / 0x31637661"), not a profile
    lang = m.group("lang")
    s = Stream(index=int(m.group("idx")), type=kind, codec=codec, profile=profile,
               language=None if lang in (None, "", "und") else lang,
               default="default" in flags, forced="forced" in flags)
    for p in parts[1:]:
        if kind == "video":
            if s.pix_fmt is None and re.match(r"(yuv|yuvj|nv|p0|rgb|bgr|gray|gbr)\w*", p):
                s.pix_fmt = p.split("(")[0]
            dm = re.match(r"(\d+)x(\d+)", p)
            if dm and s.width is None:
                s.width, s.height = int(dm.group(1)), int(dm.group(2))
            fm = re.match(r"([\d.]+)(k?) fps", p)
            if fm:
                s.fps = float(fm.group(1)) * (1000 if fm.group(2) else 1)
        elif kind == "audio":
            hm = re.match(r"(\d+) Hz", p)
            if hm:
                s.sample_rate = int(hm.group(1))
            elif s.sample_rate is not None and s.channels is None:
                s.channels = p
    return s


def parse_ffmpeg_info(text: str) -> MediaProbe:
    """Parse the stderr of ``ffmpeg -hide_banner -i INPUT``; :class:`ProbeError` if there is no
    ``Input #0`` section (ffmpeg could not open it: the message says why)."""
    im = _INPUT_RE.search(text)
    if not im:
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else "no output"
        raise ProbeError(f"ffmpeg cannot read this file as media: {reason}")
    body = text[im.end():]
    duration = bitrate = None
    dm = _DURATION_RE.search(body)
    if dm:
        if dm.group("h") is not None:
            duration = int(dm.group("h")) * 3600 + int(dm.group("m")) * 60 + float(dm.group("s"))
        if dm.group("br"):
            bitrate = int(dm.group("br"))
    streams: list[Stream] = []
    in_stream_meta = False
    current: Stream | None = None
    for line in body.splitlines():
        sm = _STREAM_RE.match(line)
        if sm:
            current = _parse_stream(sm)
            streams.append(current)
            in_stream_meta = False
            continue
        if current is not None and line.strip() == "Metadata:":
            in_stream_meta = True
            continue
        if in_stream_meta and current is not None:
            mm = _META_RE.match(line)
            if mm:
                key = mm.group("key").lower()
                if key == "title" and current.title is None:
                    current.title = mm.group("value").strip()
                elif key == "language" and current.language is None:
                    current.language = mm.group("value").strip()
            elif not line.startswith("      "):
                in_stream_meta = False
    return MediaProbe(container=im.group("fmt"), duration_s=duration, bitrate_kbps=bitrate,
                      streams=streams)


# --- what a browser plays -------------------------------------------------------------------
#: video codecs Chromium, Firefox and Safari decode in MP4 (HEVC: not in this Chromium, FACTS.md)
BROWSER_VIDEO = {"h264", "vp8", "vp9", "av1"}
#: audio codecs browsers decode; FLAC is left out on purpose (the brief lists it to transcode:
#: Safari and older Firefox do not take it in every container)
BROWSER_AUDIO = {"aac", "mp3", "opus", "vorbis"}
#: audio copied as is into fragmented MP4; anything else becomes AAC
COPY_AUDIO = {"aac", "mp3"}
_WEBM_VIDEO = {"vp8", "vp9", "av1"}
_WEBM_AUDIO = {"opus", "vorbis"}


def _h264_decodable(v: Stream) -> bool:
    """Browsers decode 8-bit 4:2:0 H.264 only: "High 10" (anime's Hi10P) and 4:4:4 do not play."""
    if v.profile and ("10" in v.profile or "4:2:2" in v.profile or "4:4:4" in v.profile):
        return False
    return v.pix_fmt in (None, "yuv420p", "yuvj420p")


def playback_plan(probe: MediaProbe, audio_track: int = 0) -> dict[str, Any]:
    """How the player should play it: ``{"mode", "browser_playable", "video", "audio", "reason"}``.

    ``mode`` is ``direct`` (``/api/stream``), ``remux`` (``/api/transcode``, both tracks copied) or
    ``transcode`` (``/api/transcode``, at least one re-encoded). ``video``/``audio`` are ``copy``,
    ``h264``, ``aac`` or None (no such track). ``audio_track`` picks among the audio streams.
    """
    videos = probe.of_type("video")
    audios = probe.of_type("audio")
    v = videos[0] if videos else None
    a = audios[audio_track] if 0 <= audio_track < len(audios) else (audios[0] if audios else None)
    fmt = probe.container
    is_mp4 = fmt.startswith("mov,mp4")
    is_mkv = fmt.startswith("matroska")
    is_webm = (is_mkv and (v is None or v.codec in _WEBM_VIDEO)
               and (a is None or a.codec in _WEBM_AUDIO))
    v_ok = v is None or (v.codec in BROWSER_VIDEO and (v.codec != "h264" or _h264_decodable(v)))
    a_ok = a is None or a.codec in BROWSER_AUDIO
    video_action = None if v is None else (
        "copy" if v.codec == "h264" and _h264_decodable(v) else "h264")
    audio_action = None if a is None else ("copy" if a.codec in COPY_AUDIO else "aac")
    reasons = []
    if v is not None and not v_ok:
        reasons.append(f"video {v.codec}{' ' + v.profile if v.profile else ''} does not decode in browsers")
    if a is not None and not a_ok:
        reasons.append(f"audio {a.codec} does not decode in every browser")
    direct = (is_mp4 or is_webm) and v_ok and a_ok and not (audio_track and len(audios) > 1)
    if is_mkv and not is_webm and v_ok and a_ok:
        reasons.append("Matroska plays only in Chromium-based browsers")
    if audio_track and len(audios) > 1:
        reasons.append(f"audio track {audio_track} chosen")
    if not (is_mp4 or is_mkv):
        reasons.append(f"container {fmt.split(',')[0]} is not opened by browsers")
    if direct:
        mode = "direct"
    elif video_action != "h264" and audio_action != "aac":
        mode = "remux"
    else:
        mode = "transcode"
    return {"mode": mode, "browser_playable": direct, "video": video_action,
            "audio": audio_action, "audio_track": audios.index(a) if a else None,
            "reason": "; ".join(reasons) or "plays as it is"}
