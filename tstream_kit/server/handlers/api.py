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
        self.write_json(torrent_info(torrent))


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


class HealthHandler(BaseHandler):
    async def get(self) -> None:
        self.write_json(self.kit.health())
