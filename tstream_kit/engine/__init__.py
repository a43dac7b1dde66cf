"""The streaming engine: libtorrent session, torrents, file readers, loopback swarm.

Nothing here knows about HTTP.
"""
from .reader import FileReader, ReadTimeout, ReaderClosed
from .session import Engine, EngineConfig, EngineError
from .torrent import MetadataTimeout, PieceError, Torrent

__all__ = [
    "Engine", "EngineConfig", "EngineError", "Torrent", "FileReader",
    "MetadataTimeout", "PieceError", "ReadTimeout", "ReaderClosed",
]
