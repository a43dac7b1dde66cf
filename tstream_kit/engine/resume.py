"""Resume data on disk: one ``<infohash>.resume`` file per torrent.

libtorrent describes a torrent's state (metadata, which pieces are verified,
file priorities, peers) as resume data: ``handle.save_resume_data()`` posts a
``save_resume_data_alert`` whose ``params`` we serialise with
``lt.write_resume_data_buf``; at start ``lt.read_resume_data`` turns the file
back into ``add_torrent_params``, and libtorrent trusts the listed pieces
(after checking the files' sizes and times) instead of hashing or downloading
them again. Files are replaced atomically (write, fsync, rename, fsync of the
directory), so a crash in the middle of a save leaves the previous state.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterator

log = logging.getLogger("tstream.engine")

__all__ = ["ResumeFiles"]

_NAME = re.compile(r"^[0-9a-f]{40}\.resume$")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX: fsync the directory); best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResumeFiles:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def path(self, infohash: str) -> Path:
        return self.dir / f"{infohash.lower()}.resume"

    def write(self, infohash: str, data: bytes) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.path(infohash)
        tmp = final.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)        # the rename itself survives a power cut
        return final

    def delete(self, infohash: str) -> None:
        try:
            self.path(infohash).unlink()
        except FileNotFoundError:
            pass

    def items(self) -> Iterator[tuple[str, bytes]]:
        """(infohash, bytes) of every saved torrent; unreadable files are skipped."""
        if not self.dir.is_dir():
            return
        for p in sorted(self.dir.iterdir()):
            if not _NAME.match(p.name):
                continue
            try:
                yield p.name[:40], p.read_bytes()
            except OSError as exc:
                log.warning("resume file %s unreadable: %s", p, exc)
