"""Writing a file's bytes from a FileReader to an HTTP response.

Shared by the stream handler and the media source server (ffmpeg's input);
it knows Tornado and the reader, nothing of the kit.
"""
from __future__ import annotations

from tornado.web import RequestHandler

from ..engine import FileReader, PieceError

__all__ = ["MAX_CHUNK", "write_range"]

#: the most we hand to Tornado in one write (the reader returns at most a
#: piece, or 4 MiB from disk, anyway)
MAX_CHUNK = 4 * 1024 * 1024


async def write_range(handler: RequestHandler, reader: FileReader, start: int, end: int,
                      chunk: int = MAX_CHUNK) -> None:
    """Write bytes ``start..end`` (inclusive) of the reader's file, flushing
    after each chunk so a slow client slows the reader down. Raises
    ``StreamClosedError`` (client gone), ``ReaderClosed``, ``ReadTimeout`` or
    ``PieceError``; the reader's ``position`` says how far it got."""
    pos = start
    while pos <= end:
        data = await reader.read(pos, min(end + 1 - pos, chunk))
        if not data:
            raise PieceError(f"unexpected end of {reader.file.path} at {pos}")
        handler.write(data)
        await handler.flush()
        pos += len(data)
