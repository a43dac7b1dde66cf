"""tstream backup / restore (SQLite and PostgreSQL, and across them) and the
start-up preflight of tstream serve."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from history_support import pg_schema, schema_url  # noqa: F401 - fixture
from tstream_kit.config import Settings
from tstream_kit.ops.backup import backup, restore
from tstream_kit.ops.preflight import preflight
from tstream_kit.store.history import open_store
from tstream_kit.store.history.base import Watch, new_watch_id, utcnow


def some_watches(n: int) -> list[Watch]:
    t0 = utcnow() - timedelta(days=3)
    return [Watch(id=new_watch_id(), session_id=f"s{i % 3}", infohash="%040x" % (i % 5),
                  magnet=f"magnet:?xt=urn:btih:{'%040x' % (i % 5)}", title=f"Film {i} «ü»",
                  file_index=i % 2, file_path=f"dir/f{i}.mp4", position_s=i * 1.5,
                  duration_s=600.0 if i % 2 else None,
                  watched_at=t0 + timedelta(minutes=i), updated_at=t0 + timedelta(minutes=i, seconds=5))
            for i in range(n)]


def all_rows(url: str, data_dir: Path) -> list[dict]:
    store = open_store(url, data_dir)
    try:
        store.migrate()
        from tstream_kit.ops.backup import _pages
        return sorted((w.to_json() for page in _pages(store) for w in page), key=lambda d: d["id"])
    finally:
        store.close()


def seed(url: str, data_dir: Path, watches: list[Watch]) -> None:
    store = open_store(url, data_dir)
    try:
        store.migrate()
        store.upsert(watches)
    finally:
        store.close()


def test_sqlite_backup_restore_round_trip_idempotent(tmp_path: Path, monkeypatch) -> None:
    import tstream_kit.ops.backup as b
    monkeypatch.setattr(b, "PAGE", 7)              # several pages
    watches = some_watches(30)
    seed("", tmp_path / "a", watches)
    out = tmp_path / "h.jsonl.gz"
    assert backup("", tmp_path / "a", str(out)) == 30
    header = json.loads(gzip.open(out).readline())
    assert header["format"] == "tstream-history" and header["count"] == 30 and header["store"] == "sqlite"
    assert restore("", tmp_path / "b", str(out)) == 30
    assert restore("", tmp_path / "b", str(out)) == 30       # twice: still one row per watch
    assert all_rows("", tmp_path / "b") == all_rows("", tmp_path / "a")
    assert len(all_rows("", tmp_path / "b")) == 30


def test_sqlite_to_postgres_and_back_through_the_cli(tmp_path: Path, pg_schema: str) -> None:  # noqa: F811
    watches = some_watches(12)
    seed("", tmp_path / "lite", watches)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_")}
    env["TSTREAM_ENV_FILE"] = str(tmp_path / "none.env")
    tstream = [sys.executable, "-m", "tstream_kit.cli"]
    f1, f2 = tmp_path / "lite.gz", tmp_path / "pg.gz"
    r = subprocess.run(tstream + ["backup", str(f1), "--data-dir", str(tmp_path / "lite")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "backed up 12 watches" in r.stderr, r.stderr
    pg = {**env, "TSTREAM_DATABASE_URL": schema_url(pg_schema)}
    r = subprocess.run(tstream + ["restore", str(f1)], env=pg, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "restored 12 watches" in r.stderr, r.stderr
    r = subprocess.run(tstream + ["backup", str(f2)], env=pg, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(gzip.open(f2).readline())["store"] == "postgres"
    assert restore("", tmp_path / "back", str(f2)) == 12
    assert all_rows("", tmp_path / "back") == all_rows("", tmp_path / "lite")
    assert all_rows(schema_url(pg_schema), tmp_path) == all_rows("", tmp_path / "lite")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b'{"hello": 1}\n'))
    r = subprocess.run(tstream + ["restore", str(bad)], env=pg, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not a tstream history backup" in r.stderr


def test_preflight_reports_every_mistake_and_starts_on_the_outbox(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with socket.socket() as dead:           # a port nobody listens on: an unreachable database
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]
        s = Settings.from_env({}, data_dir=ro / "data", port=port, host="0.0.0.0",
                              database_url=f"postgresql://nobody@127.0.0.1:{dead_port}/x",
                              redis_url=f"redis://127.0.0.1:{dead_port}/0")
        problems, warnings = preflight(s)
    ro.chmod(0o700)
    text = "\n".join(problems)
    assert "TSTREAM_API_TOKEN" in text
    if os.geteuid() != 0:                        # root writes anywhere
        assert "not writable" in text
    assert f"cannot listen on 0.0.0.0:{port}" in text
    assert any("database unreachable at start" in w and "outbox" in w for w in warnings)
    assert any("Redis unreachable" in w for w in warnings)


def test_unwritable_data_dir_is_a_problem(tmp_path: Path) -> None:
    f = tmp_path / "a-file"
    f.write_text("x")
    s = Settings.from_env({}, data_dir=f / "data", port=0)
    problems, _ = preflight(s)
    assert any("TSTREAM_DATA_DIR" in p and "not writable" in p for p in problems)


def test_config_masks_secrets_and_reads_dotenv(tmp_path: Path) -> None:
    envfile = tmp_path / "my.env"
    envfile.write_text("# deployment\nexport TSTREAM_API_TOKEN='abcdefghijklmnopqrstuvwxyz'\n"
                       "TSTREAM_DISK_QUOTA=2G  # quota\nTSTREAM_DATABASE_URL=postgresql://u:hunter2@db:5432/t\n"
                       "TSTREAM_PORT=9999\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSTREAM_")}
    env.update(TSTREAM_ENV_FILE=str(envfile), TSTREAM_PORT="8181")     # the environment wins
    r = subprocess.run([sys.executable, "-m", "tstream_kit.cli", "config"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["api_token"] == "***" and cfg["disk_quota"] == 2 << 30 and cfg["port"] == 8181
    assert "hunter2" not in r.stdout and "abcdefghijklmnop" not in r.stdout
    env["TSTREAM_RATE_LIMIT"] = "lots"
    env["TSTREAM_LOG_FORMAT"] = "xml"
    r = subprocess.run([sys.executable, "-m", "tstream_kit.cli", "config"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "TSTREAM_RATE_LIMIT='lots': expected an integer" in r.stderr
    assert "TSTREAM_LOG_FORMAT='xml'" in r.stderr
