"""The monitor app (``dashboards/monitor.ipynb``): what the server does now,
refreshed every ``interval`` seconds (torrents, streams, the selected
torrent's peers and piece map, PostgreSQL/Redis/indexers), and below it the
popularity analytics from the history store (plotly).

Tables are HTML built from the API's JSON with every value escaped
(:func:`.common.esc`); the peers and piece map are the :class:`StatsPanel`.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import ipywidgets as w

from ..client import Client, ClientError
from ..widgets import StatsPanel
from ..widgets._common import Refresher, in_thread, resolve_client
from .common import (Presence, loop_running, bar, empty, error_text, esc, format_clock, format_rate, format_size, table)

log = logging.getLogger("tstream.dashboards")

__all__ = ["MonitorApp", "torrents_html", "streams_html", "deps_html", "ratio"]

#: seconds between two refreshes of the live part (the issue asks for <= 2)
INTERVAL_S = 1.5
#: seconds between two refreshes of the analytics (they change slowly)
ANALYTICS_INTERVAL_S = 60.0
WINDOWS = [("24 hours", 1), ("7 days", 7), ("30 days", 30), ("90 days", 90)]

STATE_CLASS = {"seeding": "ok", "finished": "ok", "downloading": "warn", "checking_files": "warn",
               "downloading_metadata": "warn", "checking_resume_data": "warn", "error": "bad"}


def ratio(t: dict[str, Any]) -> str:
    """Upload / download ratio; ``∞`` for a torrent that uploaded without downloading.

    >>> ratio({"all_time_upload": 3, "all_time_download": 2}), ratio({"all_time_upload": 0, "all_time_download": 0})
    ('1.50', '–')
    """
    up, down = int(t.get("all_time_upload") or 0), int(t.get("all_time_download") or 0)
    if down <= 0:
        return "∞" if up > 0 else "–"
    return f"{up / down:.2f}"


def _state(text: str | None, error: str | None = None) -> str:
    label = (text or "unknown").replace("_", " ")
    cls = "bad" if error else STATE_CLASS.get(text or "", "")
    title = f' title="{esc(error)}"' if error else ""
    return f'<span class="tsd-state {cls}"{title}>{esc(label)}</span>'


def torrents_html(torrents: list[dict[str, Any]], selected: str = "") -> str:
    if not torrents:
        return empty("No torrents in the engine.",
                     "A torrent appears here as soon as someone plays it or asks for its files.")
    rows, classes = [], []
    for t in torrents:
        size = t.get("total_wanted")
        rows.append([
            f'<span class="tsd-name" title="{esc(t.get("name"))}">{esc(t.get("name") or t.get("infohash"))}</span>',
            _state(t.get("state"), t.get("error")),
            bar(float(t.get("progress") or 0)) + f'{100 * float(t.get("progress") or 0):.1f}%',
            esc(format_size(size) if size else "?"),
            esc(format_rate(t.get("download_rate"))),
            esc(format_rate(t.get("upload_rate"))),
            f'{int(t.get("num_peers") or 0)} <span class="tsd-muted">({int(t.get("num_seeds") or 0)} seeds)</span>',
            esc(ratio(t)),
            str(int(t.get("readers") or 0)),
        ])
        classes.append("tsd-selected" if t.get("infohash") == selected else "")
    return table([("torrent", ""), ("state", ""), ("progress", ""), ("size", "num"), ("down", "num"),
                  ("up", "num"), ("peers", "num"), ("ratio", "num"), ("streams", "num")], rows,
                 cls="tsd-torrents", row_classes=classes)


def streams_html(answer: dict[str, Any], names: dict[str, str] | None = None) -> str:
    streams = answer.get("streams") or []
    errors = answer.get("recent_errors") or []
    out = ""
    if not streams:
        out += empty("No active streams.",
                     "A stream appears here while a player (a browser, VLC, mpv…) reads a file.")
    else:
        now = time.time()
        rows = []
        for s in streams:
            size = int(s.get("size") or 0)
            pos = int(s.get("position") or 0)
            ahead_s = s.get("buffer_ahead_s")
            rows.append([
                f'<span class="tsd-name" title="{esc(s.get("path"))}">{esc(s.get("path"))}</span>'
                f'<div class="tsd-muted">{esc((names or {}).get(s.get("infohash", ""), ""))}</div>',
                esc(s.get("client") or "?"),
                bar(pos / size if size else 0, "#4a7bd0")
                + esc(f"{format_size(pos)} of {format_size(size)}" if size else format_size(pos)),
                esc("?" if ahead_s is None else f"{float(ahead_s):.1f} s"),
                esc(format_size(s.get("buffer_ahead_bytes") or 0)),
                esc(format_size(s.get("bytes_read") or 0)),
                str(int(s.get("stalls") or 0)),
                esc(format_clock(now - float(s["started_at"])) if s.get("started_at") else "?"),
            ])
        out += table([("file", ""), ("client", ""), ("read head", ""), ("ahead", "num"), ("ahead bytes", "num"),
                      ("read", "num"), ("stalls", "num"), ("for", "num")], rows, cls="tsd-streams")
    if errors:
        items = "".join(f'<li><b>{esc(e.get("path") or e.get("infohash"))}</b>: {esc(e.get("error"))}</li>'
                        for e in errors[-5:])
        out += f'<div class="tsd-muted">Recently ended streams:</div><ul class="tsd-errors">{items}</ul>'
    return out


def _dep(name: str, state: str, cls: str, detail: str = "") -> str:
    return (f'<div class="tsd-dep"><span class="tsd-dep-name">{esc(name)}</span>'
            f'<span class="tsd-state {cls}">{esc(state)}</span>'
            + (f'<div class="tsd-dep-detail">{esc(detail)}</div>' if detail else "") + "</div>")


def deps_html(health: dict[str, Any] | BaseException) -> str:
    """History store, Redis, indexers and the engine, one card each."""
    if isinstance(health, BaseException):
        return '<div class="tsd-deps">' + _dep("tstream server", "unreachable", "bad", error_text(health)) + "</div>"
    cards = []
    hist = health.get("history") or {}
    store = {"postgres": "PostgreSQL", "sqlite": "SQLite"}.get(str(hist.get("store")), str(hist.get("store") or "?"))
    if hist.get("last_error"):
        cards.append(_dep(f"History ({store})", "down", "bad",
                          f"{hist.get('queued', 0)} watches queued in the outbox: {hist['last_error']}"))
    elif not hist.get("migrated", True):
        cards.append(_dep(f"History ({store})", "starting", "warn", "schema not migrated yet"))
    else:
        queued = int(hist.get("queued") or 0)
        cards.append(_dep(f"History ({store})", "up", "ok",
                          f"{queued} queued" if queued else "every watch delivered"))
    redis = str(health.get("redis") or "not configured")
    cache = health.get("cache") or {}
    cards.append(_dep("Redis", redis, {"up": "ok", "down": "bad"}.get(redis, ""),
                      "search cache in this process" if redis == "not configured"
                      else f"{cache.get('entries', '?')} cached entries" if redis == "up" else "searches run uncached"))
    search = health.get("search") or {}
    providers = list(search.get("providers") or [])
    last = search.get("last") or {}
    if not providers:
        cards.append(_dep("Indexers", "none", "warn", "no search provider configured"))
    for p in providers:
        st = last.get(p) or {}
        status = st.get("status")
        if status is None:
            cards.append(_dep(f"Indexer {p}", "configured", "",
                              f"catalogue of {search.get('catalogue', 0)} torrents" if p == "catalog"
                              else "not asked yet"))
        else:
            detail = st.get("error") or f"{st.get('count', 0)} results in {float(st.get('ms') or 0):.0f} ms"
            cards.append(_dep(f"Indexer {p}", status, {"ok": "ok"}.get(status, "bad"), detail))
    cards.append(_dep("Engine", str(health.get("status") or "?"), "ok" if health.get("status") == "ok" else "warn",
                      f"port {health.get('listen_port', '?')} · ↓ {format_rate(health.get('download_rate'))} · "
                      f"↑ {format_rate(health.get('upload_rate'))} · up {format_clock(health.get('uptime_s'))}"))
    return '<div class="tsd-deps">' + "".join(cards) + "</div>"


class MonitorApp(w.VBox):
    """``display(MonitorApp())``: refreshes every ``interval`` s while the page is open."""

    def __init__(self, client: Client | str | None = None, *, interval: float = INTERVAL_S,
                 store: Any = None, days: int = 30, **kw: Any) -> None:
        self.client = resolve_client(client)
        self.interval = interval
        self.refreshes = 0
        self.selected = ""          # infohash of the torrent whose peers and pieces are shown
        self._user_picked = False
        self._names: dict[str, str] = {}
        self._store = store
        self.presence = Presence(self.client)
        self.live = w.HTML('<span class="tsd-live">connecting…</span>')
        header = w.HBox([w.HTML('<div class="tsd-header"><h1>tstream monitor</h1>'
                                '<span class="tsd-sub">torrents, streams, peers and what people watch</span></div>',
                                layout=w.Layout(flex="1 1 auto")), self.live],
                        layout=w.Layout(align_items="baseline"))
        self.deps = w.HTML(empty("Checking PostgreSQL, Redis and the indexers…"))
        self.torrents = w.HTML(empty("Loading torrents…"))
        self.streams = w.HTML(empty("Loading streams…"))
        self.picker = w.Dropdown(options=[("no torrent yet", "")], value="", description="",
                                 layout=w.Layout(width="420px"))
        self.picker.observe(self._picked, names="value")
        self.stats = StatsPanel(self.client, interval=min(1.0, interval))
        self.stats_note = w.HTML(empty("No torrent selected.", "Peers and the piece map of a torrent show here "
                                       "once one is in the engine."))
        self.window = w.ToggleButtons(options=WINDOWS, value=days, description="")
        self.window.observe(lambda _c: self.refresh_analytics(), names="value")
        self.charts = w.VBox([w.HTML(empty("Loading the analytics…"))])
        self.charts.add_class("tsd-charts")
        self.torrents.add_class("tsd-torrents-box")
        self.streams.add_class("tsd-streams-box")
        self.deps.add_class("tsd-deps-box")
        h = lambda text: w.HTML(f'<h2 class="tsd-h">{esc(text)}</h2>')   # noqa: E731
        super().__init__([header, h("Dependencies"), self.deps, h("Torrents"), self.torrents,
                          h("Active streams"), self.streams,
                          w.HBox([h("Peers and pieces of"), self.picker], layout=w.Layout(align_items="baseline")),
                          self.stats_note, self.stats,
                          h("Popularity"), self.window, self.charts, self.presence], **kw)
        self.add_class("tsd-app")
        self.add_class("tsd-monitor")
        self._live = Refresher(self._tick, interval, on_error=self._tick_failed)
        self._analytics = Refresher(self._analytics_tick, ANALYTICS_INTERVAL_S,
                                    on_error=lambda e: self._charts_error(e))
        self.presence.on_hello(self._hello)
        self.presence.on_lost(self.close_all)

    # ------------------------------------------------------------ lifecycle
    def _hello(self, client: Client) -> None:
        if loop_running():
            self._live.start()
            self._analytics.start()
        else:
            self.refresh()
            self.refresh_analytics()

    def close_all(self) -> None:
        """The page is gone: stop refreshing (the kernel goes idle, the culler takes it)."""
        self._live.stop()
        self._analytics.stop()
        self.stats.close()

    # ----------------------------------------------------------------- live
    def _fetch(self) -> tuple[Any, Any, Any]:
        def get(fn: Any) -> Any:
            try:
                return fn()
            except ClientError as exc:
                return exc
        return get(self.client.torrents), get(self.client.streams), get(self.client.health)

    async def _tick(self) -> None:
        self._apply(*(await in_thread(self._fetch)))

    def refresh(self) -> None:
        """One refresh now (blocking)."""
        self._apply(*self._fetch())

    def _tick_failed(self, exc: BaseException) -> None:
        self.live.value = f'<span class="tsd-live">refresh failed: {esc(error_text(exc))}</span>'

    def _apply(self, torrents: Any, streams: Any, health: Any) -> None:
        self.refreshes += 1
        self.deps.value = deps_html(health)
        failed = isinstance(torrents, BaseException)
        rows = [] if failed else torrents
        self._names = {t["infohash"]: t.get("name") or "" for t in rows}
        self._select(rows, streams if isinstance(streams, dict) else {})
        self.torrents.value = (empty("Torrents are unavailable.", error_text(torrents)) if failed
                               else torrents_html(rows, self.selected))
        if isinstance(streams, BaseException):
            self.streams.value = empty("Streams are unavailable.", error_text(streams))
        else:
            self.streams.value = streams_html(streams, self._names)
        self.live.value = (f'<span class="tsd-live">live · every {self.interval:g} s · '
                           f'{time.strftime("%H:%M:%S")} · update #{self.refreshes}</span>')

    def _select(self, torrents: list[dict[str, Any]], streams: dict[str, Any]) -> None:
        options = [(t.get("name") or t["infohash"], t["infohash"]) for t in torrents]
        known = {ih for _, ih in options}
        if self.selected not in known:
            self._user_picked = False
            self.selected = ""
        if not self._user_picked:
            streamed = [s.get("infohash") for s in streams.get("streams") or []]
            self.selected = next((ih for ih in streamed if ih in known), self.selected or
                                 (options[0][1] if options else ""))
        if list(self.picker.options) != (options or [("no torrent yet", "")]):
            self._quiet = True
            try:
                self.picker.options = options or [("no torrent yet", "")]
            finally:
                self._quiet = False
        if self.picker.value != self.selected:
            self._quiet = True
            try:
                self.picker.value = self.selected
            finally:
                self._quiet = False
        self._show_stats()

    def _picked(self, change: dict[str, Any]) -> None:
        if getattr(self, "_quiet", False) or not change["new"]:
            return
        self.selected = change["new"]
        self._user_picked = True
        self._show_stats()

    def _show_stats(self) -> None:
        if not self.selected:
            self.stats_note.layout.display = ""
            self.stats.layout.display = "none"
            return
        self.stats_note.layout.display = "none"
        self.stats.layout.display = ""
        if self.stats.magnet != self.selected:
            self.stats.show(self.selected)

    # ------------------------------------------------------------ analytics
    def store(self) -> Any:
        if self._store is None:
            from ..config import Settings
            from ..store.history import open_store
            settings = Settings.from_env()
            self._store = open_store(settings.database_url, settings.data_dir)
        return self._store

    def _figures(self, days: int) -> list[Any]:
        from .. import analytics as a
        store = self.store()
        top = a.top_torrents(store, days=days, limit=10)
        per_day = a.watches_per_day(store, days=max(days, 1))
        heat = a.hour_of_week(store, days=days)
        sessions = a.sessions_new_returning(store, days=max(days, 1))
        figs = [a.fig_top_torrents(top), a.fig_watches_per_day(per_day), a.fig_hour_of_week(heat),
                a.fig_sessions(sessions)]
        nothing = top.empty
        for fig in figs:
            fig.update_layout(height=330, margin={"l": 50, "r": 20, "t": 50, "b": 40}, template="plotly_white",
                              legend={"orientation": "h", "y": -0.18})
            if nothing:
                fig.add_annotation(text="No watches in this window", showarrow=False,
                                   xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 15, "color": "#59636e"})
        # titles come from strangers: plotly draws text with a few HTML-like tags of its own, so
        # every label is escaped (plotly shows the entities as the characters they stand for)
        for trace in figs[0].data:
            trace.y = [esc(str(label))[:80] for label in trace.y]
        return figs

    def refresh_analytics(self) -> None:
        """Redraw the four charts for the chosen window (blocking)."""
        try:
            self._show_charts(self._figures(int(self.window.value)))
        except Exception as exc:   # noqa: BLE001 - a store problem is shown, not raised
            self._charts_error(exc)

    async def _analytics_tick(self) -> None:
        self._show_charts(await in_thread(self._figures, int(self.window.value)))

    def _show_charts(self, figs: list[Any]) -> None:
        import plotly.graph_objects as go
        widgets = [go.FigureWidget(f) for f in figs]
        self.charts.children = (w.HBox(widgets[:2]), w.HBox(widgets[2:]))

    def _charts_error(self, exc: BaseException) -> None:
        self.charts.children = (w.HTML(empty("Analytics are unavailable.", error_text(exc))),)
