"""tstream_kit.analytics on both stores: SQL aggregates into DataFrames and figures."""
from __future__ import annotations

import subprocess
import sys
import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from history_support import pg_schema, schema_url  # noqa: F401 - fixture
from test_history_contract import make_watch, store, store_factory  # noqa: F401 - fixtures
from tstream_kit import analytics
from tstream_kit.store.history import HistoryStore, open_store

UTC = timezone.utc
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)          # a Friday
IH = ["%040x" % (0xD0 + i) for i in range(3)]


@pytest.fixture
def filled(store: HistoryStore) -> HistoryStore:
    ws = [make_watch("a", IH[0], NOW - timedelta(days=2, hours=1)),     # Wed 11:00
          make_watch("a", IH[0], NOW),                                  # Fri 12:00
          make_watch("b", IH[1], NOW),
          make_watch("b", IH[1], NOW - timedelta(minutes=5)),
          make_watch("c", IH[2], NOW - timedelta(days=40))]             # outside the window
    store.upsert(ws)
    return store


def test_watches_per_day(filled: HistoryStore) -> None:
    df = analytics.watches_per_day(filled, days=7, now=NOW)
    assert len(df) == 7 and df["day"].iloc[-1] == NOW.date()
    by_day = dict(zip(df["day"], zip(df["watches"], df["sessions"])))
    assert by_day[NOW.date()] == (3, 2)
    assert by_day[(NOW - timedelta(days=2)).date()] == (1, 1)
    assert df["watches"].sum() == 4
    assert analytics.fig_watches_per_day(df).data[0].type == "bar"


def test_hour_of_week(filled: HistoryStore) -> None:
    m = analytics.hour_of_week(filled, days=7, now=NOW)
    assert m.shape == (7, 24) and list(m.index) == analytics.WEEKDAYS
    assert m.loc["Fri", 12] == 2 and m.loc["Fri", 11] == 1 and m.loc["Wed", 11] == 1
    assert int(m.values.sum()) == 4
    assert analytics.fig_hour_of_week(m).data[0].type == "heatmap"


def test_top_torrents_and_sessions(filled: HistoryStore) -> None:
    top = analytics.top_torrents(filled, days=7, now=NOW)
    assert list(top["infohash"]) == [IH[0], IH[1]] and list(top["sessions"]) == [1, 1]
    s = analytics.sessions_new_returning(filled, days=7, now=NOW)
    today = s[s["day"] == NOW.date()].iloc[0]
    assert (today["new"], today["returning"]) == (1, 1)     # b is new today, a came back
    assert analytics.fig_top_torrents(top).data and analytics.fig_sessions(s).data


def test_history_frame(filled: HistoryStore) -> None:
    everyone = analytics.history_frame(filled, limit=10)
    assert len(everyone) == 5 and everyone["watched_at"].is_monotonic_decreasing
    assert str(everyone["watched_at"].dt.tz) == "UTC"
    one = analytics.history_frame(filled, session_id="a")
    assert set(one["session_id"]) == {"a"} and len(one) == 2


def test_cli_history_and_popular(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = open_store("", data)
    s.migrate()
    now = datetime.now(UTC)
    s.upsert([make_watch("sess1", IH[0], now, title="Night of the Test"),
              make_watch("sess2", IH[0], now), make_watch("sess2", IH[1], now - timedelta(days=3))])
    s.close()
    env = {**os.environ, "TSTREAM_DATA_DIR": str(data)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "tstream_kit.cli", *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    pop = run("popular", "--days", "1", "--json")
    assert pop.returncode == 0, pop.stderr
    assert [(r["infohash"], r["watches"], r["sessions"]) for r in json.loads(pop.stdout)] == [(IH[0], 2, 2)]
    hist = run("history", "--session", "sess2")
    assert hist.returncode == 0 and len(hist.stdout.strip().splitlines()) == 2
    text = run("popular")
    assert "Night of the Test" in text.stdout or "title" in text.stdout
    assert run("history", "--limit", "0").returncode == 2
