"""Media endpoints: probe, remux/transcode to fragmented MP4, subtitles, .torrent upload, download.

``GET /api/media``        probe + playback plan + subtitle tracks of one file
``GET /api/transcode``    fragmented MP4 from ``start`` seconds (remux or transcode), while the
                          torrent downloads; ends (ffmpeg stopped) when the viewer leaves
``DELETE /api/transcode`` stop a viewer's job;  ``GET /api/transcodes``: running jobs
``GET /api/subtitles``    a subtitle track as WebVTT;  ``POST /api/subtitles``: upload an .srt
``POST /api/torrents``    add a .torrent (see :func:`upload_torrent`)
``GET /api/download``     the file as an attachment, with Range (a download that resumes)
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from pathlib import Path
from typing import Any

from tornado.iostream import StreamClosedError

from ...magnets import make_magnet
from ...media_probe import ProbeError
from ...subtitles import SubtitleError
from ...transcode.ffmpeg import TranscodeBusy
from .base import ApiError, BaseHandler
from .stream import StreamHandler

log = logging.getLogger("tstream.media")

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "static"

_AVC_PROFILES = {"High": "6400", "Main": "4d40", "Baseline": "4200", "Constrained Baseline": "42e0"}


def mse_type(plan: dict[str, Any], probe: dict[str, Any]) -> str:
    """The MIME type with codecs for ``MediaSource.addSourceBuffer`` of our fMP4 output.

    >>> mse_type({"video": "h264", "audio": "aac"}, {})
    'video/mp4; codecs="avc1.640033,mp4a.40.2"'
    """
    codecs = []
    if plan.get("video") == "copy":
        videos = probe.get("video") or [{}]
        codecs.append("avc1." + _AVC_PROFILES.get(videos[0].get("profile") or "", "6400") + "33")
    elif plan.get("video"):
        codecs.append("avc1.640033")
    if plan.get("audio"):
        audios = probe.get("audio") or []
        i = plan.get("audio_track") or 0
        codec = audios[i]["codec"] if plan["audio"] == "copy" and i < len(audios) else "aac"
        codecs.append("mp4a.6B" if codec == "mp3" else "mp4a.40.2")
    return f'video/mp4; codecs="{",".join(codecs)}"'


def _viewer(handler: BaseHandler) -> str:
    v = handler.get_query_argument("viewer", "")[:64]
    if v:
        return v
    ua = handler.request.headers.get("User-Agent", "")
    return handler.request.remote_ip + ":" + hashlib.sha1(ua.encode()).hexdigest()[:8]


async def media_json(handler: BaseHandler, torrent: Any, f: Any) -> dict[str, Any]:
    audio = handler.arg_int("audio", default=0, minimum=0) or 0
    media = await handler.kit.media.describe(torrent, f, audio)
    if "playback" in media and media["playback"]["mode"] != "direct":
        media["playback"]["mime"] = mse_type(media["playback"], media)
    media["file_index"] = f.index
    media["subtitle_tracks"] = await handler.kit.media.subtitle_tracks(torrent, f)
    return media


async def add_media_info(handler: BaseHandler, torrent: Any, out: dict[str, Any]) -> None:
    """For ``/api/info``: every file's known probe, subtitle tracks, and with ``probe=1`` the
    probe of ``file_index`` (default: the default file) made now."""
    mk = handler.kit.media
    for entry in out.get("files", []):
        f = torrent.file(entry["index"])
        probe = mk.cached_probe(torrent, f) if f is not None else None
        if probe is not None:
            entry["media"] = await mk.describe(torrent, f)
    chosen = None
    if torrent.files:
        idx = handler.arg_int("file_index", minimum=0)
        chosen = handler.kit.pick_file(torrent, idx) if (idx is not None or torrent.default_file is not None) else None
    if handler.arg_bool("probe", False) and chosen is not None and chosen.kind in ("video", "audio"):
        out["media"] = await media_json(handler, torrent, chosen)
        for entry in out.get("files", []):
            if entry["index"] == chosen.index:
                entry["media"] = {k: v for k, v in out["media"].items() if k != "subtitle_tracks"}
    out["subtitles"] = await mk.subtitle_tracks(torrent, chosen)


class MediaHandler(BaseHandler):
    async def get(self) -> None:
        torrent = await self.kit.torrent_with_metadata(self.magnet_arg())
        f = self.kit.pick_file(torrent, self.arg_int("file_index", minimum=0))
        self.write_json({"infohash": torrent.infohash, **await media_json(self, torrent, f)})


class TranscodeHandler(BaseHandler):
    _job = None

    async def get(self) -> None:
        torrent = await self.kit.torrent_with_metadata(self.magnet_arg())
        f = self.kit.pick_file(torrent, self.arg_int("file_index", minimum=0))
        try:
            start = float(self.get_query_argument("start", "0") or 0)
        except ValueError:
            raise ApiError(400, "start must be a number of seconds") from None
        if not math.isfinite(start) or start < 0:
            raise ApiError(400, "start must be >= 0 seconds")
        mode = self.get_query_argument("mode", "") or None
        if mode not in (None, "auto", "remux", "transcode"):
            raise ApiError(400, "mode must be auto, remux or transcode")
        audio = self.arg_int("audio", default=0, minimum=0) or 0
        try:
            job, plan = await self.kit.media.start_fmp4(
                torrent, f, viewer=_viewer(self), start=start, audio_track=audio,
                force="transcode" if mode == "transcode" else None)
        except TranscodeBusy as exc:
            self.set_header("Retry-After", "5")
            self.write_json({"error": str(exc)}, status=503)
            return
        except ProbeError as exc:
            raise ApiError(422, f"{f.path}: {exc}") from None
        self._job = job
        limit = self.kit.media.limit
        try:
            first = await job.read()
            if not first:
                await asyncio.wait_for(job.proc.wait(), 5.0)
                raise ApiError(502, f"ffmpeg produced nothing for {f.path} "
                                    f"(exit {job.proc.returncode}): {job.error_text()[-400:]}")
            self.set_header("Content-Type", "video/mp4")
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Tstream-Mode", plan["mode"])
            self.set_header("X-Tstream-Start", f"{start:.3f}")
            data = first
            while data:
                self.write(data)
                await self.flush()
                data = await job.read()
            code = await asyncio.wait_for(job.proc.wait(), 10.0)
            if code and not job.stopped:
                log.warning("ffmpeg %s ended with %s: %s", job.pid, code, job.error_text()[-300:])
                self.request.connection.stream.close()
                return
        except StreamClosedError:
            return
        finally:
            await limit.finish(job)
        self.finish()

    async def delete(self) -> None:
        torrent = self.kit.torrent_for_existing(self.magnet_arg())
        idx = self.arg_int("file_index", minimum=0)
        viewer = self.get_query_argument("viewer", "")
        stopped = 0
        for job in list(self.kit.media.limit.jobs.values()):
            _, ih, fi = job.key
            if ih == torrent.infohash and (idx is None or fi == idx) and (not viewer or job.key[0] == viewer):
                await self.kit.media.limit.finish(job)
                stopped += 1
        self.write_json({"stopped": stopped})

    def on_connection_close(self) -> None:
        if self._job is not None:
            # the viewer left (or seeked: a new request replaces this one): stop ffmpeg now
            asyncio.ensure_future(self.kit.media.limit.finish(self._job))


class TranscodesHandler(BaseHandler):
    async def get(self) -> None:
        lim = self.kit.media.limit
        self.write_json({"limit": lim.limit, "transcodes": lim.snapshot()})


class SubtitlesHandler(BaseHandler):
    async def get(self) -> None:
        torrent = await self.kit.torrent_with_metadata(self.magnet_arg())
        f = self.kit.pick_file(torrent, self.arg_int("file_index", minimum=0))
        track = self.get_query_argument("track", "")
        if not track:
            tracks = await self.kit.media.subtitle_tracks(torrent, f)
            self.write_json({"infohash": torrent.infohash, "file_index": f.index, "subtitles": tracks})
            return
        try:
            text = await self.kit.media.subtitle_vtt(torrent, f, track)
        except LookupError as exc:
            raise ApiError(404, str(exc)) from None
        except SubtitleError as exc:
            raise ApiError(422 if track.startswith(("file:", "s:")) else 400, str(exc)) from None
        self.set_header("Content-Type", "text/vtt; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(text.encode("utf-8"))

    async def post(self) -> None:
        torrent = await self.kit.torrent_with_metadata(self.magnet_arg())
        f = self.kit.pick_file(torrent, self.arg_int("file_index", minimum=0))
        name, data = _uploaded(self, ("subtitle", "file"), default_name="upload.srt")
        if not data.strip():
            raise ApiError(400, "empty upload: send the .srt file as the body or a 'subtitle' form field")
        try:
            meta = self.kit.media.save_upload(torrent, f, name, data)
        except SubtitleError as exc:
            raise ApiError(400, f"{name}: {exc}") from None
        self.write_json({"infohash": torrent.infohash, "file_index": f.index, **meta}, status=201)


def _uploaded(handler: BaseHandler, fields: tuple[str, ...], default_name: str) -> tuple[str, bytes]:
    """(file name, bytes) of a multipart field, else the raw body (``?name=`` names it)."""
    files = handler.request.files
    for field in fields:
        if files.get(field):
            part = files[field][0]
            return part["filename"] or default_name, part["body"]
    if files:
        part = next(iter(files.values()))[0]
        return part["filename"] or default_name, part["body"]
    return handler.get_query_argument("name", default_name)[:200], handler.request.body or b""


async def upload_torrent(handler: BaseHandler) -> None:
    """``POST /api/torrents``: a .torrent as the body (``application/x-bittorrent``) or a
    multipart ``torrent`` field. 413 beyond TSTREAM_MAX_UPLOAD_SIZE, 400 if it is not a valid
    torrent; 201 with the torrent's info and a magnet for it."""
    from .api import torrent_info

    limit = handler.kit.settings.max_upload_size
    if limit and len(handler.request.body or b"") > limit:
        raise ApiError(413, f"upload of {len(handler.request.body)} bytes is larger than "
                            f"{limit} bytes (TSTREAM_MAX_UPLOAD_SIZE)")
    name, data = _uploaded(handler, ("torrent", "file"), default_name="upload.torrent")
    if not data:
        raise ApiError(400, "empty upload: send the .torrent file as the body or a 'torrent' form field")
    if limit and len(data) > limit:
        raise ApiError(413, f"{name} is larger than {limit} bytes (TSTREAM_MAX_UPLOAD_SIZE)")
    if not data.startswith(b"d") or b"4:info" not in data:
        raise ApiError(400, f"{name} is not a .torrent file (a bencoded dictionary with 'info')")
    try:
        torrent = handler.kit.engine.add_torrent_file(data)
    except (ValueError, RuntimeError) as exc:
        raise ApiError(400, f"{name} is not a valid .torrent file: {exc}") from None
    try:
        await handler.kit.search.remember(torrent, torrent.infohash, source="upload")
    except Exception:  # noqa: BLE001 - the catalogue is a convenience here
        log.exception("cataloguing uploaded torrent %s", torrent.infohash)
    out = torrent_info(torrent)
    out["magnet"] = make_magnet(torrent.infohash, torrent.name)
    handler.write_json(out, status=201)


class DownloadHandler(StreamHandler):
    """``/api/download``: ``/api/stream`` with ``Content-Disposition: attachment``."""

    force_download = True


class MediaScriptHandler(BaseHandler):
    """``/media.js``: the player page's Media Source Extensions code."""

    async def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((STATIC_DIR / "media.js").read_bytes())
