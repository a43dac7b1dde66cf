"""tstream demo: a generated clip, seeded on loopback, streamed by the server.

Everything runs offline: ffmpeg (from the imageio-ffmpeg wheel) makes an
H.264/AAC MP4, a LocalSwarm seeds it on 127.0.0.1, and the server streams it
through a magnet with ``x.pe``, exactly as it would stream from the internet.
"""
from __future__ import annotations

import asyncio
import logging
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .engine.swarm import LocalSwarm
from .mediagen import make_mp4

log = logging.getLogger("tstream.demo")


@dataclass
class DemoMedia:
    swarm: LocalSwarm
    clip: Path

    @property
    def magnet(self) -> str:
        return self.swarm.magnet

    def close(self) -> None:
        self.swarm.close()


def start_demo_swarm(seconds: float = 60.0, workdir: Path | None = None) -> DemoMedia:
    """Generate (or reuse from cache) a clip and seed it on loopback."""
    clip = make_mp4(seconds=seconds, width=640, height=360, video_bitrate="1500k", faststart=True, seed=7)
    work = workdir or Path(tempfile.mkdtemp(prefix="tstream-demo-"))
    named = work / "src" / "tstream-demo.mp4"
    named.parent.mkdir(parents=True, exist_ok=True)
    if not named.exists():
        try:
            named.hardlink_to(clip)
        except OSError:
            named.write_bytes(clip.read_bytes())
    swarm = LocalSwarm.from_files([named], workdir=work / "seed")
    return DemoMedia(swarm=swarm, clip=named)


def watch_url(base: str, magnet: str) -> str:
    return f"{base}/?" + urllib.parse.urlencode({"magnet": magnet})


async def run_demo(settings: Settings, *, seconds: float = 60.0) -> None:
    from .server.app import serve

    demo = await asyncio.get_running_loop().run_in_executor(None, start_demo_swarm, seconds)
    # the demo swarm is on loopback: no DHT/UPnP, TCP peers
    settings = settings.offline()

    def ready(running) -> None:  # type: ignore[no-untyped-def]
        # the clip is found by search through the local catalogue (with its x.pe peer)
        running.kit.search.remember_torrent_bytes(demo.swarm.torrent_bytes, magnet=demo.magnet, source="demo")
        print(f"tstream demo: seeding {demo.clip.name} on 127.0.0.1:{demo.swarm.port}", flush=True)
        print(f"  magnet: {demo.magnet}", flush=True)
        print(f"  watch:  {watch_url(running.url, demo.magnet)}", flush=True)
        print(f"  stream: {running.url}/api/stream?" + urllib.parse.urlencode({"magnet": demo.magnet}), flush=True)
        print(f"  search: {running.url}/api/search?query=tstream+demo", flush=True)
        print("Ctrl-C to stop.", flush=True)

    try:
        await serve(settings, ready=ready)
    finally:
        demo.close()
