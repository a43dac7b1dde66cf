"""Notebook widgets: search, a real video player and live engine stats.

They know only :mod:`tstream_kit.client` (found by itself, or passed in)::

    from tstream_kit.widgets import SearchBox, Player, StatsPanel
    player = Player()
    box = SearchBox(player=player)          # Watch -> player.play(magnet)
    stats = StatsPanel().follow(player)
    display(box, player, stats)

Refresh loops (player and stats, about once a second) run on the kernel's
asyncio loop and stop when the widget is closed.
"""
from __future__ import annotations

from ._common import format_rate, format_size
from .player import Player
from .search import SearchBox, describe_response
from .stats import StatsPanel

__all__ = ["SearchBox", "Player", "StatsPanel", "describe_response", "format_size", "format_rate"]
