"""The Jupyter server extension: tstream's handlers inside Jupyter Server.

Enabled when the package is installed (``jupyter_server_config.d/tstream_kit.json``
is shipped as data). JupyterLab, Notebook and Voila pages then reach streams
at their own origin under ``<base_url>/tstream/``, behind Jupyter's own
authentication, with no second port to open. ``tstream serve`` keeps serving
the same handlers standalone.

Each handler class is re-derived with :class:`JupyterHandler` behind it, so
Jupyter's identity provider decides who may call it (a ``<video>`` on a
Jupyter page plays with the Jupyter cookie; a kernel's client sends the
server token). The kit (libtorrent session) starts on the first request, on
the server's own event loop, and stops with the server.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from tornado import web

from ..config import Settings
from ..kit import Kit
from .app import routes

log = logging.getLogger("tstream.jupyter")

PREFIX = "/tstream"


class LazyKit:
    """Starts the Kit once, on first use, on the running loop."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        self._starting: asyncio.Task | None = None

    async def ensure_started(self) -> None:
        if self.kit.started:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self.kit.start())
        await asyncio.shield(self._starting)


class _JupyterAuth:
    """Mixed in front of our handlers: Jupyter's auth, then our kit."""

    lazy_kit: LazyKit

    async def prepare(self) -> None:  # type: ignore[override]
        # JupyterHandler.prepare resolves the user (token or cookie) and
        # checks XSRF and origin; it must run, not our Host check.
        await JupyterHandler.prepare(self, _redirect_to_login=False)  # type: ignore[arg-type]
        if self.current_user is None:  # type: ignore[attr-defined]
            raise web.HTTPError(403, "log in to Jupyter first (token or cookie)")
        await self.lazy_kit.ensure_started()


def jupyter_variant(cls: type, lazy: LazyKit) -> type:
    """``cls`` with Jupyter's auth: (``_JupyterAuth``, cls, JupyterHandler)."""
    return type(f"Jupyter{cls.__name__}", (_JupyterAuth, cls, JupyterHandler), {"lazy_kit": lazy})


class TstreamExtension(ExtensionApp):
    name = "tstream_kit"
    # other extensions (voila, jupyterlab) keep loading beside us
    load_other_extensions = True

    kit: Kit
    lazy: LazyKit

    def initialize_settings(self) -> None:
        settings = Settings.from_env()
        self.kit = Kit(settings)
        self.lazy = LazyKit(self.kit)
        self.settings["tstream_kit"] = self.kit   # for other handlers/extensions
        log.info("tstream handlers at %s%s/ (data in %s)", self.serverapp.base_url.rstrip("/"),
                 PREFIX, settings.data_dir)

    def initialize_handlers(self) -> None:
        for pattern, cls, kwargs in routes(self.kit, prefix=PREFIX):
            if pattern.rstrip("/") == PREFIX:
                pattern = PREFIX + "/"
            self.handlers.append((pattern, jupyter_variant(cls, self.lazy), kwargs))

    async def stop_extension(self) -> None:
        if self.kit.started:
            await self.kit.stop()


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "tstream_kit.server.jupyter", "app": TstreamExtension}]
