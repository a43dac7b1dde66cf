"""AnimeBrowser: search AniList -> a show's details -> its episodes with
availability and quality -> watch, with the episode's context above the
player and a "Next episode" action that asks the server where this session
stopped (``/api/anime/{id}/next``).

Everything it shows that came from AniList or an indexer is HTML-escaped.
It plays through a callback, so the watch dashboard and a notebook can both
use it: ``AnimeBrowser(client, player=player)`` or ``on_watch=fn(magnet,
file_index, title)``.
"""
from __future__ import annotations

import html
import logging
from typing import Any, Callable

import ipywidgets as w

from ..client import Client, ClientError
from ._common import resolve_client

log = logging.getLogger("tstream.widgets")

__all__ = ["AnimeBrowser", "episode_title", "MAX_EPISODE_ROWS"]

#: a long-running show lists this many episodes around where the viewer is
MAX_EPISODE_ROWS = 100


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def show_name(show: dict[str, Any]) -> str:
    t = show.get("title") or {}
    return t.get("english") or t.get("romaji") or t.get("native") or f"#{show.get('id')}"


def episode_title(show: dict[str, Any], episode: int, torrent: dict[str, Any] | None = None) -> str:
    """What the player shows: "Frieren — Episode 2 · 1080p · SubsPlease"."""
    parts = [f"{show_name(show)} — Episode {episode}"]
    if torrent:
        parts += [p for p in (torrent.get("resolution"), torrent.get("release_group")) if p]
    return " · ".join(parts)


