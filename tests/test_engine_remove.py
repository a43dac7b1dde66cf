"""Removing torrents while they download, again and again, must not crash libtorrent.

Found by bench/load_bench.py's soak: libtorrent 2.1.1 dies with SIGSEGV in its disk cache's
hasher (``disk_cache::kick_hasher``, ``EVP_DigestUpdate``) when a torrent is removed, with its
files, while received blocks are still being hashed; the server died after ~500 such removals
(and after 16 in a tighter loop). ``Engine.remove`` now pauses the torrent and waits for a
``flush_cache`` fence first. The churn runs in a child process so that a crash fails this test
instead of killing the test session.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import asyncio, json, random, socket, sys, threading, time, urllib.parse, urllib.request
    from pathlib import Path
    root = Path(sys.argv[2])
    sys.path[:0] = [str(root), str(root / "tests")]
    from bench.baselines import http_get_throughput
    from tstream_kit.config import Settings
    from tstream_kit.engine.swarm import LocalSwarm
    from tstream_kit.server.app import start_server

    def churn(url, swarm, size, cycles, rng, counts, errors):
        try:
            churn_loop(url, swarm, size, cycles, rng, counts)
        except Exception as e:
            errors.append(repr(e))

    def churn_loop(url, swarm, size, cycles, rng, counts):
        stream = f"{url}/api/stream?" + urllib.parse.urlencode({"magnet": swarm.magnet})
        delete = f"{url}/api/torrent?" + urllib.parse.urlencode(
            {"magnet": swarm.infohash, "delete_files": "1"})
        for i in range(cycles):
            mode = i % 3
            sock = None
            if mode == 0:        # read it whole (the download may still be going on)
                http_get_throughput(stream, range_header="bytes=0-", timeout=30)
            elif mode == 1:      # a seek: 1 MiB somewhere, the rest still downloading
                off = rng.randrange(size - (1 << 20))
                http_get_throughput(stream, range_header=f"bytes={off}-{off + (1 << 20) - 1}", timeout=30)
            else:                # removed while its stream is open
                sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=30)
                target = stream.split(url, 1)[1]
                sock.sendall(f"GET {target} HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nRange: bytes=0-\\r\\n\\r\\n".encode())
                sock.recv(65536)
            req = urllib.request.Request(delete, method="DELETE")
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
            if sock is not None:
                sock.settimeout(15)
                while sock.recv(1 << 20):
                    pass
                sock.close()
            counts.append(1)

    async def main(tmp: Path, cycles: int) -> None:
        swarms = []
        for k in range(3):
            src = tmp / f"src{k}" / f"movie{k}.mp4"
            src.parent.mkdir(parents=True)
            src.write_bytes(random.Random(k).randbytes(8 * 1024 * 1024 + 123 * k))
            swarms.append((LocalSwarm.from_files([src], workdir=tmp / f"seed{k}"), src.stat().st_size))
        running = await start_server(Settings.from_env({}, data_dir=tmp / "data", port=0, rate_limit=0).offline())
        counts, errors = [], []
        try:
            threads = [threading.Thread(target=churn, args=(running.url, sw, size, cycles, random.Random(i), counts, errors))
                       for i, (sw, size) in enumerate(swarms)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                await asyncio.sleep(0.05)
            assert errors == [], errors
            stats = running.kit.engine.stats()
            assert stats["torrents"] == stats["handles"] == 0, stats
        finally:
            await running.stop()
            for sw, _ in swarms:
                sw.close()
        print("removed", len(counts), flush=True)

    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[3])))
''')


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_removing_torrents_while_they_download_does_not_crash(tmp_path: Path) -> None:
    script = tmp_path / "churn.py"
    script.write_text(CHILD)
    cycles = 60
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(ROOT / "tests"), str(cycles)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, (f"exit {proc.returncode} (-11: SIGSEGV in libtorrent)\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    assert f"removed {3 * cycles}" in proc.stdout
