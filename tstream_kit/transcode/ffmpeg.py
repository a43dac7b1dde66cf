"""ffmpeg command lines (pure) and the processes that run them (limited, stoppable).

The binary is the one in the ``imageio-ffmpeg`` wheel (libx264, libx265, aac, libopus; no
ffprobe). Output is fragmented MP4 on stdout: an init segment (``ftyp`` + ``moov``, no samples),
then a ``moof``/``mdat`` pair about every second, which a ``<video>`` (progressive) or Media
Source Extensions (the player page) plays as it arrives.

Timestamps: ``-ss T -copyts -avoid_negative_ts disabled`` with ``+frag_discont`` keeps the source's
times in every fragment's ``tfdt`` (measured: without them ffmpeg rewrites the first fragment to
0), so after a seek to T the new fragments land at T on the player's timeline and the page needs
no offset. A remux starts at the key frame at or before T; a transcode exactly at T.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("tstream.media")

__all__ = ["ffmpeg_exe", "probe_cmd", "fmp4_cmd", "subtitle_cmd", "FfmpegJob", "TranscodeLimit",
           "TranscodeBusy", "run_capture"]

#: ffmpeg's socket read/write timeout (µs) is the reader's piece timeout plus this margin (s)
RW_TIMEOUT_MARGIN_S = 5.0
#: how much of the file ffmpeg may read to learn codec parameters when probing
PROBE_SIZE = 5_000_000
#: fragment length: time to the first playable segment is about one fragment
FRAGMENT_US = 1_000_000
#: seconds a stopped ffmpeg gets between SIGTERM and SIGKILL
STOP_GRACE_S = 2.0
#: the stderr lines kept per job (for errors and /api/transcodes)
STDERR_LINES = 30


def ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def _input_args(url: str, piece_timeout: float) -> list[str]:
    rw = int((piece_timeout + RW_TIMEOUT_MARGIN_S) * 1_000_000)
    return ["-rw_timeout", str(rw), "-seekable", "1"]


def probe_cmd(url: str, piece_timeout: float) -> list[str]:
    """``ffmpeg -i URL``: the report on stderr, no output file (exit status 1 is normal)."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *_input_args(url, piece_timeout),
            "-probesize", str(PROBE_SIZE), "-analyzeduration", "5000000", "-i", url]


