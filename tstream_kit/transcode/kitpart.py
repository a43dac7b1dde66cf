"""MediaKit: probing, remux/transcode jobs and subtitles, held by the Kit.

Probes are cached per (infohash, file index) for the life of the process; embedded subtitle
tracks once extracted, and uploaded ``.srt`` files, are kept as WebVTT under
``<data dir>/subtitles/``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..media import FileEntry, extension_of
from ..media_probe import MediaProbe, ProbeError, parse_ffmpeg_info, playback_plan
from ..subtitles import SUBTITLE_FORMATS, SubtitleError, language_from_name, to_webvtt
from .ffmpeg import FfmpegJob, TranscodeLimit, fmp4_cmd, probe_cmd, run_capture, subtitle_cmd
from .source import SourceServer

if TYPE_CHECKING:  # pragma: no cover
    from ..engine import Torrent
    from ..kit import Kit

log = logging.getLogger("tstream.media")

__all__ = ["MediaKit", "MAX_SUBTITLE_BYTES"]

#: largest subtitle file (in the torrent or uploaded) we convert
MAX_SUBTITLE_BYTES = 8 * 1024 * 1024
#: seconds an embedded subtitle extraction may take (it reads the whole file)
EXTRACT_TIMEOUT_S = 900.0
_TRACK_RE = re.compile(r"^(file|s|upload):(\d+)$")


class MediaKit:
    def __init__(self, kit: "Kit") -> None:
        self.kit = kit
        self.settings = kit.settings
        self.source = SourceServer(kit)
        self.limit = TranscodeLimit(self.settings.transcode_limit)
        self._probes: dict[tuple[str, int], MediaProbe] = {}
        self._probing: dict[tuple[str, int], asyncio.Future] = {}
        self._extracting: dict[tuple[str, int, int], asyncio.Future] = {}

    @property
    def subtitle_dir(self) -> Path:
        return self.settings.data_dir / "subtitles"

    async def stop(self) -> None:
        await self.limit.stop_all()
        self.source.stop()

    # ------------------------------------------------------------------ probe
    def cached_probe(self, torrent: "Torrent", f: FileEntry) -> MediaProbe | None:
        return self._probes.get((torrent.infohash, f.index))

    async def probe(self, torrent: "Torrent", f: FileEntry) -> MediaProbe:
        """``ffmpeg -i`` over the loopback source: reads the header/index pieces only."""
        key = (torrent.infohash, f.index)
        if key in self._probes:
            return self._probes[key]
        fut = self._probing.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._probe(torrent, f))
            self._probing[key] = fut
            fut.add_done_callback(lambda _f: self._probing.pop(key, None))
        return await asyncio.shield(fut)

    async def _probe(self, torrent: "Torrent", f: FileEntry) -> MediaProbe:
        url = self.source.url(torrent.infohash, f.index, "probe")
        cmd = probe_cmd(url, self.settings.piece_timeout)
        try:
            _, _, err = await run_capture(cmd, self.settings.probe_timeout)
        except asyncio.TimeoutError:
            raise ProbeError(f"probing {f.path} took more than {self.settings.probe_timeout:g} s "
                             "(TSTREAM_PROBE_TIMEOUT): are there peers?") from None
        probe = parse_ffmpeg_info(err)
        self._probes[(torrent.infohash, f.index)] = probe
        return probe

    async def describe(self, torrent: "Torrent", f: FileEntry, audio_track: int = 0) -> dict[str, Any]:
        """The probe and playback plan as JSON (``{"error": ...}`` if the probe failed)."""
        try:
            probe = await self.probe(torrent, f)
        except ProbeError as exc:
            return {"error": str(exc), "browser_playable": f.playable,
                    "playback": {"mode": "direct", "browser_playable": f.playable,
                                 "reason": "not probed: " + str(exc)}}
        plan = playback_plan(probe, audio_track)
        return {**probe.to_json(), "browser_playable": plan["browser_playable"], "playback": plan}

    # ------------------------------------------------------------- transcode
    async def start_fmp4(self, torrent: "Torrent", f: FileEntry, *, viewer: str, start: float,
                         audio_track: int, force: str | None = None) -> tuple[FfmpegJob, dict[str, Any]]:
        probe = await self.probe(torrent, f)
        plan = playback_plan(probe, audio_track)
        video, audio = plan["video"], plan["audio"]
        if force == "transcode" and video == "copy":
            video = "h264"
        fps = probe.of_type("video")[0].fps if probe.of_type("video") else None
        cmd = fmp4_cmd(self.source.url(torrent.infohash, f.index, "transcode"), start=start,
                       video=video, audio=audio, audio_track=plan["audio_track"] or 0,
                       preset=self.settings.transcode_preset,
                       max_height=self.settings.transcode_max_height,
                       piece_timeout=self.settings.piece_timeout, fps=fps)
        mode = "remux" if video in ("copy", None) and audio in ("copy", None) else "transcode"
        job = await self.limit.start(
            (viewer, torrent.infohash, f.index), cmd, infohash=torrent.infohash,
            file_index=f.index, path=f.path, viewer=viewer, start=start, mode=mode,
            video=video, audio=audio)
        return job, {**plan, "mode": mode, "video": video}

    # -------------------------------------------------------------- subtitles
    async def subtitle_tracks(self, torrent: "Torrent", f: FileEntry | None) -> list[dict[str, Any]]:
        """Every subtitle for the video ``f``: files in the torrent, tracks inside ``f`` (if
        probed), and uploads."""
        out: list[dict[str, Any]] = []
        for sf in torrent.files:
            if extension_of(sf.path) in SUBTITLE_FORMATS:
                out.append({"track": f"file:{sf.index}", "source": "file",
                            "label": sf.path.rsplit("/", 1)[-1],
                            "language": language_from_name(sf.path), "format": extension_of(sf.path)})
        if f is not None:
            probe = self.cached_probe(torrent, f)
            for s in (probe.of_type("subtitle") if probe else []):
                text_based = s.codec in ("subrip", "ass", "ssa", "webvtt", "mov_text", "text")
                out.append({"track": f"s:{s.index}", "source": "embedded",
                            "label": s.title or s.language or f"track {s.index}",
                            "language": s.language, "format": s.codec, "default": s.default,
                            "supported": text_based})
            for meta in self._uploads(torrent.infohash, f.index):
                out.append(meta)
        return out

    def _upload_dir(self, infohash: str) -> Path:
        return self.subtitle_dir / infohash

    def _uploads(self, infohash: str, index: int) -> list[dict[str, Any]]:
        d = self._upload_dir(infohash)
        out = []
        for p in sorted(d.glob(f"{index}-upload-*.json")) if d.exists() else []:
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def save_upload(self, torrent: "Torrent", f: FileEntry, name: str, data: bytes) -> dict[str, Any]:
        if len(data) > MAX_SUBTITLE_BYTES:
            raise SubtitleError(f"subtitle file is larger than {MAX_SUBTITLE_BYTES // 1024 // 1024} MiB")
        fmt = extension_of(name) or "srt"
        vtt = to_webvtt(fmt, data)
        d = self._upload_dir(torrent.infohash)
        d.mkdir(parents=True, exist_ok=True)
        n = len(self._uploads(torrent.infohash, f.index)) + 1
        while (d / f"{f.index}-upload-{n}.vtt").exists():
            n += 1
        (d / f"{f.index}-upload-{n}.vtt").write_text(vtt, encoding="utf-8")
        meta = {"track": f"upload:{n}", "source": "upload", "label": name or f"upload {n}",
                "language": language_from_name(name or ""), "format": fmt,
                "uploaded_at": time.time()}
        (d / f"{f.index}-upload-{n}.json").write_text(json.dumps(meta))
        return meta

    async def subtitle_vtt(self, torrent: "Torrent", f: FileEntry, track: str) -> str:
        """The WebVTT text of ``track`` (``file:N``, ``s:N`` or ``upload:N``) for video ``f``.
        ``LookupError`` for an unknown track, ``SubtitleError`` for one we cannot convert."""
        m = _TRACK_RE.match(track or "")
        if not m:
            raise SubtitleError(f"track must be file:N, s:N or upload:N, got {track[:40]!r}")
        kind, n = m.group(1), int(m.group(2))
        if kind == "file":
            sf = torrent.file(n)
            if sf is None or extension_of(sf.path) not in SUBTITLE_FORMATS:
                raise LookupError(f"file {n} is not a subtitle file of {torrent.name}")
            if sf.size > MAX_SUBTITLE_BYTES:
                raise SubtitleError(f"{sf.path} is larger than {MAX_SUBTITLE_BYTES} bytes")
            reader = self.kit.open_reader(torrent, sf, client="subtitles", purpose="subtitle")
            try:
                data = await reader.read_exact(0, sf.size)
            finally:
                reader.close()
            return to_webvtt(extension_of(sf.path), data)
        if kind == "upload":
            p = self._upload_dir(torrent.infohash) / f"{f.index}-upload-{n}.vtt"
            if not p.exists():
                raise LookupError(f"no uploaded subtitle {n} for file {f.index}")
            return p.read_text(encoding="utf-8")
        # a track inside the video file: its packets are spread over the whole file
        probe = await self.probe(torrent, f)
        if not any(s.index == n and s.type == "subtitle" for s in probe.streams):
            raise LookupError(f"{f.path} has no subtitle stream {n}")
        cache = self._upload_dir(torrent.infohash) / f"{f.index}-s{n}.vtt"
        if cache.exists():
            return cache.read_text(encoding="utf-8")
        key = (torrent.infohash, f.index, n)
        fut = self._extracting.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._extract(torrent, f, n, cache))
            self._extracting[key] = fut
            fut.add_done_callback(lambda _f: self._extracting.pop(key, None))
        return await asyncio.shield(fut)

    async def _extract(self, torrent: "Torrent", f: FileEntry, n: int, cache: Path) -> str:
        cmd = subtitle_cmd(self.source.url(torrent.infohash, f.index, "subtitle"), n,
                           self.settings.piece_timeout)
        status, out, err = await run_capture(cmd, EXTRACT_TIMEOUT_S)
        if status != 0:
            raise SubtitleError(f"ffmpeg cannot convert subtitle stream {n} to WebVTT: "
                                f"{err.strip().splitlines()[-1] if err.strip() else status}")
        text = out.decode("utf-8", "replace")
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(cache)
        return text
