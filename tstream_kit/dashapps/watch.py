"""The watch app (``dashboards/watch.ipynb``): search, Watch, the player with
keyboard shortcuts, "continue watching" from this browser's history session
(with resume) and the popular list.

The widgets (:class:`SearchBox`, :class:`Player`) do the work; this module
lays them out and fills the two lists. Every title and file name is escaped.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

import ipywidgets as w

from ..client import Client, ClientError, SearchResponse
from ..widgets import Player, SearchBox
from ..widgets._common import Refresher, in_thread, kernel_loop, resolve_client
from .common import Keys, Presence, loop_running, empty, error_text, esc, format_ago, format_clock, format_size

log = logging.getLogger("tstream.dashboards")

__all__ = ["WatchApp", "continue_rows"]

#: how many rows "continue watching" and "popular" show
LIST_LIMIT = 8
#: a file this close to its end counts as finished
FINISHED_S = 5.0


class DashSearchBox(SearchBox):
    """The SearchBox, with a deliberate (not alarming) "no results" message."""

    def _show(self, answer: SearchResponse) -> None:   # type: ignore[override]
        super()._show(answer)
        failed = [n for n, st in (answer.get("providers") or {}).items() if st.get("status") != "ok"]
        if not self.results and not failed:
            self.message.value = empty(f"No results for “{answer.get('query', '')}”.",
                                       "Try fewer or other words; the local catalogue knows every torrent "
                                       "this server has played (the demo clip: “tstream demo”).")


def _parse_time(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def continue_rows(watches: list[dict[str, Any]], limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """The newest watch of each (torrent, file), newest first.

    >>> rows = continue_rows([{"infohash": "a", "file_index": 0, "updated_at": "2026-01-02T00:00:00Z"},
    ...                       {"infohash": "a", "file_index": 0, "updated_at": "2026-01-01T00:00:00Z"},
    ...                       {"infohash": "b", "file_index": 1, "updated_at": "2026-01-03T00:00:00Z"}])
    >>> [(r["infohash"], r["updated_at"][:10]) for r in rows]
    [('b', '2026-01-03'), ('a', '2026-01-02')]
    """
    seen: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in watches:
        key = (row.get("infohash") or row.get("magnet") or "", row.get("file_index"))
        when = _parse_time(row.get("updated_at") or row.get("watched_at"))
        if key not in seen or when > seen[key]["_t"]:
            seen[key] = {**row, "_t": when}
    return sorted(seen.values(), key=lambda r: r["_t"], reverse=True)[:limit]


class WatchApp(w.VBox):
    """``display(WatchApp())`` in a notebook or Voila page."""

    def __init__(self, client: Client | str | None = None, *, popular_days: int = 30, **kw: Any) -> None:
        self.client = resolve_client(client)
        self.popular_days = popular_days
        self.presence = Presence(self.client)
        self.shortcuts = Keys()
        self.player = Player(self.client, height="430px", autoplay=True)   # Watch was a click: play
        self.search_box = DashSearchBox(self.client, limit=25)
        self.search_box.on_watch(lambda r: self.play(r["magnet"], title=r.get("title")))
        self.placeholder = w.HTML(
            '<div class="tsd-placeholder"><b>Nothing playing.</b><br>Search above and press '
            '<i>Watch</i>, or pick something from <i>Continue watching</i> or <i>Popular</i>.</div>')
        self.stage = w.VBox([self.placeholder])
        # anime (issue 10): AniList search -> show -> episodes -> watch; "Next episode" from history
        from ..widgets.anime import AnimeBrowser
        self.anime = AnimeBrowser(self.client, on_watch=lambda m, i, title: self.play(m, i, title=title))
        self.continue_box = w.VBox([w.HTML(empty("Loading your history…"))])
        self.popular_box = w.VBox([w.HTML(empty("Loading what is popular…"))])
        self.popular_box.add_class("tsd-popular")
        self.continue_box.add_class("tsd-continue")
        header = w.HTML('<div class="tsd-header"><h1>tstream</h1>'
                        '<span class="tsd-sub">find a torrent, watch it while it downloads</span></div>')
        super().__init__([header, self.search_box, self.stage, self.shortcuts,
                          w.HTML('<h2 class="tsd-h">Anime</h2>'), self.anime,
                          w.HTML('<h2 class="tsd-h">Continue watching</h2>'), self.continue_box,
                          w.HTML(f'<h2 class="tsd-h">Popular in the last {popular_days} days</h2>'),
                          self.popular_box, self.presence], **kw)
        self.add_class("tsd-app")
        self.add_class("tsd-watch")
        self._lists = Refresher(self._refresh_lists, 20.0, on_error=lambda e: log.info("lists: %s", e))
        self.presence.on_hello(self._hello)
        self.presence.on_lost(self.close_all)
        self.player.observe(self._player_state, names="state")

    # ------------------------------------------------------------ session
    def _hello(self, client: Client) -> None:
        self.use_client(client)
        if loop_running():
            self._lists.start()
        else:
            self.refresh_lists()

    def use_client(self, client: Client) -> None:
        """Play, record and list with this client (the page's history session)."""
        self.client = client
        self.player.client = client
        self.search_box.client = client
        self.anime.client = client

    # ------------------------------------------------------------ actions
    def play(self, magnet: str, file_index: int | None = None, *, title: str | None = None) -> None:
        if self.stage.children != (self.player,):
            self.stage.children = (self.player,)
        self.player.play(magnet, file_index, title=title)
        self._lists_soon(3.0)

    def close_all(self) -> None:
        """The page is gone: stop the player (its stream and refresh loop) and the lists."""
        self._lists.stop()
        self.player.close()

    def _player_state(self, change: dict[str, Any]) -> None:
        if change["new"] in ("paused", "ended"):
            self._lists_soon(1.0)

    def _lists_soon(self, delay: float) -> None:
        loop = kernel_loop()
        if loop is None or not loop.is_running():
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await self._refresh_lists()
        loop.create_task(later())

    # -------------------------------------------------------------- lists
    async def _refresh_lists(self) -> None:
        history, popular = await in_thread(self._fetch_lists)
        self._show_lists(history, popular)

    def refresh_lists(self) -> None:
        """Fetch and draw both lists now (blocking)."""
        self._show_lists(*self._fetch_lists())

    def _fetch_lists(self) -> tuple[Any, Any]:
        try:
            history: Any = self.client.history(limit=100)["watches"]
        except ClientError as exc:
            history = exc
        try:
            popular: Any = self.client.popular(days=self.popular_days, limit=LIST_LIMIT)
        except ClientError as exc:
            popular = exc
        return history, popular

    def _show_lists(self, history: Any, popular: Any) -> None:
        self.continue_box.children = self._continue_widgets(history)
        self.popular_box.children = self._popular_widgets(popular)

    def _continue_widgets(self, history: Any) -> tuple[w.Widget, ...]:
        if isinstance(history, BaseException):
            return (w.HTML(empty("History is unavailable right now.", error_text(history))),)
        rows = continue_rows(history)
        if not rows:
            return (w.HTML(empty("Nothing to continue yet.",
                                 "Videos you start here appear in this list with where you stopped, "
                                 "in this browser.")),)
        now = time.time()
        out: list[w.Widget] = []
        for r in rows:
            pos, dur = float(r.get("position_s") or 0), r.get("duration_s")
            finished = bool(dur) and pos >= float(dur) - FINISHED_S
            where = (f"{format_clock(pos)} / {format_clock(dur)}" if dur else f"at {format_clock(pos)}")
            frac = (pos / float(dur)) if dur else 0.0
            title = r.get("title") or r.get("file_path") or r.get("infohash", "")[:12]
            info = (f'<div class="tsd-card-main"><span class="tsd-name" title="{esc(title)}">{esc(title)}</span>'
                    f'<div class="tsd-muted">{esc(r.get("file_path") or "")} · {esc(where)} · '
                    f'{esc(format_ago(now - r["_t"]))}</div></div>'
                    f'<span class="tsd-bar"><i style="width:{min(100.0, 100 * frac):.1f}%"></i></span>')
            button = w.Button(description="Watch again" if finished else "Resume", icon="play",
                              layout=w.Layout(width="120px"))
            button.add_class("tsd-resume")
            magnet, index = r.get("magnet") or r.get("infohash"), r.get("file_index")
            button.on_click(lambda _b, m=magnet, i=index, t=title: self.play(m, i, title=t))
            out.append(w.HBox([w.HTML(info, layout=w.Layout(flex="1 1 auto")), button],
                              layout=w.Layout(align_items="center")))
            out[-1].add_class("tsd-card-row")
        return tuple(out)

    def _popular_widgets(self, popular: Any) -> tuple[w.Widget, ...]:
        if isinstance(popular, BaseException):
            return (w.HTML(empty("Popularity is unavailable right now.", error_text(popular))),)
        if not popular:
            return (w.HTML(empty(f"Nothing has been watched in the last {self.popular_days} days.",
                                 "The most watched torrents of everyone using this server appear here.")),)
        out: list[w.Widget] = []
        for rank, p in enumerate(popular, 1):
            title = p.get("title") or p.get("infohash", "")[:12]
            n, s = int(p.get("watches") or 0), int(p.get("sessions") or 0)
            info = (f'<div class="tsd-card-main"><b>{rank}.</b> <span class="tsd-name" title="{esc(title)}">'
                    f'{esc(title)}</span><div class="tsd-muted">{n} watch{"" if n == 1 else "es"} · '
                    f'{s} viewer{"" if s == 1 else "s"}</div></div>')
            button = w.Button(description="Watch", icon="play", layout=w.Layout(width="120px"))
            button.add_class("tsd-popular-watch")
            button.on_click(lambda _b, m=p.get("magnet") or p.get("infohash"), t=title: self.play(m, title=t))
            row = w.HBox([w.HTML(info, layout=w.Layout(flex="1 1 auto")), button],
                         layout=w.Layout(align_items="center"))
            row.add_class("tsd-card-row")
            out.append(row)
        return tuple(out)


