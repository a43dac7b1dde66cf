"""Player: an HTML5 ``<video>`` on the stream URL (anywidget, ``player.js``).

Python picks the file, asks the server where this session stopped (resume),
and every second fetches the file's piece map and peers; the browser reports
the playback position and state back, and Python records the position in the
history (every ``report_interval`` seconds while playing, and at pause/end).
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from ..client import ApiError, Client, ClientError, TorrentInfo
from ._common import Refresher, format_rate, in_thread, kernel_loop, resolve_client

log = logging.getLogger("tstream.widgets")

__all__ = ["Player"]

#: a resume position this close to the end starts the file again
RESTART_NEAR_END_S = 5.0


class Player(anywidget.AnyWidget):
    """``Player(client=None, magnet=None, file_index=None)``; ``play(magnet)`` to switch."""

    _esm = Path(__file__).with_name("player.js")
    _css = Path(__file__).with_name("widgets.css")

    # -- Python -> browser
    src = t.Unicode("").tag(sync=True)
    magnet = t.Unicode("").tag(sync=True)
    title = t.Unicode("").tag(sync=True)
    files = t.List(t.Dict()).tag(sync=True)
    file_index = t.Int(-1).tag(sync=True)            # -1: none yet (browser may set it: file picker)
    start_at = t.Float(0.0).tag(sync=True)           # resume position, seconds
    pieces = t.Unicode("").tag(sync=True)            # h/d/r/. per piece of the file
    have_fraction = t.Float(0.0).tag(sync=True)
    peers = t.Int(0).tag(sync=True)
    download_rate = t.Int(0).tag(sync=True)          # bytes/s from all peers
    buffer_ahead_s = t.Float(0.0).tag(sync=True)
    message = t.Unicode("").tag(sync=True)           # Python-side problems (server, metadata)
    autoplay = t.Bool(False).tag(sync=True)
    muted = t.Bool(False).tag(sync=True)
    height = t.Unicode("360px").tag(sync=True)
    # -- browser -> Python
    position = t.Float(0.0).tag(sync=True)
    duration = t.Float(0.0).tag(sync=True)
    state = t.Unicode("idle").tag(sync=True)         # idle loading buffering playing paused ended error
    error = t.Unicode("").tag(sync=True)             # the browser's error, in words
    ready_state = t.Int(0).tag(sync=True)

    def __init__(self, client: Client | str | None = None, magnet: str | None = None,
                 file_index: int | None = None, *, interval: float = 1.0, report_interval: float = 5.0,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.client = resolve_client(client)
        self.info: TorrentInfo | None = None
        self.report_interval = report_interval
        self.reports = 0                                  # positions recorded (for tests and curiosity)
        self._last_report = 0.0
        self._reported_position: float | None = None
        self._switching = False
        self._refresher = Refresher(self._tick, interval, on_error=self._tick_failed)
        self.observe(self._file_picked, names="file_index")
        self.observe(self._on_position, names="position")
        self.observe(self._on_state, names="state")
        if magnet:
            self.play(magnet, file_index)

    # ------------------------------------------------------------ control
    def play(self, magnet: str, file_index: int | None = None, *, title: str | None = None) -> None:
        """Load a torrent: metadata, the file (given, or the default), resume, stream URL."""
        self._report_now()                          # the previous file's last position
        self.magnet = magnet
        self.error = ""
        self.message = "Fetching the torrent's metadata…"
        self.state = "loading"
        try:
            info = self.client.info(magnet)
        except ClientError as exc:
            self.message = f"Cannot load this torrent: {getattr(exc, 'message', None) or exc}"
            self.state = "error"
            return
        self.info = info
        self.title = title or info["name"]
        self.files = [{"index": f["index"], "path": f["path"], "size": f["size"], "playable": f["playable"]}
                      for f in info["files"]]
        index = file_index if file_index is not None else info.get("default_file")
        if index is None:
            self.message = f"{info['name']} has no file to play"
            self.state = "error"
            return
        self._load_file(int(index))
        self._refresher.start()

    def _load_file(self, index: int) -> None:
        self._switching = True
        try:
            self.file_index = index
        finally:
            self._switching = False
        start = 0.0
        try:
            resume = self.client.resume(self.magnet, index)
            if resume.get("found"):
                start = float(resume.get("position_s") or 0.0)
                dur = resume.get("duration_s")
                if dur and start > float(dur) - RESTART_NEAR_END_S:
                    start = 0.0
        except ClientError as exc:     # no history (e.g. an older server): start at 0
            log.info("resume unavailable: %s", exc)
        self._reported_position = start
        self.start_at = start
        self.position = start
        path = next((f["path"] for f in self.files if f["index"] == index), "")
        playable = next((f["playable"] for f in self.files if f["index"] == index), True)
        self.message = "" if playable else f"{path}: the browser probably cannot play this format"
        self.src = self.client.stream_url(self.magnet, index, with_session=self._history_ok())

    def _history_ok(self) -> bool:
        try:
            self.client.session_token()
            return True
        except ClientError:
            return False

    def _file_picked(self, change: dict[str, Any]) -> None:
        if self._switching or change["new"] < 0 or not self.magnet:
            return
        self._report_now()
        self._load_file(int(change["new"]))

    def seek(self, seconds: float) -> None:
        """Ask the browser to seek (every view of this widget)."""
        self.send({"type": "seek", "seconds": float(seconds)})

    def resume_playback(self) -> None:
        self.send({"type": "play"})

    def pause(self) -> None:
        self.send({"type": "pause"})

    def refresh(self) -> None:
        """One update of pieces, peers and rates (blocking; the loop does this every second)."""
        self._apply(*self._fetch())

    def close(self) -> None:
        self._refresher.stop()
        self._report_now()
        super().close()

    # ----------------------------------------------------------- refresh
    def _fetch(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if not self.magnet or self.file_index < 0:
            return {}, []
        return self.client.pieces(self.magnet, self.file_index), self.client.peers(self.magnet)

    async def _tick(self) -> None:
        pieces, peers = await in_thread(self._fetch)
        self._apply(pieces, peers)

    def _tick_failed(self, exc: BaseException) -> None:
        if isinstance(exc, ApiError) and exc.status == 404:
            return          # the torrent is not in the engine yet (first request pending)
        self.message = f"Stats unavailable: {getattr(exc, 'message', None) or exc}"

    def _apply(self, pieces: dict[str, Any], peers: list[dict[str, Any]]) -> None:
        if not pieces:
            return
        self.pieces = pieces.get("pieces", "")
        count = pieces.get("count") or 0
        self.have_fraction = round((pieces.get("have") or 0) / count, 4) if count else 0.0
        self.peers = len(peers)
        self.download_rate = int(sum(p.get("download_rate") or 0 for p in peers))
        readers = pieces.get("readers") or []
        self.buffer_ahead_s = max((float(r.get("buffer_ahead_s") or 0) for r in readers), default=0.0)
        if self.message.startswith("Stats unavailable"):
            self.message = ""

    @property
    def status_line(self) -> str:
        return (f"{self.state} · {self.position:.1f}/{self.duration:.1f} s · {self.peers} peers · "
                f"{format_rate(self.download_rate)} · {100 * self.have_fraction:.0f}% downloaded")

    # ---------------------------------------------------------- history
    def _on_position(self, change: dict[str, Any]) -> None:
        if time.monotonic() - self._last_report >= self.report_interval and self.state == "playing":
            self._report_soon()

    def _on_state(self, change: dict[str, Any]) -> None:
        if change["new"] in ("paused", "ended"):
            self._report_soon()

    def _report_args(self) -> dict[str, Any] | None:
        if not self.magnet or self.file_index < 0 or self.state in ("idle", "loading"):
            return None
        position = float(self.position)
        if self._reported_position is not None and abs(position - self._reported_position) < 0.5:
            return None
        self._reported_position = position
        self._last_report = time.monotonic()
        path = next((f["path"] for f in self.files if f["index"] == self.file_index), None)
        return {"magnet": self.magnet, "file_index": int(self.file_index), "position_s": position,
                "duration_s": float(self.duration) if self.duration > 0 else None,
                "title": self.title or None, "file_path": path}

    def _record(self, args: dict[str, Any]) -> None:
        magnet = args.pop("magnet")
        try:
            self.client.record(magnet, **args)
            self.reports += 1
        except ClientError as exc:
            log.info("could not record the position: %s", exc)

    def _report_soon(self) -> None:
        args = self._report_args()
        if args is None:
            return
        loop = kernel_loop()
        if loop is not None and loop.is_running():
            loop.create_task(in_thread(self._record, args))
        else:
            self._record(args)

    def _report_now(self) -> None:
        args = self._report_args()
        if args is not None:
            self._record(args)
