"""Media benchmark (issue 7): time to the first playable fMP4 segment, remux and transcode,
and transcode speed as a multiple of real time on this machine.

Setup: test-pattern clips with noise (``mediagen.make_clip``): an H.264/AAC MKV (remux: copied
into fragmented MP4), an HEVC/AAC MP4 (video transcoded to H.264 with libx264 at
``TSTREAM_TRANSCODE_PRESET``) and an H.264/AC3 MP4 (audio transcoded to AAC), each seeded on a
loopback swarm; a real tstream server (offline settings, fresh data dir per run, so every run is
cold: nothing downloaded, nothing probed).

    first segment   GET /api/info?probe=1 then GET /api/transcode?start=S, until the first
                    moof+mdat after the init segment is complete (what MSE needs to show a
                    frame); at S=0 and at S=60 % of the clip (a seek to a time not downloaded)
    speed           the whole /api/transcode response from 0 (warm torrent): clip seconds /
                    wall seconds ("2.0x" = twice real time)

    .venv/bin/python bench/media_bench.py [--seconds 60] [--height 720] [--runs 3] [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tornado.httpclient import AsyncHTTPClient, HTTPClientError  # noqa: E402

from tstream_kit import mediagen  # noqa: E402
from tstream_kit.config import Settings  # noqa: E402
from tstream_kit.engine.swarm import LocalSwarm  # noqa: E402
from tstream_kit.server.app import start_server  # noqa: E402

CASES = {
    "remux (H.264 MKV)": dict(video="h264", audio="aac", container="mkv"),
    "transcode video (HEVC MP4)": dict(video="hevc", audio="aac", container="mp4"),
    "transcode audio (AC3 MP4)": dict(video="h264", audio="ac3", container="mp4"),
}


class _Done(Exception):
    pass


def _first_segment_complete(buf: bytes) -> bool:
    off, seen_moof = 0, False
    while off + 8 <= len(buf):
        size, kind = struct.unpack(">I4s", buf[off:off + 8])
        if size < 8 or off + size > len(buf):
            return False
        if kind == b"moof":
            seen_moof = True
        elif kind == b"mdat" and seen_moof:
            return True
        off += size
    return False


async def first_segment(url: str) -> float:
    buf = bytearray()
    began = time.perf_counter()
    done_at: list[float] = []

    def on_chunk(chunk: bytes) -> None:
        buf.extend(chunk)
        if not done_at and _first_segment_complete(bytes(buf)):
            done_at.append(time.perf_counter())
            raise _Done()

    try:
        await AsyncHTTPClient().fetch(url, streaming_callback=on_chunk, request_timeout=120)
    except (_Done, HTTPClientError, OSError) as exc:
        if not done_at:
            raise RuntimeError(f"no segment from {url}: {exc}") from exc
    if not done_at:
        raise RuntimeError(f"the response ended before a whole segment: {url}")
    return done_at[0] - began


async def whole(url: str) -> tuple[float, int]:
    began = time.perf_counter()
    r = await AsyncHTTPClient(max_body_size=4 << 30).fetch(url, request_timeout=900)
    return time.perf_counter() - began, len(r.body)


async def run_case(name: str, clip: Path, seconds: float, runs: int) -> dict[str, Any]:
    swarm = LocalSwarm.from_files([clip])
    out: dict[str, Any] = {"clip_bytes": clip.stat().st_size}
    try:
        cold0, cold_seek, probes = [], [], []
        seek = round(seconds * 0.6, 1)
        for i in range(runs):
            for start, sink in ((0.0, cold0), (seek, cold_seek)):
                with tempfile.TemporaryDirectory(prefix="media-bench-") as tmp:
                    settings = Settings.from_env({}, data_dir=Path(tmp), port=0).offline()
                    server = await start_server(settings)
                    try:
                        q = urllib.parse.urlencode({"magnet": swarm.magnet, "probe": 1})
                        t = time.perf_counter()
                        await AsyncHTTPClient().fetch(f"{server.url}/api/info?{q}", request_timeout=60)
                        probe_s = time.perf_counter() - t
                        q = urllib.parse.urlencode({"magnet": swarm.magnet, "start": start,
                                                    "viewer": f"bench{i}"})
                        seg = await first_segment(f"{server.url}/api/transcode?{q}")
                        sink.append(probe_s + seg)
                        probes.append(probe_s)
                        if start == 0.0 and i == 0:
                            # speed: the whole output, torrent now warm (downloading/downloaded)
                            q = urllib.parse.urlencode({"magnet": swarm.magnet, "viewer": "speed"})
                            wall, size = await whole(f"{server.url}/api/transcode?{q}")
                            out["speed_x_realtime"] = round(seconds / wall, 2)
                            out["output_bytes"] = size
                    finally:
                        await server.stop()
        out["probe_ms_p50"] = round(1000 * statistics.median(probes), 1)
        out["first_segment_ms_p50"] = round(1000 * statistics.median(cold0), 1)
        out["first_segment_after_seek_ms_p50"] = round(1000 * statistics.median(cold_seek), 1)
        out["seek_to_s"] = seek
    finally:
        swarm.close()
    return out


async def main(argv: list[str] | None = None) -> int:
    import logging
    logging.getLogger("tornado.general").setLevel(logging.CRITICAL)   # our own abort of a stream
    logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20 s at 360p, one run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.height, args.runs = 20, 360, 1
    width = args.height * 16 // 9 // 2 * 2
    rate = "4M" if args.height >= 720 else "1M"
    preset = Settings.from_env({}).transcode_preset
    results: dict[str, Any] = {"seconds": args.seconds, "size": f"{width}x{args.height}",
                               "runs": args.runs, "preset": preset, "cpus": os.cpu_count(), "cases": {}}
    for name, kw in CASES.items():
        clip = mediagen.make_clip(seconds=args.seconds, width=width, height=args.height,
                                  video_bitrate=rate, **kw)
        results["cases"][name] = await run_case(name, clip, args.seconds, args.runs)
    print(f"media bench: {args.seconds:g} s clips at {width}x{args.height}, libx264 preset {preset}, "
          f"{os.cpu_count()} CPUs, medians of {args.runs} cold runs (probe included)")
    print(f"{'case':30} {'probe':>8} {'1st seg':>9} {'after seek':>11} {'speed':>7}")
    for name, r in results["cases"].items():
        print(f"{name:30} {r['probe_ms_p50']:7.0f}ms {r['first_segment_ms_p50']:8.0f}ms "
              f"{r['first_segment_after_seek_ms_p50']:10.0f}ms {r['speed_x_realtime']:6.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
