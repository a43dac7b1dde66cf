"""tstream: stream torrent video into a browser (libtorrent + Tornado)."""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """Jupyter Server finds the extension here (enabled by the shipped
    ``jupyter_server_config.d/tstream_kit.json``)."""
    from .server.jupyter import TstreamExtension

    return [{"module": "tstream_kit.server.jupyter", "app": TstreamExtension}]
