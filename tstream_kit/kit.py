"""Kit: the one place that wires concrete parts together from Settings.

The server (standalone or the Jupyter extension), the CLI and the demo all
hold one Kit; nothing below it knows about the others.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from .config import Settings
from .engine import Engine, EngineConfig, FileReader, Torrent
from .magnets import MagnetError, normalise_infohash
from .media import FileEntry
from .store.history.service import HistoryService
from .search.kitpart import SearchKit
from .transcode.kitpart import MediaKit

log = logging.getLogger("tstream.kit")

__all__ = ["Kit", "UnknownTorrent", "FileNotInTorrent"]


class UnknownTorrent(LookupError):
    """An infohash that no torrent in the engine has (pass a magnet)."""


class FileNotInTorrent(LookupError):
    """A file index that the torrent does not have."""


class Kit:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(EngineConfig(
            data_dir=settings.data_dir,
            listen_interfaces=settings.bt_listen,
            dht=settings.dht, lsd=settings.lsd, port_mapping=settings.port_mapping,
            utp=settings.utp, disk_io=settings.disk_io,
            shutdown_timeout=settings.shutdown_timeout,   # resume data at stop
            max_torrents=settings.max_torrents,
        ))
        self.started = False
        self._stream_errors: deque[dict[str, Any]] = deque(maxlen=50)
        #: watch history: store (PostgreSQL or SQLite), durable outbox, sessions
        self.history = HistoryService(settings.database_url, settings.data_dir, settings.secret)
        #: search: providers, cache (Redis or in-process), catalogue, metadata cache
        self.search = SearchKit(settings)
        #: media: probes, ffmpeg remux/transcode jobs, subtitles (issue 7)
        self.media = MediaKit(self)
        #: deployment: per-client API rate limit, housekeeping (disk quota, resume data)
        from .ops.housekeeping import Housekeeper
        from .ops.limits import RateLimiter
        self.limiter = RateLimiter(settings.rate_limit)
        self.housekeeper = Housekeeper(self, resume_interval=settings.resume_interval)
        #: anime (issue 10): AniList, episode torrents, the anime tables, "next episode"
        from .anime.kitpart import make_anime
        self.anime = make_anime(self)

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.engine.start()
        await self.history.start()
        await self.search.start()
        await self.anime.start()
        self.housekeeper.start()
        self.started = True

    async def stop(self) -> None:
        await self.media.stop()   # ffmpeg children first: they read through the engine
        await self.anime.stop()
        await self.history.stop()
        await self.search.stop()
        await self.housekeeper.stop()
        await self.engine.stop()
        self.started = False

    # -------------------------------------------------------------- torrents
    def torrent_for(self, magnet_or_infohash: str) -> Torrent:
        """Add a magnet (or find it), or look up a known infohash.

        ``MagnetError`` for a bad link, ``UnknownTorrent`` for an infohash
        that was never added."""
        text = (magnet_or_infohash or "").strip()
        if not text:
            raise MagnetError("missing magnet: pass ?magnet=magnet:?xt=urn:btih:... or a known infohash")
        if text.lower().startswith("magnet:"):
            return self.engine.add_magnet(text)
        try:
            infohash = normalise_infohash(text)
        except MagnetError:
            raise MagnetError(
                f"not a magnet link or an infohash: {text[:60]!r} "
                "(expected magnet:?xt=urn:btih:... or 40 hex characters)") from None
        torrent = self.engine.get(infohash)
        if torrent is None:
            raise UnknownTorrent(f"no torrent {infohash} here: pass the full magnet link to add it")
        return torrent

    def torrent_for_existing(self, magnet_or_infohash: str) -> Torrent:
        """Like :meth:`torrent_for` but never adds: for DELETE."""
        text = (magnet_or_infohash or "").strip()
        if text.lower().startswith("magnet:"):
            from .magnets import parse_magnet
            text = parse_magnet(text).infohash
        infohash = normalise_infohash(text)
        torrent = self.engine.get(infohash)
        if torrent is None:
            raise UnknownTorrent(f"no torrent {infohash} here")
        return torrent

    async def torrent_with_metadata(self, magnet_or_infohash: str) -> Torrent:
        # known metadata (cache or catalogue) first: no wait on the swarm
        torrent = (await self.search.torrent_from_cache(self.engine, magnet_or_infohash)
                   or self.torrent_for(magnet_or_infohash))
        await torrent.wait_metadata(self.settings.metadata_timeout)
        await self.search.remember(torrent, magnet_or_infohash)
        return torrent

    @staticmethod
    def pick_file(torrent: Torrent, file_index: int | None) -> FileEntry:
        if file_index is None:
            if torrent.default_file is None:
                raise FileNotInTorrent(f"{torrent.name} has no files")
            file_index = torrent.default_file
        f = torrent.file(file_index)
        if f is None:
            valid = ", ".join(str(x.index) for x in torrent.files[:20])
            raise FileNotInTorrent(
                f"file_index {file_index} is not in {torrent.name} (files: {valid})")
        return f

    def open_reader(self, torrent: Torrent, f: FileEntry, **label: Any) -> FileReader:
        from .ops.limits import check_stream_slot   # TSTREAM_MAX_STREAMS: 503 beyond
        check_stream_slot(self, torrent, f.index, label.get("client"))
        return FileReader(torrent, f, piece_timeout=self.settings.piece_timeout, label=label)

    # --------------------------------------------------------------- streams
    def readers(self) -> list[FileReader]:
        return [r for t in self.engine.torrents() for r in t.readers]

    def streams(self) -> list[dict[str, Any]]:
        return [r.snapshot() for r in self.readers()]

    def remember_stream_error(self, reader: FileReader, message: str) -> None:
        snap = reader.snapshot()
        snap["error"] = message
        snap["ended_at"] = time.time()
        self._stream_errors.append(snap)

    def stream_errors(self) -> list[dict[str, Any]]:
        return list(self._stream_errors)

    def stop_streams(self, torrent: Torrent, file_index: int | None) -> int:
        stopped = 0
        for r in list(torrent.readers):
            if file_index is None or r.file.index == file_index:
                r.close(reason="stopped by DELETE /api/stream")
                stopped += 1
        return stopped

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.started else "stopped",
            **self.engine.stats(),
            "streams": len(self.readers()),
            "history": self.history.status(),
            **self.search.health(),
        }
