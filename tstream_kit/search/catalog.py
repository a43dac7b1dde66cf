"""The local catalogue: every torrent this install knows, searchable offline.

Torrents enter it when the kit gets their metadata (a magnet or .torrent that
was streamed or inspected), when the demo seeds its clip, and from a folder of
``.torrent`` files (``TSTREAM_CATALOG_DIR``, re-read when it changes). Entries
live in ``<data_dir>/catalog/catalog.json`` with each torrent's info dictionary
beside it (``<infohash>.info``), so ``/api/info`` can answer for them with no
swarm and no Redis.

A query matches an entry when every word of the query is a word (or the start
of a word) of its name or file paths; matches in the name rank first.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..magnets import MagnetError, make_magnet, parse_magnet
from .base import Result
from .bencode import BencodeError, TorrentMeta, info_meta, torrent_meta
from .query import words

log = logging.getLogger("tstream.search")

__all__ = ["Catalog", "CatalogEntry", "CatalogProvider"]


@dataclass
class CatalogEntry:
    infohash: str
    name: str
    files: list[tuple[str, int]]
    size: int
    magnet: str
    source: str          # "engine", "demo", "folder"
    added: float

    def to_result(self, provider: str) -> Result:
        return Result(title=self.name, infohash=self.infohash, magnet=self.magnet, size=self.size,
                      provider=provider, category="Local",
                      published=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.added)))


class Catalog:
    def __init__(self, root: Path, folder: Path | None = None) -> None:
        self.root = Path(root)
        self.folder = Path(folder) if folder else None
        self._entries: dict[str, CatalogEntry] = {}
        self._words: dict[str, tuple[set[str], set[str]]] = {}
        self._folder_mtime: float | None = None
        self._folder_info: dict[str, bytes] = {}
        self._loaded = False

    # ----------------------------------------------------------- persistence
    @property
    def _file(self) -> Path:
        return self.root / "catalog.json"

    def load(self) -> None:
        self._loaded = True
        try:
            data = json.loads(self._file.read_text("utf-8"))
        except FileNotFoundError:
            data = {"entries": []}
        except (OSError, ValueError) as exc:
            log.warning("catalogue %s unreadable (%s); starting empty", self._file, exc)
            data = {"entries": []}
        for raw in data.get("entries", []):
            try:
                e = CatalogEntry(**{**raw, "files": [tuple(f) for f in raw["files"]]})
            except (TypeError, KeyError):
                continue
            self._index(e)
        self.scan_folder()

    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        entries = [asdict(e) for e in self._entries.values() if e.source != "folder"]
        tmp.write_text(json.dumps({"version": 1, "entries": entries}, ensure_ascii=False), "utf-8")
        os.replace(tmp, self._file)

    def _index(self, e: CatalogEntry) -> None:
        self._entries[e.infohash] = e
        name_words = set(words(e.name))
        file_words = set()
        for path, _ in e.files:
            file_words.update(words(path))
        self._words[e.infohash] = (name_words, file_words)

    # ------------------------------------------------------------------ add
    def remember(self, meta: TorrentMeta, *, magnet: str | None = None, source: str = "engine") -> CatalogEntry:
        """Add (or refresh) a torrent; its info dictionary is kept for /api/info."""
        if not self._loaded:
            self.load()
        link = make_magnet(meta.infohash, meta.name, meta.trackers)
        if magnet:
            try:
                m = parse_magnet(magnet)
                if m.infohash == meta.infohash:
                    link = m.to_uri() if m.name else make_magnet(m.infohash, meta.name, m.trackers, m.peers)
            except MagnetError:
                pass
        old = self._entries.get(meta.infohash)
        entry = CatalogEntry(infohash=meta.infohash, name=meta.name, files=list(meta.files),
                             size=meta.size, magnet=link, source=source,
                             added=old.added if old else time.time())
        if old == entry:
            return old
        self._index(entry)
        if source != "folder":
            self.root.mkdir(parents=True, exist_ok=True)
            info_path = self.root / f"{meta.infohash}.info"
            if not info_path.exists():
                info_path.write_bytes(meta.info)
            self._save()
        return entry

    def remember_info(self, info: bytes, *, magnet: str | None = None, source: str = "engine") -> CatalogEntry:
        return self.remember(info_meta(info), magnet=magnet, source=source)

    def info_for(self, infohash: str) -> bytes | None:
        """The bencoded info dictionary of a catalogued torrent, if kept."""
        try:
            return (self.root / f"{infohash}.info").read_bytes()
        except OSError:
            return self._folder_info.get(infohash)

    def scan_folder(self) -> int:
        """(Re-)read the configured folder of .torrent files when it changed."""
        if self.folder is None:
            return 0
        try:
            mtime = self.folder.stat().st_mtime
        except OSError:
            return 0
        if mtime == self._folder_mtime:
            return 0
        self._folder_mtime = mtime
        for ih in [ih for ih, e in self._entries.items() if e.source == "folder"]:
            del self._entries[ih]
            del self._words[ih]
        added = 0
        for path in sorted(self.folder.rglob("*.torrent")):
            try:
                meta = torrent_meta(path.read_bytes())
            except (OSError, BencodeError) as exc:
                log.warning("catalogue: skipping %s: %s", path, exc)
                continue
            if meta.infohash not in self._entries:
                self._index(CatalogEntry(infohash=meta.infohash, name=meta.name, files=meta.files,
                                         size=meta.size, source="folder", added=path.stat().st_mtime,
                                         magnet=make_magnet(meta.infohash, meta.name, meta.trackers)))
                self._folder_info[meta.infohash] = meta.info
                added += 1
        return added

    # ---------------------------------------------------------------- query
    def __len__(self) -> int:
        return len(self._entries)

    def get(self, infohash: str) -> CatalogEntry | None:
        return self._entries.get(infohash)

    def search(self, query: str, limit: int = 100) -> list[CatalogEntry]:
        if not self._loaded:
            self.load()
        self.scan_folder()
        wanted = words(query)
        if not wanted:
            return []
        scored: list[tuple[int, float, CatalogEntry]] = []
        for ih, (name_words, file_words) in self._words.items():
            score = 0
            for w in wanted:
                if w in name_words:
                    score += 3
                elif w in file_words:
                    score += 2
                elif any(x.startswith(w) for x in name_words | file_words):
                    score += 1
                else:
                    break
            else:
                scored.append((score, self._entries[ih].added, self._entries[ih]))
        scored.sort(key=lambda t: (-t[0], -t[1]))
        return [e for _, _, e in scored[:limit]]

    def public(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "path": str(self._file),
                "folder": str(self.folder) if self.folder else None}


class CatalogProvider:
    """The catalogue as a search provider (no network: fast, never times out)."""

    #: local and changing (a torrent streamed a minute ago must be found): never cached
    cacheable = False

    def __init__(self, catalog: Catalog, *, name: str = "catalog", timeout: float = 5.0) -> None:
        self.catalog = catalog
        self.name = name
        self.timeout = timeout

    async def search(self, query: str) -> list[Result]:
        return [e.to_result(self.name) for e in self.catalog.search(query)]
