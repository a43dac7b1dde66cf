"""A small typed HTTP client for a tstream server (notebooks, widgets, CLI).

Standard library only (``urllib``), every call with a timeout. Errors::

    ClientError             the server could not be reached or answered badly
     +-- ClientTimeout      no answer within the call's timeout
     +-- ServerNotFound     discovery found no server (and could not start one)
     +-- ApiError           the server answered {"error": ...} with a 4xx/5xx status

>>> Client("http://127.0.0.1:8080/").base_url
'http://127.0.0.1:8080'
>>> Client("http://127.0.0.1:8888/tstream", browser_base="/tstream").stream_url("abcd" * 10, 0)
'/tstream/api/stream?magnet=abcdabcdabcdabcdabcdabcdabcdabcdabcdabcd&file_index=0'

Finding the server (:func:`connect`, cached by :func:`default_client`), in order:

1. **Inside Jupyter**: the Jupyter server that started this kernel (from
   ``jupyter_server.serverapp.list_running_servers()``, matched by the
   kernel's ``JPY_PARENT_PID`` or, failing that, by the kernel id in its
   connection file), if ``<base_url>tstream/api/health`` answers with its
   token. The browser then reaches streams at the page's own origin
   (``<base_url>tstream/api/stream?...``, a path without a host).
2. ``TSTREAM_URL`` (e.g. ``http://127.0.0.1:8080``): a ``tstream serve``.
3. An **embedded server**: a kit and HTTP server started in a background
   thread on a free loopback port, configured from ``TSTREAM_*`` like
   ``tstream serve`` (a convenience for a plain kernel or script).

History calls carry a session token (``X-Session-Id``); the client gets one
from ``POST /api/session`` on first use (or takes ``session=``, or
``TSTREAM_SESSION``) and adds it to stream URLs, so the playback the browser
starts and the positions the widgets report land in one history.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping, Optional, TypedDict

log = logging.getLogger("tstream.client")

__all__ = ["Client", "ClientError", "ClientTimeout", "ServerNotFound", "ApiError",
           "SearchResult", "ProviderStatus", "SearchResponse", "FileInfo", "TorrentInfo",
           "connect", "default_client", "find_jupyter_server", "EmbeddedServer", "embedded_server"]

#: seconds for a discovery probe (health check of a candidate server)
PROBE_TIMEOUT_S = 3.0
#: seconds to wait for an embedded server to start
EMBEDDED_START_TIMEOUT_S = 60.0


class ClientError(Exception):
    """The server could not be reached, or its answer was not JSON."""


class ClientTimeout(ClientError):
    """The server did not answer within the call's timeout."""


class ServerNotFound(ClientError):
    """Discovery found no tstream server."""


