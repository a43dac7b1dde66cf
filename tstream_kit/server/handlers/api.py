"""Small JSON endpoints: info, streams, torrents, health."""
from __future__ import annotations

from typing import Any

from ...engine import Torrent
from .base import BaseHandler


def torrent_info(torrent: Torrent) -> dict[str, Any]:
    return {
        "infohash": torrent.infohash,
        "name": torrent.name,
        "piece_length": torrent.piece_length,
        "num_pieces": torrent.num_pieces,
        "total_size": sum(f.size for f in torrent.files),
        "default_file": torrent.default_file,
        "files": [
            {"index": f.index, "path": f.path, "size": f.size, "kind": f.kind,
             "mime": f.mime, "playable": f.playable}
            for f in torrent.files
        ],
    }


class InfoHandler(BaseHandler):
    async def get(self) -> None:
        torrent = await self.kit.torrent_with_metadata(self.magnet_arg())
        out = torrent_info(torrent)
        from .media import add_media_info   # probes, subtitles (issue 7)
        await add_media_info(self, torrent, out)
        self.write_json(out)


class StreamsHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json({"streams": self.kit.streams(), "recent_errors": self.kit.stream_errors()})


class TorrentHandler(BaseHandler):
    async def delete(self) -> None:
        delete_files = self.arg_bool("delete_files", False)
        torrent = self.kit.torrent_for_existing(self.magnet_arg())
        await self.kit.engine.remove(torrent.infohash, delete_files=delete_files)
        self.write_json({"removed": torrent.infohash, "deleted_files": delete_files})


class TorrentsHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json({"torrents": [t.summary() for t in self.kit.engine.torrents()]})

    async def post(self) -> None:
        """Add a .torrent upload (issue 7; see handlers/media.py)."""
        from .media import upload_torrent
        await upload_torrent(self)


class HealthHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json(self.kit.health())


class PeersHandler(BaseHandler):
    """GET /api/peers?magnet=: the torrent's connected peers."""

    async def get(self) -> None:
        torrent = self.kit.torrent_for_existing(self.magnet_arg())
        self.write_json({"infohash": torrent.infohash, "peers": torrent.peers()})


class PiecesHandler(BaseHandler):
    """GET /api/pieces?magnet=&file_index=: the file's piece map and the
    read heads of its streams."""

    async def get(self) -> None:
        torrent = self.kit.torrent_for_existing(self.magnet_arg())
        if not torrent.has_metadata:
            self.write_json({"infohash": torrent.infohash, "pieces": "", "count": 0, "readers": []})
            return
        f = self.kit.pick_file(torrent, self.arg_int("file_index", minimum=0))
        out = torrent.piece_map(f)
        out["infohash"] = torrent.infohash
        out["readers"] = [r.snapshot() for r in torrent.readers if r.file.index == f.index]
        self.write_json(out)
