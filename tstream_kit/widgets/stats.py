"""StatsPanel: what the engine does for one file, about once a second.

Peers (client, address, rates, progress), the file's piece map drawn on a
canvas (have / deadline / requested / missing), each reader's head and the
seconds buffered ahead. Python only updates data traitlets; ``stats.js``
redraws in place (no re-render, no flicker).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..client import ApiError, Client
from ._common import Refresher, in_thread, resolve_client

__all__ = ["StatsPanel"]


class StatsPanel(anywidget.AnyWidget):
    """``StatsPanel(client=None, magnet=None, file_index=None)``; ``follow(player)``
    shows whatever a :class:`Player` plays."""

    _esm = Path(__file__).with_name("stats.js")
    _css = Path(__file__).with_name("widgets.css")

    magnet = t.Unicode("").tag(sync=True)
    infohash = t.Unicode("").tag(sync=True)
    file_index = t.Int(-1).tag(sync=True)
    pieces = t.Unicode("").tag(sync=True)
    piece_length = t.Int(0).tag(sync=True)
    first_piece = t.Int(0).tag(sync=True)
    have = t.Int(0).tag(sync=True)
    file_size = t.Int(0).tag(sync=True)
    readers = t.List(t.Dict()).tag(sync=True)        # position, buffer_ahead_bytes, buffer_ahead_s, ...
    peers = t.List(t.Dict()).tag(sync=True)          # address, client, download_rate, upload_rate, progress, seed
    download_rate = t.Int(0).tag(sync=True)
    upload_rate = t.Int(0).tag(sync=True)
    refreshes = t.Int(0).tag(sync=True)              # updates received (the browser shows it)
    updated_at = t.Float(0.0).tag(sync=True)
    message = t.Unicode("").tag(sync=True)

    def __init__(self, client: Client | str | None = None, magnet: str | None = None,
                 file_index: int | None = None, *, interval: float = 1.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.client = resolve_client(client)
        self._refresher = Refresher(self._tick, interval, on_error=self._failed)
        self._followed: Any = None
        if magnet:
            self.show(magnet, file_index)

    def show(self, magnet: str, file_index: int | None = None) -> None:
        """Watch this torrent's file (``None``: its default file) and start refreshing."""
        self.magnet = magnet
        self.file_index = -1 if file_index is None else int(file_index)
        self.message = ""
        self._refresher.start()

    def follow(self, player: Any) -> "StatsPanel":
        """Show whatever ``player`` plays (its magnet and file)."""
        def changed(_c: Any = None) -> None:
            if player.magnet and player.file_index >= 0:
                self.show(player.magnet, player.file_index)
        player.observe(changed, names=["magnet", "file_index"])
        self._followed = (player, changed)
        changed()
        return self

    def refresh(self) -> None:
        """One update now (blocking; the loop calls this every ``interval`` seconds)."""
        self._apply(*self._fetch())

    def close(self) -> None:
        self._refresher.stop()
        if self._followed is not None:
            player, fn = self._followed
            player.unobserve(fn, names=["magnet", "file_index"])
            self._followed = None
        super().close()

    @property
    def refreshing(self) -> bool:
        return self._refresher.running

    # ----------------------------------------------------------------- data
    def _fetch(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not self.magnet:
            return {}, []
        fi = None if self.file_index < 0 else self.file_index
        return self.client.pieces(self.magnet, fi), self.client.peers(self.magnet)

    async def _tick(self) -> None:
        if self.magnet:
            self._apply(*(await in_thread(self._fetch)))

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, ApiError) and exc.status == 404:
            self.message = "waiting for the torrent to be added (play it first)"
        else:
            self.message = f"stats unavailable: {getattr(exc, 'message', None) or exc}"

    def _apply(self, pieces: dict[str, Any], peers: list[dict[str, Any]]) -> None:
        if not pieces:
            return
        readers = [{k: r.get(k) for k in ("id", "position", "size", "bytes_read", "buffer_ahead_bytes",
                                           "buffer_ahead_s", "window_bytes", "stalls")}
                   for r in pieces.get("readers") or []]
        peer_rows = sorted(({k: p.get(k) for k in ("address", "client", "download_rate", "upload_rate",
                                                     "progress", "seed")} for p in peers),
                           key=lambda p: p["address"] or "")
        with self.hold_sync():
            self.infohash = pieces.get("infohash", "")
            self.file_index = int(pieces.get("file_index", self.file_index))
            self.pieces = pieces.get("pieces", "")
            self.piece_length = int(pieces.get("piece_length") or 0)
            self.first_piece = int(pieces.get("first_piece") or 0)
            self.have = int(pieces.get("have") or 0)
            if readers and readers[0].get("size"):
                self.file_size = int(readers[0]["size"])
            self.readers = readers
            self.peers = peer_rows
            self.download_rate = int(sum(p.get("download_rate") or 0 for p in peers))
            self.upload_rate = int(sum(p.get("upload_rate") or 0 for p in peers))
            self.updated_at = time.time()
            self.refreshes += 1
            if self.message:
                self.message = ""