class AnimeBrowser(w.VBox):
    def __init__(self, client: Client | str | None = None, *, player: Any = None,
                 on_watch: Callable[[str, int | None, str], Any] | None = None, per_page: int = 12) -> None:
        self.client = resolve_client(client)
        self.player = player
        self._on_watch = on_watch
        self.per_page = per_page
        self.show: dict[str, Any] | None = None
        self.episodes: list[dict[str, Any]] = []
        self.playing: tuple[int, int] | None = None      # (anime id, episode)
        self.query = w.Text(placeholder="Search anime (AniList)…", layout=w.Layout(width="320px"),
                            continuous_update=False)   # Enter (or leaving the box) searches
        self._quiet = False
        self.query.observe(lambda _c: None if self._quiet else self.search(), names="value")
        go = w.Button(description="Search", icon="search")
        go.on_click(lambda _b: self.search())
        trending = w.Button(description="Trending")
        trending.on_click(lambda _b: self.trending())
        popular = w.Button(description="Popular")
        popular.on_click(lambda _b: self.popular())
        self.message = w.HTML()
        self.results = w.VBox()
        self.details = w.HTML()
        self.next_button = w.Button(description="Next episode", icon="forward", disabled=True)
        self.next_button.on_click(lambda _b: self.next_episode())
        self.episode_list = w.VBox()
        self.context = w.HTML()
        self.context.add_class("tsd-anime-context")
        super().__init__([w.HBox([self.query, go, trending, popular]), self.message, self.results,
                          self.details, self.next_button, self.episode_list, self.context])
        self.add_class("tsd-anime")

    # -------------------------------------------------------------- catalogue
    def _say(self, text: str, error: bool = False) -> None:
        style = ' style="color:#b00020"' if error else ""
        self.message.value = f"<div{style}>{_e(text)}</div>" if text else ""

    def search(self, query: str | None = None) -> list[dict[str, Any]]:
        if query is not None:
            self._quiet = True
            try:
                self.query.value = query
            finally:
                self._quiet = False
        q = self.query.value.strip()
        if not q:
            self._say("Type a title to search for.")
            return []
        return self._list(lambda: self.client.anime_search(q, per_page=self.per_page), f"No anime found for “{q}”.")

    def trending(self) -> list[dict[str, Any]]:
        return self._list(lambda: self.client.anime_trending(per_page=self.per_page), "Nothing trending.")

    def popular(self) -> list[dict[str, Any]]:
        return self._list(lambda: self.client.anime_popular(per_page=self.per_page), "Nothing popular.")

    def _list(self, fetch: Callable[[], dict[str, Any]], empty: str) -> list[dict[str, Any]]:
        try:
            answer = fetch()
        except ClientError as exc:
            self._say(str(exc), error=True)
            return []
        shows = answer.get("results") or []
        self._say("" if shows else empty)
        rows = []
        for s in shows:
            b = w.Button(description="Open", layout=w.Layout(width="70px"))
            b.on_click(lambda _b, sid=s["id"]: self.open_show(sid))
            meta = " · ".join(str(x) for x in (s.get("format"), s.get("season_year"),
                                               f"{s['episodes']} ep" if s.get("episodes") else None,
                                               f"{s['score']}%" if s.get("score") else None) if x)
            rows.append(w.HBox([b, w.HTML(f"<b>{_e(show_name(s))}</b> <span>{_e(meta)}</span>")]))
        self.results.children = rows
        return shows

    # ----------------------------------------------------------- one show
    def open_show(self, anime_id: int) -> dict[str, Any] | None:
        try:
            show = self.client.anime(anime_id)
            eps = self.client.anime_episodes(anime_id)
        except ClientError as exc:
            self._say(str(exc), error=True)
            return None
        self.show, self.episodes = show, eps.get("episodes") or []
        t = show.get("title") or {}
        nxt = show.get("next_airing_episode") or {}
        cover = show.get("cover_url") or ""
        img = (f'<img src="{_e(cover)}" alt="" style="float:left;max-width:110px;margin-right:12px">'
               if cover.startswith("https://") else "")
        self.details.value = (
            f'<div class="tsd-anime-show">{img}<h3>{_e(show_name(show))}</h3>'
            f"<div>{_e(t.get('romaji'))}{' · ' + _e(t.get('native')) if t.get('native') else ''}</div>"
            f"<div>{_e(show.get('status'))} · {_e(show.get('season'))} {_e(show.get('season_year'))} · "
            f"{_e(show.get('episodes') or '?')} episodes · score {_e(show.get('score') or '–')}</div>"
            f"<div>{_e(', '.join(show.get('genres') or []))}</div>"
            + (f"<div>Episode {_e(nxt.get('episode'))} airs {_e(nxt.get('airing_at'))}</div>" if nxt else "")
            + '<div style="clear:both"></div></div>')
        self.next_button.disabled = False
        self._show_episodes()
        available = sum(1 for e in self.episodes if e["available"])
        self._say(f"{available} of {len(self.episodes)} episodes have torrents.")
        return show

    def _show_episodes(self) -> None:
        rows = []
        for e in self.episodes[:MAX_EPISODE_ROWS]:
            quals = " ".join(f'<span class="tsd-q">{_e(q)}{"✓" if v.get("trusted") else ""} '
                             f'({_e(v.get("seeders") or 0)})</span>' for q, v in (e.get("qualities") or {}).items())
            state = quals if e["available"] else ("not aired yet" if not e.get("aired") else "no torrent found")
            b = w.Button(description="Watch", icon="play", disabled=not e["available"],
                         layout=w.Layout(width="90px"))
            b.on_click(lambda _b, n=e["episode"]: self.watch_episode(n))
            rows.append(w.HBox([b, w.HTML(f"<b>Episode {_e(e['episode'])}</b> {state}")]))
        self.episode_list.children = rows

    # ------------------------------------------------------------- watching
    def watch_episode(self, episode: int, *, torrent: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if self.show is None:
            return None
        if torrent is None:
            try:
                answer = self.client.anime_torrents(self.show["id"], episode, resolve=True)
            except ClientError as exc:
                self._say(str(exc), error=True)
                return None
            torrent = answer.get("best")
        if not torrent:
            self._say(f"No torrent for episode {episode}.", error=True)
            return None
        title = episode_title(self.show, episode, torrent)
        self.playing = (self.show["id"], episode)
        total = self.show.get("episodes")
        self.context.value = (
            f'<div><b>Now playing:</b> {_e(show_name(self.show))} — episode {_e(episode)}'
            f'{" of " + _e(total) if total else ""} · {_e(torrent.get("resolution") or "?")} · '
            f'{_e(torrent.get("release_group") or "unknown group")}'
            f'{" · trusted" if torrent.get("trusted") else ""} · {_e(torrent.get("seeders") or 0)} seeders'
            f'{" · batch file " + _e(torrent.get("file_path")) if torrent.get("batch") else ""}</div>')
        if self.player is not None:
            self.player.play(torrent["magnet"], torrent.get("file_index"), title=title)
        if self._on_watch is not None:
            self._on_watch(torrent["magnet"], torrent.get("file_index"), title)
        return torrent

    def next_episode(self) -> dict[str, Any] | None:
        """Play where this session stopped (or the episode after a finished one)."""
        if self.show is None:
            return None
        try:
            nxt = self.client.anime_next(self.show["id"])
        except ClientError as exc:
            self._say(str(exc), error=True)
            return None
        if not nxt.get("episode") or not nxt.get("torrent"):
            self._say(nxt.get("reason") or "Nothing to play next.")
            return nxt
        self._say(f"{nxt['reason']}: episode {nxt['episode']}"
                  + (f" from {int(nxt['resume_at'] // 60)}:{int(nxt['resume_at'] % 60):02d}" if nxt.get("resume_at") else ""))
        self.watch_episode(nxt["episode"], torrent=nxt["torrent"])
        return nxt
