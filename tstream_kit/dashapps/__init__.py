"""The Voila dashboards' Python side: ``WatchApp`` (search, watch, continue
watching, popular) and ``MonitorApp`` (torrents, streams, peers, pieces,
dependencies, analytics). ``dashboards/*.ipynb`` only display them::

    from tstream_kit.dashapps import WatchApp
    WatchApp()
"""
from __future__ import annotations

from .monitor import MonitorApp
from .watch import WatchApp

__all__ = ["WatchApp", "MonitorApp"]
