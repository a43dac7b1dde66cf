"""tstream: stream torrent video into a browser (libtorrent + Tornado)."""

__version__ = "0.1.0"
