"""SearchBox: a query box, a provider choice and a results table with a
Watch button per row (plain ipywidgets: every click reaches Python)."""
from __future__ import annotations

import html
import logging
from typing import Any, Callable

import ipywidgets as w

from ..client import Client, ClientError, SearchResponse, SearchResult
from ._common import format_size, in_thread, kernel_loop, resolve_client

log = logging.getLogger("tstream.widgets")

__all__ = ["SearchBox", "describe_response"]

ALL = "all providers"


def describe_response(answer: SearchResponse) -> str:
    """The message above the table: counts, no results, failing providers.

    >>> describe_response({"query": "x", "count": 0, "results": [], "ms": 3.0,
    ...                    "providers": {"nyaa": {"status": "timeout", "error": "no answer in 10 s"}}})
    "No results for 'x'. nyaa failed: no answer in 10 s"
    """
    parts = []
    if answer.get("count", len(answer.get("results", []))) == 0:
        parts.append(f"No results for {answer.get('query', '')!r}.")
    else:
        n = answer["count"]
        parts.append(f"{n} result{'' if n == 1 else 's'} for {answer.get('query', '')!r} in {answer.get('ms', 0):.0f} ms.")
    failed = [f"{name} failed: {st.get('error') or st.get('status')}"
              for name, st in sorted((answer.get("providers") or {}).items()) if st.get("status") != "ok"]
    return " ".join(parts + ["; ".join(failed)] if failed else parts)


class SearchBox(w.VBox):
    """``SearchBox(client=None, player=None)``: search every provider (or one),
    click Watch to play a result. ``on_watch(fn)`` registers ``fn(result)``;
    with ``player=`` the Watch button calls ``player.play(magnet, title=...)``."""

    def __init__(self, client: Client | str | None = None, *, player: Any = None,
                 query: str = "", provider: str | None = None, limit: int = 25, **kw: Any) -> None:
        self.client = resolve_client(client)
        self.limit = limit
        self.results: list[SearchResult] = []
        self.last_response: SearchResponse | None = None
        self._watchers: list[Callable[[SearchResult], Any]] = []
        self.query_box = w.Text(value=query, placeholder="search torrents, e.g. tstream demo",
                                continuous_update=False, layout=w.Layout(flex="1 1 auto", width="auto"))
        self.provider_box = w.Dropdown(options=[ALL] + self._providers(), value=provider or ALL,
                                       layout=w.Layout(width="160px"), description="")
        self.button = w.Button(description="Search", icon="search", button_style="primary",
                               layout=w.Layout(width="100px"))
        self.message = w.HTML(value="")
        self.table = w.GridBox(layout=w.Layout(grid_template_columns="minmax(200px, 1fr) 90px 70px 110px 80px",
                                               grid_gap="2px 8px", align_items="center"))
        self.button.on_click(lambda _b: self._search_soon())
        self._quiet = False
        self.query_box.observe(lambda _c: None if self._quiet else self._search_soon(), names="value")
        super().__init__([w.HBox([self.query_box, self.provider_box, self.button]), self.message, self.table],
                         **kw)
        self.add_class("tstream-searchbox")
        if player is not None:
            self.on_watch(lambda r: player.play(r["magnet"], title=r.get("title")))

    def _providers(self) -> list[str]:
        try:
            return list(self.client.health(timeout=10)["search"]["providers"])
        except (ClientError, KeyError, TypeError):
            return []

    # ------------------------------------------------------------ actions
    def on_watch(self, fn: Callable[[SearchResult], Any]) -> None:
        """Call ``fn(result)`` when a row's Watch button is clicked."""
        self._watchers.append(fn)

    def watch(self, result: SearchResult | int) -> None:
        """What a Watch click does (``result`` or its row number)."""
        if isinstance(result, int):
            result = self.results[result]
        for fn in list(self._watchers):
            try:
                fn(result)
            except Exception as exc:   # noqa: BLE001 - shown, not lost in the kernel log
                self._say(f"Watch failed: {exc}", error=True)

    def search(self, query: str | None = None, provider: str | None = None) -> SearchResponse | None:
        """Search now (blocking); fills the table and the message."""
        if query is not None and query != self.query_box.value:
            self._quiet = True
            try:
                self.query_box.value = query
            finally:
                self._quiet = False
        if provider is not None:
            if provider not in self.provider_box.options:
                self.provider_box.options = list(self.provider_box.options) + [provider]
            self.provider_box.value = provider
        q = self.query_box.value.strip()
        if not q:
            self._say("Type something to search for.")
            return None
        self._say(f"Searching for {q!r}…")
        try:
            answer = self.client.search(q, provider=self._provider(), limit=self.limit)
        except ClientError as exc:
            self._show_error(exc)
            return None
        self._show(answer)
        return answer

    def _provider(self) -> str | None:
        return None if self.provider_box.value == ALL else self.provider_box.value

    def _search_soon(self) -> None:
        """From a click: off the kernel's loop when there is one."""
        loop = kernel_loop()
        q = self.query_box.value.strip()
        if loop is None or not loop.is_running() or not q:
            self.search()
            return

        async def go() -> None:
            self._say(f"Searching for {q!r}…")
            try:
                answer = await in_thread(lambda: self.client.search(q, provider=self._provider(),
                                                                    limit=self.limit))
            except ClientError as exc:
                self._show_error(exc)
                return
            self._show(answer)

        loop.create_task(go())

    # ------------------------------------------------------------- display
    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "#444"
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _show_error(self, exc: ClientError) -> None:
        self.results = []
        self.table.children = ()
        self._say(f"Search failed: {getattr(exc, 'message', None) or exc}", error=True)

    def _show(self, answer: SearchResponse) -> None:
        self.last_response = answer
        self.results = list(answer.get("results", []))
        failed = any(st.get("status") != "ok" for st in (answer.get("providers") or {}).values())
        self._say(describe_response(answer), error=failed or not self.results)
        head = [w.HTML(f"<b>{h}</b>") for h in ("title", "size", "seeders", "provider", "")]
        rows: list[w.Widget] = []
        for i, r in enumerate(self.results):
            button = w.Button(description="Watch", icon="play", layout=w.Layout(width="76px"),
                              tooltip=r["magnet"][:200])
            button.on_click(lambda _b, i=i: self.watch(i))
            seeders = r.get("seeders")
            rows += [w.HTML(f'<span title="{html.escape(r["magnet"])}">{html.escape(r["title"])}</span>'),
                     w.Label(format_size(r.get("size"))),
                     w.Label("?" if seeders is None else str(seeders)),
                     w.Label(", ".join(r.get("providers") or [r.get("provider", "")])),
                     button]
        self.table.children = tuple(head + rows) if rows else ()

    @property
    def watch_buttons(self) -> list[w.Button]:
        return [c for c in self.table.children if isinstance(c, w.Button)]