class ApiError(ClientError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class SearchResult(TypedDict):
    title: str
    infohash: str
    magnet: str
    size: Optional[int]
    seeders: Optional[int]
    leechers: Optional[int]
    provider: str
    providers: list[str]
    published: Optional[str]
    category: Optional[str]
    url: Optional[str]
    size_exact: bool


class ProviderStatus(TypedDict, total=False):
    status: str        # "ok" | "error" | "timeout"
    ms: float
    count: int
    cached: bool
    error: str


class SearchResponse(TypedDict):
    query: str
    count: int
    results: list[SearchResult]
    providers: dict[str, ProviderStatus]
    ms: float


class FileInfo(TypedDict):
    index: int
    path: str
    size: int
    kind: str
    mime: str
    playable: bool


class TorrentInfo(TypedDict):
    infohash: str
    name: str
    piece_length: int
    num_pieces: int
    total_size: int
    default_file: Optional[int]
    files: list[FileInfo]


class Client:
    """One tstream server.

    ``base_url`` is where this process reaches the API (``.../api/...`` is
    appended); ``browser_base`` is where a browser showing our widgets
    reaches it: the same absolute URL for a standalone server, a path such
    as ``/tstream`` (relative to the page's origin) inside Jupyter.
    ``token`` is a Jupyter server token (``Authorization: token ...``).
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None,
                 browser_base: str | None = None, session: str | None = None,
                 kind: str = "url") -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token or None
        self.browser_base = (browser_base if browser_base is not None else self.base_url).rstrip("/")
        self._session = session or os.environ.get("TSTREAM_SESSION") or None
        self._session_lock = threading.Lock()
        #: how it was found: "jupyter", "url", "embedded"
        self.kind = kind

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, kind={self.kind!r}, browser_base={self.browser_base!r})"

    # ------------------------------------------------------------ transport
    def _request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                 body: Any = None, timeout: float | None = None,
                 session: bool = False) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        if session:
            headers["X-Session-Id"] = self.session_token()
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        limit = timeout or self.timeout
        try:
            with urllib.request.urlopen(request, timeout=limit) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw[:200].decode("utf-8", "replace").strip() or exc.reason
            raise ApiError(exc.code, str(message)) from None
        except TimeoutError:
            raise ClientTimeout(f"{method} {path}: no answer from {self.base_url} in {limit:g} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise ClientTimeout(f"{method} {path}: no answer from {self.base_url} in {limit:g} s") from None
            raise ClientError(f"cannot reach {self.base_url}: {reason}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise ClientError(f"{url} did not answer JSON") from None

    def _get(self, path: str, params: Mapping[str, Any] | None = None, *,
             timeout: float | None = None, session: bool = False) -> Any:
        return self._request("GET", path, params, timeout=timeout, session=session)

    # --------------------------------------------------------------- search
    def search(self, query: str, *, provider: str | None = None, limit: int | None = None,
               sort: str | None = None) -> SearchResponse:
        """Ranked torrents from every configured provider (or ``provider``)."""
        return self._get("/api/search", {"query": query, "provider": provider, "limit": limit, "sort": sort})

    # ------------------------------------------------------------- torrents
    def info(self, magnet: str, *, timeout: float | None = None) -> TorrentInfo:
        """A torrent's metadata: name, files, default file (waits for the swarm if needed).
        The torrent is added to the server's engine and catalogue."""
        return self._get("/api/info", {"magnet": magnet}, timeout=timeout)

    def health(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self._get("/api/health", timeout=timeout)

    def streams(self) -> dict[str, Any]:
        """``{"streams": [...], "recent_errors": [...]}``: every open reader."""
        return self._get("/api/streams")

    def torrents(self) -> list[dict[str, Any]]:
        return self._get("/api/torrents")["torrents"]

    def peers(self, magnet: str) -> list[dict[str, Any]]:
        """Connected peers: address, client, download/upload rate, progress, seed."""
        return self._get("/api/peers", {"magnet": magnet})["peers"]

    def pieces(self, magnet: str, file_index: int | None = None) -> dict[str, Any]:
        """The file's piece map (``h`` have, ``d`` deadline, ``r`` requested,
        ``.`` missing) and its readers (position, buffer ahead)."""
        return self._get("/api/pieces", {"magnet": magnet, "file_index": file_index})

    def remove(self, magnet: str, *, delete_files: bool = False) -> dict[str, Any]:
        """Remove a torrent and its streams from the server (optionally its data)."""
        return self._request("DELETE", "/api/torrent", {"magnet": magnet,
                                                        "delete_files": "1" if delete_files else "0"})

    def stop_stream(self, magnet: str, file_index: int | None = None) -> dict[str, Any]:
        return self._request("DELETE", "/api/stream", {"magnet": magnet, "file_index": file_index})

    def stream_url(self, magnet: str, file_index: int | None = None, *, for_browser: bool = True,
                   with_session: bool = False) -> str:
        """The file's stream URL: for a browser on a page of this server
        (relative inside Jupyter) or, with ``for_browser=False``, for this
        process (absolute; send :attr:`token` yourself inside Jupyter)."""
        params: dict[str, Any] = {"magnet": magnet}
        if file_index is not None:
            params["file_index"] = int(file_index)
        if with_session:
            params["session"] = self.session_token()
        base = self.browser_base if for_browser else self.base_url
        return f"{base}/api/stream?" + urllib.parse.urlencode(params)

    # -------------------------------------------------------------- history
    def session_token(self) -> str:
        """This client's history session (one ``POST /api/session`` on first use)."""
        with self._session_lock:
            if self._session is None:
                self._session = str(self._request("POST", "/api/session", body={})["token"])
            return self._session

    def history(self, *, limit: int | None = None, before: str | None = None) -> dict[str, Any]:
        """This session's watches, newest first: ``{"watches": [...], "next_before": ...}``."""
        return self._get("/api/history", {"limit": limit, "before": before}, session=True)

    def resume(self, magnet: str, file_index: int | None = None) -> dict[str, Any]:
        """Where this session stopped in a file: ``{"found", "position_s", "duration_s", ...}``."""
        return self._get("/api/resume", {"magnet": magnet, "file_index": file_index}, session=True)

    def record(self, magnet: str, *, file_index: int | None = None, position_s: float = 0.0,
               duration_s: float | None = None, title: str | None = None,
               file_path: str | None = None) -> dict[str, Any]:
        """Record a watch, or move its playback position (``POST /api/history``)."""
        body = {"magnet": magnet, "file_index": file_index, "position_s": max(0.0, float(position_s)),
                "duration_s": duration_s, "title": title, "file_path": file_path}
        return self._request("POST", "/api/history", body={k: v for k, v in body.items() if v is not None},
                             session=True)

    def popular(self, *, days: int = 30, limit: int | None = None) -> list[dict[str, Any]]:
        """Torrents by watch count over the last ``days``."""
        return self._get("/api/popular", {"days": days, "limit": limit})["torrents"]

    # ---------------------------------------------------------------- anime
    def anime_search(self, query: str, *, page: int | None = None, per_page: int | None = None) -> dict[str, Any]:
        """AniList shows matching ``query``: ``{"results": [...], "has_next_page", ...}``."""
        return self._get("/api/anime/search", {"query": query, "page": page, "per_page": per_page})

    def anime_trending(self, *, per_page: int | None = None) -> dict[str, Any]:
        return self._get("/api/anime/trending", {"per_page": per_page})

    def anime_popular(self, *, per_page: int | None = None) -> dict[str, Any]:
        return self._get("/api/anime/popular", {"per_page": per_page})

    def anime(self, anime_id: int) -> dict[str, Any]:
        """One show's details (titles, synonyms, episodes, status, season, genres, score, cover, next airing)."""
        return self._get(f"/api/anime/{int(anime_id)}")

    def anime_episodes(self, anime_id: int, *, refresh: bool = False) -> dict[str, Any]:
        """Every episode with availability, qualities and the best torrent."""
        return self._get(f"/api/anime/{int(anime_id)}/episodes", {"refresh": 1 if refresh else None})

    def anime_torrents(self, anime_id: int, episode: int, *, resolve: bool = False) -> dict[str, Any]:
        """An episode's torrents by quality; ``resolve`` finds a batch's file from the swarm if needed."""
        return self._get(f"/api/anime/{int(anime_id)}/torrents",
                         {"episode": int(episode), "resolve": 1 if resolve else None})

    def anime_next(self, anime_id: int) -> dict[str, Any]:
        """Where this session stopped in the show and the torrent to play next."""
        return self._get(f"/api/anime/{int(anime_id)}/next", session=True)


# ------------------------------------------------------------------ discovery
def _kernel_id() -> str | None:
    try:
        from ipykernel import get_connection_file   # only inside a kernel
        name = Path(get_connection_file()).name
    except Exception:   # noqa: BLE001 - not in a kernel
        return None
    if name.startswith("kernel-") and name.endswith(".json"):
        return name[len("kernel-"):-len(".json")]
    return None


def _server_urls(info: Mapping[str, Any]) -> list[str]:
    """Loopback first: a server on every interface answers there too."""
    base = str(info.get("base_url") or "/")
    out = [f"http://127.0.0.1:{info['port']}{base}"] if info.get("port") else []
    url = str(info.get("url") or "")
    if url and url not in out and (urllib.parse.urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1"):
        out.append(url if url.endswith("/") else url + "/")
    return out


def find_jupyter_server(timeout: float = PROBE_TIMEOUT_S) -> Client | None:
    """The Jupyter server that runs this kernel, if it has the tstream extension."""
    parent = os.environ.get("JPY_PARENT_PID")
    kernel = _kernel_id()
    if not parent and not kernel:
        return None
    try:
        from jupyter_server.serverapp import list_running_servers
        servers = list(list_running_servers())
    except Exception as exc:   # noqa: BLE001 - no jupyter_server installed, unreadable runtime dir
        log.debug("no Jupyter servers listed: %s", exc)
        return None
    mine = [s for s in servers if parent and str(s.get("pid")) == parent]
    if not mine and kernel:
        for s in servers:
            for url in _server_urls(s):
                try:
                    c = Client(url.rstrip("/"), token=s.get("token"), timeout=timeout)
                    if any(k.get("id") == kernel for k in c._get("/api/kernels")):
                        mine = [s]
                        break
                except ClientError:
                    continue
            if mine:
                break
    for s in mine:
        for url in _server_urls(s):
            client = Client(url + "tstream", token=s.get("token"), kind="jupyter",
                            browser_base=str(s.get("base_url") or "/") + "tstream")
            try:
                client.health(timeout=timeout)
            except ApiError as exc:
                log.warning("the Jupyter server at %s answers %s for tstream: is the tstream_kit "
                            "server extension enabled?", url, exc)
                continue
            except ClientError:
                continue
            return client
    return None


class EmbeddedServer:
    """A kit and HTTP server on their own event loop in a daemon thread."""

    def __init__(self, settings: Any = None, *, timeout: float = EMBEDDED_START_TIMEOUT_S) -> None:
        from .config import Settings
        if settings is None:
            settings = Settings.from_env(port=0, host="127.0.0.1")
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.running: Any = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        # the access log stays quiet in a notebook (errors still reach the JSON answers)
        logging.getLogger("tstream.http").addHandler(logging.NullHandler())
        self._thread = threading.Thread(target=self._run, name="tstream-embedded", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ServerNotFound(f"the embedded tstream server did not start in {timeout:g} s")
        if self._error is not None:
            raise ServerNotFound(f"the embedded tstream server did not start: {self._error}") from self._error

    def _run(self) -> None:
        from .server.app import start_server
        asyncio.set_event_loop(self.loop)
        try:
            self.running = self.loop.run_until_complete(start_server(self.settings))
        except BaseException as exc:   # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.running.stop())
        self.loop.close()

    @property
    def url(self) -> str:
        return self.running.url

    def call(self, fn: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(running)`` on the server's loop (a coroutine function or not)."""
        async def go() -> Any:
            out = fn(self.running)
            return await out if asyncio.iscoroutine(out) else out
        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self.loop.is_closed() or not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)


_embedded: EmbeddedServer | None = None
_default: Client | None = None
_lock = threading.Lock()


def _at_exit(fn: Any) -> None:
    # threading's exit hooks run before concurrent.futures refuses new work
    # (the kit's shutdown uses asyncio.to_thread); atexit hooks run after.
    register = getattr(threading, "_register_atexit", None)
    try:
        register(fn) if register else atexit.register(fn)
    except RuntimeError:   # already shutting down
        atexit.register(fn)


def _stop_embedded() -> None:
    if _embedded is not None:
        _embedded.stop()


def connect(*, timeout: float = 30.0, embedded: bool = True) -> Client:
    """Find a server: the Jupyter extension, then ``TSTREAM_URL``, then an
    embedded server (unless ``embedded=False``: :class:`ServerNotFound`)."""
    global _embedded
    client = find_jupyter_server()
    if client is not None:
        client.timeout = timeout
        return client
    url = os.environ.get("TSTREAM_URL", "").strip()
    if url:
        client = Client(url, timeout=timeout, kind="url")
        try:
            client.health(timeout=PROBE_TIMEOUT_S)
        except ClientError as exc:
            raise ServerNotFound(f"TSTREAM_URL={url} does not answer: {exc}") from None
        return client
    if not embedded:
        raise ServerNotFound("no tstream server: not inside a Jupyter server with the tstream "
                             "extension, and TSTREAM_URL is not set")
    with _lock:
        if _embedded is None:
            _embedded = EmbeddedServer()
            _at_exit(_stop_embedded)
            log.info("started an embedded tstream server at %s", _embedded.url)
    return Client(_embedded.url, timeout=timeout, kind="embedded")


def embedded_server() -> EmbeddedServer | None:
    """The embedded server this process started, if any."""
    return _embedded


def default_client() -> Client:
    """The process's client, found by :func:`connect` once."""
    global _default
    with _lock:
        client = _default
    if client is None:
        client = connect()
        with _lock:
            _default = _default or client
            client = _default
    return client
