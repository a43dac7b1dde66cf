"""Watch-history analytics: pandas DataFrames and plotly figures.

The aggregation runs in SQL on the history store (PostgreSQL or SQLite, one
query per frame); pandas receives only the aggregated rows (at most a row per
day, per hour of the week or per torrent) and fills the gaps. pandas and
plotly come with the ``dashboards`` extra and are imported on first use.

>>> from tstream_kit.store.history import open_store       # doctest: +SKIP
>>> store = open_store(settings.database_url, settings.data_dir)   # doctest: +SKIP
>>> fig_watches_per_day(watches_per_day(store, days=30)).show()   # doctest: +SKIP
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .store.history.base import HistoryStore, to_micros, window_start

if TYPE_CHECKING:   # pragma: no cover
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["history_frame", "watches_per_day", "hour_of_week", "top_torrents", "sessions_new_returning",
           "fig_watches_per_day", "fig_hour_of_week", "fig_top_torrents", "fig_sessions", "WEEKDAYS"]

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:   # pragma: no cover - the extra is installed in tests
        raise ImportError("tstream analytics needs pandas: pip install 'tstream[dashboards]'") from exc
    return pandas


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:   # pragma: no cover
        raise ImportError("tstream figures need plotly: pip install 'tstream[dashboards]'") from exc
    return go


def _cutoff(days: int, now: datetime | None) -> tuple[Any, datetime]:
    start = window_start(days, now)
    return start, datetime(start.year, start.month, start.day, tzinfo=timezone.utc)


def _params(store: HistoryStore, cutoff: datetime, **kw: Any) -> dict[str, Any]:
    # SQLite keeps integer microseconds, PostgreSQL timestamptz
    return {"cutoff": to_micros(cutoff) if store.dialect == "sqlite" else cutoff, **kw}


def _sql(store: HistoryStore, postgres: str, sqlite: str) -> str:
    return postgres if store.dialect == "postgres" else sqlite


# ------------------------------------------------------------------ frames
def history_frame(store: HistoryStore, session_id: str | None = None, limit: int = 1000) -> "pd.DataFrame":
    """Watches, newest first: one session's, or everyone's (an operator's view)."""
    pd = _pandas()
    cols = ["id", "session_id", "infohash", "title", "file_index", "file_path", "position_s",
            "duration_s", "watched_at", "updated_at"]
    if session_id is not None:
        rows = [{c: getattr(w, c) for c in cols} for w in store.history(session_id, limit)]
        return pd.DataFrame(rows, columns=cols)
    names, data = store.query(_sql(
        store,
        f"SELECT {', '.join(cols)} FROM watched_torrents ORDER BY watched_at DESC, id DESC LIMIT %(limit)s",
        f"SELECT {', '.join(cols)} FROM watched_torrents ORDER BY watched_at DESC, id DESC LIMIT :limit"),
        {"limit": limit})
    df = pd.DataFrame(data, columns=names)
    for c in ("watched_at", "updated_at"):
        if store.dialect == "sqlite":
            df[c] = pd.to_datetime(df[c], unit="us", utc=True)
        else:
            df[c] = pd.to_datetime(df[c], utc=True)
    df["id"] = df["id"].astype(str)
    return df


def watches_per_day(store: HistoryStore, days: int = 30, now: datetime | None = None) -> "pd.DataFrame":
    """Columns ``day`` (UTC date), ``watches``, ``sessions`` (distinct that
    day); one row for every day of the window, zeros included."""
    pd = _pandas()
    start, cutoff = _cutoff(days, now)
    names, rows = store.query(_sql(
        store,
        "SELECT (watched_at AT TIME ZONE 'UTC')::date AS day, count(*) AS watches, "
        "count(DISTINCT session_id) AS sessions FROM watched_torrents "
        "WHERE watched_at >= %(cutoff)s GROUP BY 1 ORDER BY 1",
        "SELECT date(watched_at / 1000000, 'unixepoch') AS day, count(*) AS watches, "
        "count(DISTINCT session_id) AS sessions FROM watched_torrents "
        "WHERE watched_at >= :cutoff GROUP BY 1 ORDER BY 1"), _params(store, cutoff))
    got = pd.DataFrame(rows, columns=names)
    got["day"] = pd.to_datetime(got["day"].astype(str)).dt.date
    all_days = [start + timedelta(days=i) for i in range(days)]
    df = pd.DataFrame({"day": all_days}).merge(got, on="day", how="left").fillna(0)
    df[["watches", "sessions"]] = df[["watches", "sessions"]].astype("int64")
    return df


def hour_of_week(store: HistoryStore, days: int = 30, now: datetime | None = None) -> "pd.DataFrame":
    """Watches by UTC weekday (rows Mon..Sun) and hour (columns 0..23)."""
    pd = _pandas()
    _, cutoff = _cutoff(days, now)
    names, rows = store.query(_sql(
        store,
        "SELECT extract(isodow FROM watched_at AT TIME ZONE 'UTC')::int - 1 AS dow, "
        "extract(hour FROM watched_at AT TIME ZONE 'UTC')::int AS hour, count(*) AS watches "
        "FROM watched_torrents WHERE watched_at >= %(cutoff)s GROUP BY 1, 2",
        "SELECT (CAST(strftime('%w', watched_at / 1000000, 'unixepoch') AS INTEGER) + 6) % 7 AS dow, "
        "CAST(strftime('%H', watched_at / 1000000, 'unixepoch') AS INTEGER) AS hour, count(*) AS watches "
        "FROM watched_torrents WHERE watched_at >= :cutoff GROUP BY 1, 2"), _params(store, cutoff))
    got = pd.DataFrame(rows, columns=names)
    matrix = (got.pivot_table(index="dow", columns="hour", values="watches", aggfunc="sum")
              .reindex(index=range(7), columns=range(24)).fillna(0).astype("int64"))
    matrix.index = WEEKDAYS
    matrix.index.name = "weekday"
    matrix.columns.name = "hour"
    return matrix


def top_torrents(store: HistoryStore, days: int = 30, limit: int = 20, now: datetime | None = None) -> "pd.DataFrame":
    """The popularity ranking (the same query as ``/api/popular``)."""
    pd = _pandas()
    rows = [p.to_json() for p in store.popular(days, limit, now)]
    return pd.DataFrame(rows, columns=["infohash", "title", "magnet", "watches", "sessions"])


def sessions_new_returning(store: HistoryStore, days: int = 30, now: datetime | None = None) -> "pd.DataFrame":
    """Per UTC day: sessions whose first watch ever was that day (``new``)
    and sessions seen before (``returning``)."""
    pd = _pandas()
    start, cutoff = _cutoff(days, now)
    names, rows = store.query(_sql(
        store,
        "WITH daily AS (SELECT DISTINCT (watched_at AT TIME ZONE 'UTC')::date AS day, session_id "
        "  FROM watched_torrents WHERE watched_at >= %(cutoff)s), "
        "firsts AS (SELECT session_id, (min(watched_at) AT TIME ZONE 'UTC')::date AS first_day "
        "  FROM watched_torrents WHERE session_id IN (SELECT session_id FROM daily) GROUP BY session_id) "
        "SELECT d.day, count(*) FILTER (WHERE f.first_day = d.day) AS new, "
        "count(*) FILTER (WHERE f.first_day < d.day) AS \"returning\" "
        "FROM daily d JOIN firsts f USING (session_id) GROUP BY d.day ORDER BY d.day",
        "WITH daily AS (SELECT DISTINCT date(watched_at / 1000000, 'unixepoch') AS day, session_id "
        "  FROM watched_torrents WHERE watched_at >= :cutoff), "
        "firsts AS (SELECT session_id, date(min(watched_at) / 1000000, 'unixepoch') AS first_day "
        "  FROM watched_torrents WHERE session_id IN (SELECT session_id FROM daily) GROUP BY session_id) "
        "SELECT d.day, sum(f.first_day = d.day) AS new, sum(f.first_day < d.day) AS \"returning\" "
        "FROM daily d JOIN firsts f USING (session_id) GROUP BY d.day ORDER BY d.day"),
        _params(store, cutoff))
    got = pd.DataFrame(rows, columns=names)
    got["day"] = pd.to_datetime(got["day"].astype(str)).dt.date
    all_days = [start + timedelta(days=i) for i in range(days)]
    df = pd.DataFrame({"day": all_days}).merge(got, on="day", how="left").fillna(0)
    df[["new", "returning"]] = df[["new", "returning"]].astype("int64")
    return df


# ----------------------------------------------------------------- figures
def fig_watches_per_day(df: "pd.DataFrame") -> "go.Figure":
    go = _plotly()
    fig = go.Figure([go.Bar(x=df["day"], y=df["watches"], name="watches"),
                     go.Scatter(x=df["day"], y=df["sessions"], name="sessions", mode="lines+markers")])
    fig.update_layout(title="Watches per day (UTC)", xaxis_title="day", yaxis_title="count")
    return fig


def fig_hour_of_week(matrix: "pd.DataFrame") -> "go.Figure":
    go = _plotly()
    fig = go.Figure(go.Heatmap(z=matrix.values, x=list(matrix.columns), y=list(matrix.index),
                               colorscale="Blues", colorbar={"title": "watches"}))
    fig.update_layout(title="Watches by hour of the week (UTC)", xaxis_title="hour",
                      yaxis={"autorange": "reversed"})
    return fig


def fig_top_torrents(df: "pd.DataFrame") -> "go.Figure":
    go = _plotly()
    labels = [t or h[:12] for t, h in zip(df["title"], df["infohash"])]
    fig = go.Figure([go.Bar(y=labels, x=df["watches"], orientation="h", name="watches"),
                     go.Bar(y=labels, x=df["sessions"], orientation="h", name="sessions")])
    fig.update_layout(title="Top torrents", barmode="group", yaxis={"autorange": "reversed"})
    return fig


def fig_sessions(df: "pd.DataFrame") -> "go.Figure":
    go = _plotly()
    fig = go.Figure([go.Bar(x=df["day"], y=df["new"], name="new"),
                     go.Bar(x=df["day"], y=df["returning"], name="returning")])
    fig.update_layout(title="Sessions per day: new vs returning", barmode="stack")
    return fig


