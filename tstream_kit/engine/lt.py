"""The one place that imports libtorrent.

Everything else in the kit goes through this module, so a libtorrent upgrade
(or a missing wheel) shows up here with a clear message instead of as an
``AttributeError`` deep inside the engine.
"""
from __future__ import annotations

import warnings

try:
    import libtorrent as lt
except ImportError as exc:  # pragma: no cover - exercised only without the wheel
    raise ImportError(
        "tstream needs libtorrent 2.x: pip install 'libtorrent>=2.0.9,<3' "
        f"(import failed: {exc})"
    ) from exc

LT_VERSION: tuple[int, ...] = tuple(int(p) for p in lt.__version__.split(".")[:3])
if LT_VERSION < (2, 0, 9) or LT_VERSION >= (3,):  # pragma: no cover
    raise ImportError(
        f"tstream needs libtorrent >=2.0.9,<3; found {lt.__version__}"
    )

__all__ = ["lt", "LT_VERSION", "file_layout", "torrent_info_from_bytes", "deadline_alert_flag"]


def file_layout(ti: "lt.torrent_info") -> "lt.file_storage":
    """The torrent's file storage (``layout()`` in 2.1; ``files()`` before)."""
    if hasattr(ti, "layout"):
        return ti.layout()
    with warnings.catch_warnings():  # pragma: no cover - libtorrent 2.0
        warnings.simplefilter("ignore", DeprecationWarning)
        return ti.files()


def torrent_info_from_bytes(data: bytes) -> "lt.torrent_info":
    """Parse .torrent bytes; raises ``ValueError`` on anything invalid."""
    try:
        return lt.torrent_info(data)
    except Exception as exc:  # libtorrent raises RuntimeError with an ec text
        raise ValueError(f"not a valid .torrent file: {exc}") from exc


#: flag for ``set_piece_deadline`` that posts a ``read_piece_alert`` with the
#: piece's bytes as soon as it passes its hash check.
deadline_alert_flag = lt.deadline_flags_t.alert_when_available
