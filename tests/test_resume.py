"""Resume data: a stopped engine (or server process) comes back with every
torrent, and serves its bytes from disk with no peer and no new download."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import PIECE, offline_engine_config, sha256, wait_until
from tstream_kit.engine import Engine, FileReader


async def test_engine_restart_resumes_without_downloading(tmp_path: Path, make_file, make_swarm) -> None:
    src = make_file("clip.mp4", 12 * PIECE + 999, seed=7)
    data = src.read_bytes()
    swarm = make_swarm([src])
    data_dir = tmp_path / "data"

    eng = Engine(offline_engine_config(data_dir))
    await eng.start()
    try:
        t = eng.add_magnet(swarm.magnet)
        await t.wait_metadata(10)
        r = FileReader(t, t.file(0), piece_timeout=20)
        assert sha256(await r.read_exact(0, len(data))) == sha256(data)
        r.close()
        await wait_until(lambda: t.status.get("progress") == 1.0, 20, "the download to finish")
    finally:
        await eng.stop()          # saves resume data
    assert (data_dir / "resume" / f"{swarm.infohash}.resume").is_file()
    swarm.close()                  # no peer any more: bytes can only come from disk

    eng2 = Engine(offline_engine_config(data_dir))
    await eng2.start()
    try:
        t2 = eng2.get(swarm.infohash)
        assert t2 is not None, "the torrent was not re-added at start"
        assert t2.has_metadata and t2.name == "clip.mp4"
        await t2.wait_checked(10)
        assert sum(t2.have) == t2.num_pieces
        r2 = FileReader(t2, t2.file(0), piece_timeout=5)
        assert sha256(await r2.read_exact(0, len(data))) == sha256(data)
        r2.close()
        assert t2.handle.status().total_payload_download == 0
        # removed torrents stay removed
        await eng2.remove(swarm.infohash)
        assert not (data_dir / "resume" / f"{swarm.infohash}.resume").exists()
    finally:
        await eng2.stop()


async def test_invalid_resume_file_is_set_aside(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    bad = data_dir / "resume" / ("ab" * 20 + ".resume")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not bencode")
    eng = Engine(offline_engine_config(data_dir))
    await eng.start()
    try:
        assert eng.torrents() == []
        assert bad.with_suffix(".bad").exists() and not bad.exists()
    finally:
        await eng.stop()


def _start_server(data_dir: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    fh = open(log, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tstream_kit.cli", "serve", "--offline", "--port", "0",
         "--data-dir", str(data_dir)],
        env=env, stderr=fh, stdout=subprocess.DEVNULL)
    fh.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"serving on (http://\S+)", log.read_text())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


def _stop_server(proc: subprocess.Popen, log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return log.read_text()


def _get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


@pytest.mark.slow
def test_server_process_restart_resumes_every_torrent(tmp_path: Path, make_file, make_swarm) -> None:
    import json
    import urllib.parse
    files = [make_file(f"show{i}.mp4", (16 + i) * PIECE + 321, seed=20 + i) for i in range(2)]
    swarms = [make_swarm([f]) for f in files]
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_")}
    env["TSTREAM_ENV_FILE"] = str(tmp_path / "no.env")

    proc, url = _start_server(data_dir, env, tmp_path / "run1.log")
    try:
        for f, s in zip(files, swarms):
            body = _get(f"{url}/api/stream?magnet={urllib.parse.quote(s.magnet, safe='')}")
            assert sha256(body) == sha256(f.read_bytes())
        deadline = time.monotonic() + 20
        while True:
            ts = json.loads(_get(f"{url}/api/torrents"))["torrents"]
            if len(ts) == 2 and all(t.get("progress") == 1.0 for t in ts):
                break
            assert time.monotonic() < deadline, ts
            time.sleep(0.2)
    finally:
        log = _stop_server(proc, tmp_path / "run1.log")
    assert proc.returncode == 0, log[-2000:]
    assert "saved resume data of 2/2 torrents" in log
    for s in swarms:
        s.close()              # the swarm is gone: a restart must not need it

    proc, url = _start_server(data_dir, env, tmp_path / "run2.log")
    try:
        ts = {t["infohash"]: t for t in json.loads(_get(f"{url}/api/torrents"))["torrents"]}
        assert set(ts) == {s.infohash for s in swarms}
        for f, s in zip(files, swarms):
            # the bare infohash only works for a torrent the server already has
            body = _get(f"{url}/api/stream?magnet={s.infohash}", timeout=20)
            assert sha256(body) == sha256(f.read_bytes())
    finally:
        log = _stop_server(proc, tmp_path / "run2.log")
    assert "resumed 2 torrents" in log
