"""ffmpeg jobs end cleanly: a disconnect's stop and a server's stop_all share one reap.

CI once failed on "RuntimeError: Event loop is closed" printed at the exit of the media bench:
the viewer's disconnect had taken the job out of the table and was still waiting for ffmpeg to
exit when the server stopped, so ``stop_all`` returned at once and the process was never reaped.
A real ffmpeg (the imageio-ffmpeg binary) writing an endless test pattern to its stdout.
"""
from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys

import pytest

from tstream_kit.transcode.ffmpeg import FfmpegJob, TranscodeLimit, ffmpeg_exe

ENDLESS = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
           "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
           "-c:v", "rawvideo", "-f", "rawvideo", "pipe:1"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_stop_all_waits_for_a_stop_already_under_way() -> None:
    limit = TranscodeLimit(2)
    job = await limit.start(("viewer", "ih", 0), ENDLESS)
    assert await job.read()              # running, and its stdout now has unread data behind it
    pid = job.pid
    # what the handler's on_connection_close does: a fire-and-forget finish
    asyncio.ensure_future(limit.finish(job))
    await asyncio.sleep(0)               # the finish has taken the job out of the table
    assert not limit.jobs
    await limit.stop_all()               # the server stopping: must wait for that reap
    assert job.proc is not None and job.proc.returncode is not None
    # it ended on the SIGTERM (or the closed pipe), not on the SIGKILL after the grace period:
    # before the fix, wait() never returned while stdout was paused and every stop took 7 s
    assert job.proc.returncode != -signal.SIGKILL
    assert not _alive(pid)
    assert job.proc._transport.is_closing()   # noqa: SLF001 - the pipe the bug left open


async def test_stop_is_idempotent_and_concurrent_stops_share_one_reap() -> None:
    job = FfmpegJob(key=("v", "ih", 0), cmd=ENDLESS)
    await job.start()
    assert await job.read()
    await asyncio.gather(job.stop(), job.stop(), job.stop())
    assert job.proc is not None and job.proc.returncode is not None
    assert job.proc.returncode != -signal.SIGKILL
    await job.stop()                     # once more after the end: returns at once
    assert not job.running


@pytest.mark.timeout(60)
def test_a_script_that_stops_its_server_during_a_disconnect_exits_without_a_traceback() -> None:
    """The CI failure itself: a whole asyncio.run that ends right after a disconnect."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(os.getcwd())!r})
from tstream_kit.transcode.ffmpeg import TranscodeLimit
ENDLESS = {ENDLESS!r}
async def main():
    limit = TranscodeLimit(1)
    job = await limit.start(("v", "ih", 0), ENDLESS)
    await job.read()
    asyncio.ensure_future(limit.finish(job))
    await asyncio.sleep(0)
    await limit.stop_all()
asyncio.run(main())
import gc; gc.collect()
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert "Traceback" not in r.stderr and "Event loop is closed" not in r.stderr, r.stderr
    gc.collect()