def fmp4_cmd(url: str, *, start: float = 0.0, video: str | None = "copy", audio: str | None = "copy",
             audio_track: int = 0, preset: str = "veryfast", max_height: int = 1080,
             piece_timeout: float = 60.0, fps: float | None = None) -> list[str]:
    """Remux or transcode ``url`` from ``start`` seconds to fragmented MP4 on stdout.

    ``video``: ``copy`` or ``h264`` (libx264, 8-bit 4:2:0 High, key frame every 2 s, scaled to
    at most ``max_height`` lines); ``audio``: ``copy`` or ``aac`` (stereo 160 kb/s); None = no
    such track.

    >>> cmd = fmp4_cmd("http://x/src", start=12.5, video="copy", audio="aac")
    >>> cmd[cmd.index("-ss") + 1], cmd[cmd.index("-c:v") + 1], cmd[cmd.index("-c:a") + 1]
    ('12.500', 'copy', 'aac')
    """
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
           *_input_args(url, piece_timeout)]
    if start > 0:
        cmd += ["-ss", f"{start:.3f}"]
    cmd += ["-copyts", "-i", url]
    if video:
        cmd += ["-map", "0:v:0"]
    if audio:
        cmd += ["-map", f"0:a:{int(audio_track)}?"]
    cmd += ["-sn", "-dn"]
    if video == "copy":
        cmd += ["-c:v", "copy"]
    elif video:
        gop = int(round((fps or 24.0) * 2))
        vf = "format=yuv420p"
        if max_height:
            vf = f"scale=w=-2:h='min(ih,{int(max_height)})',{vf}"
        cmd += ["-c:v", "libx264", "-preset", preset, "-crf", "23", "-profile:v", "high",
                "-vf", vf, "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    if audio == "copy":
        cmd += ["-c:a", "copy"]
    elif audio:
        cmd += ["-c:a", "aac", "-b:a", "160k", "-ac", "2"]
    cmd += ["-avoid_negative_ts", "disabled",
            "-movflags", "frag_keyframe+empty_moov+default_base_moof+frag_discont",
            "-frag_duration", str(FRAGMENT_US), "-flush_packets", "1",
            "-f", "mp4", "pipe:1"]
    return cmd


def subtitle_cmd(url: str, stream_index: int, piece_timeout: float = 60.0) -> list[str]:
    """One subtitle stream (ffmpeg's stream number in the file) as WebVTT on stdout."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            *_input_args(url, piece_timeout), "-i", url,
            "-map", f"0:{int(stream_index)}", "-vn", "-an", "-c:s", "webvtt", "-f", "webvtt", "pipe:1"]


class TranscodeBusy(RuntimeError):
    """Every transcode slot is taken (TSTREAM_TRANSCODE_LIMIT)."""


@dataclass(eq=False)  # identity: jobs go in sets
class FfmpegJob:
    """One running ffmpeg; ``stop()`` ends it (SIGTERM, SIGKILL after a grace period)."""

    key: tuple
    cmd: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    started_at: float = field(default_factory=time.time)
    stderr_tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=STDERR_LINES))
    bytes_out: int = 0
    stopped: bool = False
    _stderr_task: asyncio.Task | None = None
    _stop_task: asyncio.Future | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, limit=1 << 20)
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def read(self, n: int = 256 * 1024) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        data = await self.proc.stdout.read(n)
        self.bytes_out += len(data)
        return data

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def error_text(self) -> str:
        return "\n".join(self.stderr_tail)[-1500:]

    async def stop(self) -> None:
        """End the process (its own session: only this pid is signalled) and reap it.

        Idempotent and shared: every caller awaits the same stop, so a server stopping while a
        viewer's disconnect is still stopping the job waits for the reap instead of returning
        early (which left an unreaped process whose transport was collected after the loop
        closed: "RuntimeError: Event loop is closed" at exit, seen in CI).
        """
        self.stopped = True
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        # asyncio's Process.wait() (3.11) returns only once every pipe is closed too, and a
        # viewer who left stopped reading stdout, so its pipe stays paused with data in it:
        # wait() then never returned and every stop took the grace period plus the 5 s below
        # (7 s, measured) and left the transport to be collected after the loop closed. We do
        # not want the rest of the output: close our end of stdout first. ffmpeg, blocked on a
        # full pipe, then gets EPIPE and exits on the SIGTERM at once. (No public handle on a
        # Process's transport; get_pipe_transport is public on the transport.)
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            stdout_pipe = transport.get_pipe_transport(1)
            if stdout_pipe is not None:
                stdout_pipe.close()
        if proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except asyncio.TimeoutError:
                log.error("ffmpeg %d did not exit 5 s after SIGKILL", proc.pid)
        if transport is not None and proc.returncode is not None:
            transport.close()
        if self._stderr_task is not None:
            try:
                await asyncio.wait_for(self._stderr_task, 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._stderr_task.cancel()

    def snapshot(self) -> dict[str, Any]:
        return {"pid": self.pid, "running": self.running, "started_at": self.started_at,
                "bytes_out": self.bytes_out, "seconds": round(time.time() - self.started_at, 1),
                **self.info}


class TranscodeLimit:
    """At most ``limit`` ffmpeg remux/transcode jobs at once.

    A job is keyed by viewer and file: a viewer's new request for the same file (a seek) stops
    its previous job first, so seeking never needs a second slot. When every slot is taken the
    request waits ``wait_s`` for one to free up, then fails with :class:`TranscodeBusy`.
    """

    def __init__(self, limit: int, wait_s: float = 3.0) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.jobs: dict[tuple, FfmpegJob] = {}
        self._stopping: set[FfmpegJob] = set()
        self._changed = asyncio.Event()

    async def start(self, key: tuple, cmd: list[str], **info: Any) -> FfmpegJob:
        old = self.jobs.get(key)
        if old is not None:
            await self.finish(old)
        deadline = time.monotonic() + self.wait_s
        while len(self.jobs) >= self.limit:
            left = deadline - time.monotonic()
            if left <= 0 or self.limit == 0:
                raise TranscodeBusy(
                    f"{len(self.jobs)} transcodes are running, the limit is {self.limit} "
                    "(TSTREAM_TRANSCODE_LIMIT): try again when one ends")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        job = FfmpegJob(key=key, cmd=cmd, info=dict(info))
        self.jobs[key] = job
        try:
            await job.start()
        except BaseException:
            self.jobs.pop(key, None)
            self._changed.set()
            raise
        log.info("ffmpeg %d started: %s", job.pid, info)
        return job

    async def finish(self, job: FfmpegJob) -> None:
        if self.jobs.get(job.key) is job:
            del self.jobs[job.key]
        self._changed.set()
        self._stopping.add(job)
        try:
            await job.stop()
        finally:
            self._stopping.discard(job)

    async def stop_all(self) -> None:
        """Stop every job, including those a disconnect is stopping right now, and reap them."""
        for job in list(self.jobs.values()) + list(self._stopping):
            await self.finish(job)

    def snapshot(self) -> list[dict[str, Any]]:
        return [j.snapshot() for j in self.jobs.values()]


async def run_capture(cmd: list[str], timeout: float, *, max_out: int = 64 << 20) -> tuple[int, bytes, str]:
    """Run ``cmd`` to the end (or kill it at ``timeout``): (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await asyncio.wait_for(proc.wait(), 5.0)
        raise
    return proc.returncode or 0, out[:max_out], err.decode("utf-8", "replace")
