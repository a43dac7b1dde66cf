"""Media over HTTP (issue 7): probes, fMP4 remux/transcode, subtitles, upload and download.

Real clips (``mediagen.make_clip``: H.264 MKV with a SubRip track, HEVC MP4, H.264 MP4 with AC3)
seeded on a loopback swarm, a real server, a real ffmpeg.
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
import time
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from tstream_kit import mediagen
from tstream_kit.config import Settings
from tstream_kit.server.app import RunningServer, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SUBS = [(0.5, 3.0, "Hello there"), (4.0, 7.0, "Second cue"), (12.0, 15.0, "Late cue")]


def q(**kw) -> str:
    return urllib.parse.urlencode({k: v for k, v in kw.items() if v is not None})


async def fetch(url: str, method: str = "GET", **kw) -> HTTPResponse:
    client = AsyncHTTPClient(max_body_size=512 * 1024 * 1024)
    try:
        return await client.fetch(url, method=method, raise_error=False, request_timeout=120, **kw)
    except HTTPClientError as exc:  # pragma: no cover
        return exc.response


def boxes(data: bytes) -> list[tuple[str, int, int]]:
    """Top-level (type, offset, size) of an ISO-BMFF byte string (a truncated last box is kept)."""
    out, off = [], 0
    while off + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        if size < 8:
            break
        out.append((kind.decode("latin-1"), off, size))
        off += size
    return out


def first_tfdt_seconds(data: bytes) -> list[float]:
    """Start time of each track in the first ``moof`` (tfdt / the track's mdhd timescale)."""
    scales = []
    pos = 0
    while (pos := data.find(b"mdhd", pos + 1)) != -1 and len(scales) < 4:
        v = data[pos + 4]
        at = pos + 4 + 4 + (16 if v == 1 else 8)
        scales.append(struct.unpack(">I", data[at:at + 4])[0])
    moof = data.find(b"moof")
    times, pos = [], moof
    while (pos := data.find(b"tfdt", pos + 1)) != -1 and len(times) < len(scales):
        v = data[pos + 4]
        val = struct.unpack(">Q" if v == 1 else ">I", data[pos + 8:pos + (16 if v == 1 else 12)])[0]
        times.append(val / scales[len(times)])
    return times


@pytest.fixture(scope="module")
def clips() -> dict[str, Path]:
    return {
        "mkv": mediagen.make_clip(seconds=20, video="h264", audio="aac", container="mkv", subtitles=SUBS),
        "hevc": mediagen.make_clip(seconds=20, video="hevc", audio="aac"),
        "ac3": mediagen.make_clip(seconds=20, video="h264", audio="ac3"),
    }


async def info(server: RunningServer, magnet: str, **kw) -> dict:
    r = await fetch(f"{server.url}/api/info?{q(magnet=magnet, **kw)}")
    assert r.code == 200, r.body
    return json.loads(r.body)


async def test_probe_mkv_hevc_ac3(server, make_swarm, clips) -> None:
    # one single-file torrent each (see the closing note on multi-file part files)
    swarms = {name: make_swarm([p]) for name, p in clips.items()}

    async def probed(name: str, **kw) -> dict:
        return (await info(server, swarms[name].magnet, probe=1, **kw))["media"]

    mkv = await probed("mkv")
    assert mkv["container"].startswith("matroska")
    assert abs(mkv["duration_s"] - 20) < 0.5
    assert [v["codec"] for v in mkv["video"]] == ["h264"] and mkv["video"][0]["width"] == 640
    assert [a["codec"] for a in mkv["audio"]] == ["aac"]
    assert [(s["codec"], s["language"]) for s in mkv["subtitles"]] == [("subrip", "eng")]
    assert mkv["browser_playable"] is False
    assert mkv["playback"]["mode"] == "remux" and mkv["playback"]["video"] == "copy"
    embedded = [t for t in (await info(server, swarms["mkv"].magnet))["subtitles"]
                if t["source"] == "embedded"]
    assert embedded and embedded[0]["track"] == "s:2" and embedded[0]["language"] == "eng"

    hevc = await probed("hevc")
    assert hevc["video"][0]["codec"] == "hevc"
    assert hevc["playback"]["mode"] == "transcode"
    assert hevc["playback"]["video"] == "h264" and hevc["playback"]["audio"] == "copy"

    ac3 = await probed("ac3")
    assert ac3["audio"][0]["codec"] == "ac3"
    assert ac3["playback"]["mode"] == "transcode"
    assert (ac3["playback"]["video"], ac3["playback"]["audio"]) == ("copy", "aac")
    # a probe is remembered: /api/info lists it without probe=1
    listed = (await info(server, swarms["ac3"].magnet))["files"]
    assert listed[0]["media"]["audio"][0]["codec"] == "ac3"


async def test_probe_reads_the_index_not_the_whole_file(server, make_swarm, tmp_path) -> None:
    # 40 s at 6 Mbit/s (~30 MB), moov at the end, seeder limited to 1.5 MB/s
    clip = mediagen.make_mp4(tmp_path / "big.mp4", seconds=40, video_bitrate="6M", faststart=False)
    swarm = make_swarm([clip], upload_rate=1_500_000)
    began = time.monotonic()
    media = (await info(server, swarm.magnet, probe=1))["media"]
    took = time.monotonic() - began
    assert media["video"][0]["codec"] == "h264" and abs(media["duration_s"] - 40) < 0.5
    assert media["playback"]["mode"] == "direct" and media["browser_playable"] is True
    t = server.kit.engine.get(swarm.infohash)
    have = sum(t.have)
    assert have < t.num_pieces / 2, f"probe took {took:.1f}s and fetched {have}/{t.num_pieces} pieces"


async def test_remux_and_transcode_start_near_the_asked_time(server, make_swarm, clips) -> None:
    mkv = make_swarm([clips["mkv"]])
    r = await fetch(f"{server.url}/api/transcode?{q(magnet=mkv.magnet, start=0)}")
    assert r.code == 200, r.body[:300]
    assert r.headers["Content-Type"] == "video/mp4" and r.headers["X-Tstream-Mode"] == "remux"
    kinds = [b[0] for b in boxes(r.body)]
    assert kinds[:3] == ["ftyp", "moov", "moof"] and kinds.count("moof") >= 10
    assert b"avc1" in r.body[:4096] and b"mp4a" in r.body[:4096]

    r = await fetch(f"{server.url}/api/transcode?{q(magnet=mkv.magnet, start=10.5)}")
    starts = first_tfdt_seconds(r.body)
    assert starts and all(9.0 <= s <= 10.6 for s in starts), starts   # the key frame before 10.5

    hevc = make_swarm([clips["hevc"]])
    r = await fetch(f"{server.url}/api/transcode?{q(magnet=hevc.magnet, start=12)}")
    assert r.code == 200 and r.headers["X-Tstream-Mode"] == "transcode"
    assert b"avc1" in r.body[:4096] and b"hvc1" not in r.body[:4096]
    starts = first_tfdt_seconds(r.body)
    assert starts and all(11.9 <= s <= 12.1 for s in starts), starts  # re-encoded: exactly there

    ac3 = make_swarm([clips["ac3"]])
    r = await fetch(f"{server.url}/api/transcode?{q(magnet=ac3.magnet)}")
    assert r.code == 200 and r.headers["X-Tstream-Mode"] == "transcode"
    assert b"mp4a" in r.body[:4096] and b"ac-3" not in r.body[:4096]
    assert (await fetch(f"{server.url}/api/transcodes")).code == 200
    assert json.loads((await fetch(f"{server.url}/api/transcodes")).body)["transcodes"] == []


async def _open_partial(url: str, want: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    u = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    writer.write(f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    got = b""
    while len(got) < want:
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            break
        got += chunk
    return reader, writer, got


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_transcodes_are_limited_and_stop_when_the_viewer_leaves(tmp_path, make_swarm, clips) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path / "data", port=0, transcode_limit=1).offline()
    running = await start_server(settings)
    try:
        hevc = make_swarm([clips["hevc"]], upload_rate=150_000)   # ~20 s to send: still running
        url = f"{running.url}/api/transcode?{q(magnet=hevc.magnet, viewer='a')}"
        _, writer, head = await _open_partial(url, 2000)
        assert b"200 OK" in head
        jobs = json.loads((await fetch(f"{running.url}/api/transcodes")).body)["transcodes"]
        assert len(jobs) == 1 and jobs[0]["mode"] == "transcode"
        pid = jobs[0]["pid"]
        # another viewer: no slot
        r = await fetch(f"{running.url}/api/transcode?{q(magnet=hevc.magnet, viewer='b')}")
        assert r.code == 503 and "TSTREAM_TRANSCODE_LIMIT" in json.loads(r.body)["error"]
        assert r.headers.get("Retry-After")
        # the viewer leaves: ffmpeg is stopped
        writer.close()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not _alive(pid)
        assert json.loads((await fetch(f"{running.url}/api/transcodes")).body)["transcodes"] == []
        # same viewer seeking: its new request replaces its old job, no 503
        _, w1, _ = await _open_partial(url + "&start=2", 2000)
        _, w2, head2 = await _open_partial(url + "&start=9", 2000)
        assert b"200 OK" in head2
        w1.close()
        w2.close()
    finally:
        await running.stop()


async def test_subtitles_embedded_file_and_uploaded(server, make_swarm, clips, tmp_path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    os.link(clips["mkv"], src / "episode.mkv")
    mediagen.make_subtitle_srt(src / "episode.en.srt", [(1.0, 2.5, "From the <i>file</i>")])
    (src / "episode.ja.ass").write_text(
        "[Script Info]\nTitle: x\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:02.00,0:00:04.00,Default,,0,0,0,,{\\an8}Top\\Nline\n", encoding="utf-8")
    swarm = make_swarm([src / "episode.mkv", src / "episode.en.srt", src / "episode.ja.ass"], name="ep")
    meta = await info(server, swarm.magnet, probe=1)
    video = meta["default_file"]
    tracks = {t["track"]: t for t in meta["subtitles"]}
    by_source = sorted(t["source"] for t in tracks.values())
    assert by_source == ["embedded", "file", "file"], tracks
    srt_track = next(k for k, t in tracks.items() if t["format"] == "srt")
    assert tracks[srt_track]["language"] == "en"

    async def vtt(track: str) -> str:
        r = await fetch(f"{server.url}/api/subtitles?{q(magnet=swarm.magnet, file_index=video, track=track)}")
        assert r.code == 200, r.body
        assert r.headers["Content-Type"].startswith("text/vtt")
        text = r.body.decode()
        assert text.startswith("WEBVTT")
        return text

    embedded = await vtt("s:2")
    assert "Hello there" in embedded and "Late cue" in embedded and "00:04.000 -->" in embedded
    assert "From the <i>file</i>" in await vtt(srt_track)
    ass_track = next(k for k, t in tracks.items() if t["format"] == "ass")
    assert "Top\nline" in await vtt(ass_track)

    srt = "1\n00:00:03,000 --> 00:00:05,000\nUploaded line\n".encode("cp1252")
    r = await fetch(f"{server.url}/api/subtitles?{q(magnet=swarm.magnet, file_index=video, name='mine.srt')}",
                    method="POST", body=srt)
    assert r.code == 201, r.body
    up = json.loads(r.body)
    assert up["track"] == "upload:1" and up["source"] == "upload"
    assert "Uploaded line" in await vtt("upload:1")
    listed = (await info(server, swarm.magnet, file_index=video))["subtitles"]
    assert any(t["track"] == "upload:1" for t in listed)

    r = await fetch(f"{server.url}/api/subtitles?{q(magnet=swarm.magnet, file_index=video, name='x.srt')}",
                    method="POST", body=b"this is not a subtitle")
    assert r.code == 400 and "SubRip" in json.loads(r.body)["error"]
    r = await fetch(f"{server.url}/api/subtitles?{q(magnet=swarm.magnet, file_index=video, track='s:9')}")
    assert r.code == 404
    r = await fetch(f"{server.url}/api/subtitles?{q(magnet=swarm.magnet, file_index=video, track='bogus')}")
    assert r.code == 400


async def test_torrent_upload(server, make_swarm, make_file) -> None:
    swarm = make_swarm([make_file("a.bin", 300_000, seed=3)])
    r = await fetch(f"{server.url}/api/torrents", method="POST", body=swarm.torrent_bytes,
                    headers={"Content-Type": "application/x-bittorrent"})
    assert r.code == 201, r.body
    out = json.loads(r.body)
    assert out["infohash"] == swarm.infohash and out["files"][0]["size"] == 300_000
    assert out["magnet"].startswith("magnet:?xt=urn:btih:" + swarm.infohash)
    # multipart form, as a browser's <input type=file> sends it
    boundary = "tstreamboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"torrent\"; filename=\"a.torrent\"\r\n"
            f"Content-Type: application/x-bittorrent\r\n\r\n").encode() + swarm.torrent_bytes + \
        f"\r\n--{boundary}--\r\n".encode()
    r = await fetch(f"{server.url}/api/torrents", method="POST", body=body,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.code == 201 and json.loads(r.body)["infohash"] == swarm.infohash
    for garbage in (b"hello", b"d4:infod4:name1:xee", b"d4:info" + b"x" * 100):
        r = await fetch(f"{server.url}/api/torrents", method="POST", body=garbage)
        assert r.code == 400, (garbage, r.body)
        assert "torrent" in json.loads(r.body)["error"]
    r = await fetch(f"{server.url}/api/torrents", method="POST", body=b"")
    assert r.code == 400
    big = b"d4:info" + b"0" * (server.kit.settings.max_upload_size + 10)
    r = await fetch(f"{server.url}/api/torrents", method="POST", body=big)
    assert r.code in (400, 413)


async def test_download_link_is_an_attachment_and_resumes(server, make_swarm, make_file) -> None:
    src = make_file("Movie Name.mkv", 700_000, seed=4)
    swarm = make_swarm([src])
    for path in (f"/api/download?{q(magnet=swarm.magnet)}", f"/api/stream?{q(magnet=swarm.magnet, download=1)}"):
        r = await fetch(server.url + path, headers={"Range": "bytes=500000-"})
        assert r.code == 206
        assert r.headers["Content-Disposition"] == "attachment; filename*=UTF-8''Movie%20Name.mkv"
        assert r.headers["Content-Range"] == "bytes 500000-699999/700000"
        assert r.body == src.read_bytes()[500000:]
    r = await fetch(f"{server.url}/api/stream?{q(magnet=swarm.magnet)}", method="HEAD")
    assert r.headers["Content-Disposition"].startswith("inline;")
