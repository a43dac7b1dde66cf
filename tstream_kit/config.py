"""Settings from the environment (``TSTREAM_*``), validated in one place.

Every setting has an embedded default, so ``tstream serve`` runs with no
configuration at all. :func:`Settings.from_env` collects *every* mistake
and raises one :class:`ConfigError` listing them, one line each.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Settings", "ConfigError", "default_data_dir"]


class ConfigError(ValueError):
    """One or more settings are invalid; the message lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tstream"


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


#: libtorrent's disk back-ends (``session_params.disk_io_constructor``):
#: ``auto``: libtorrent's default (pread from 2.1 on, mmap in 2.0);
#: ``pread``: disk threads and a store buffer;
#: ``posix``: synchronous pread/pwrite in libtorrent's network thread;
#: ``mmap``: memory-mapped files (2.0's default). docs/ARCHITECTURE.md decision 6.
DISK_IO_CHOICES = ("auto", "pread", "posix", "mmap")


@dataclass(frozen=True)
class Settings:
    """The effective configuration. Field name ``x`` reads ``TSTREAM_X``."""

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    #: where libtorrent listens for peers (``0`` port: any free port)
    bt_listen: str = "0.0.0.0:6881,[::]:6881"
    #: peer discovery beyond trackers and x.pe: DHT, local discovery, UPnP/NAT-PMP
    dht: bool = True
    lsd: bool = True
    port_mapping: bool = True
    utp: bool = True
    #: libtorrent's disk back-end: ``auto`` (= ``pread``, disk threads, on 2.1),
    #: ``posix`` (in its network thread: less memory at high speed, slower), ``mmap``
    disk_io: str = "auto"
    #: seconds to wait for a magnet's metadata before answering 504
    metadata_timeout: float = 30.0
    #: seconds a stream waits for one piece before it gives up on the peers
    piece_timeout: float = 60.0
    #: watch history: unset = SQLite in the data dir; ``postgresql://user@host:port/db`` = PostgreSQL
    database_url: str = ""
    #: signs the session cookie; unset = a random secret kept in ``<data dir>/secret``
    secret: str = ""
    #: extra Host names the HTTP server answers to (DNS-rebinding guard);
    #: loopback names and the bind address are always allowed; ``*`` allows any
    allowed_hosts: tuple[str, ...] = ()
    #: an origin allowed to call the API from a browser (CORS); none by default
    cors_origin: str = ""
    # --- search (README "Search"; checked in search/settings.py) ---
    #: Redis for the search and metadata cache; unset: an in-process cache
    redis_url: str = ""
    #: prepended to every cache key (several installs sharing one Redis)
    cache_prefix: str = ""
    #: seconds a provider's answer to a query stays cached (0 = no caching)
    search_cache_ttl: float = 3600.0
    #: seconds a torrent's metadata (``magnet:<infohash>``) stays cached
    metadata_cache_ttl: float = 604800.0
    #: each provider's whole budget per search, retries included
    search_timeout: float = 10.0
    #: retries after a connection error, HTTP 429 or 5xx (within the timeout)
    search_retries: int = 1
    #: built-in providers to use: catalog, nyaa, apibay (comma-separated)
    search_providers: str = "catalog"
    #: Torznab indexers (Jackett, Prowlarr): name=URL|APIKEY,... or a JSON list
    torznab: str = ""
    nyaa_url: str = "https://nyaa.si"
    apibay_url: str = "https://apibay.org"
    #: minimum seconds between two requests to one public indexer host (>= 2)
    public_rate_limit: float = 2.0
    #: a folder of .torrent files the local catalogue includes
    catalog_dir: str = ""
    # --- deployment and operations (README "Deployment"; checked in ops/settings.py) ---
    #: API token: when set, every request needs it (header, cookie); required to
    #: bind an address other than loopback (the Jupyter mount uses Jupyter's auth)
    api_token: str = ""
    #: most torrents in the engine at once; adding one more answers 503 (0 = no limit)
    max_torrents: int = 32
    #: most concurrent streams (open readers); one more answers 503 (0 = no limit)
    max_streams: int = 64
    #: bytes the downloads may use (``50G``, ``500M``; 0 = no quota): beyond it,
    #: torrents nobody streams are removed with their files, least recently watched first
    disk_quota: int = 0
    #: largest request body (a .torrent upload to POST /api/torrents): 413 beyond
    max_upload_size: int = 10 * 1024 * 1024
    #: API requests per minute per client (0 = no limit): 429 with Retry-After beyond;
    #: Range requests of a stream the client is already playing are not counted
    rate_limit: int = 600
    #: take the client address from X-Forwarded-For / X-Real-IP (only behind a reverse proxy)
    trust_proxy: bool = False
    #: log lines: ``text`` or ``json`` (one object per line); level: debug, info, warning, error
    log_format: str = "text"
    log_level: str = "info"
    #: seconds shutdown waits for libtorrent's resume data before it gives up
    shutdown_timeout: float = 10.0
    #: seconds between saves of changed torrents' resume data: a crash (no clean
    #: shutdown) loses at most this much download progress
    resume_interval: float = 60.0
    #: seconds an idle keep-alive connection stays open; seconds a request body may take
    http_idle_timeout: float = 120.0
    http_body_timeout: float = 60.0
    # --- media (README "Media"; checked in transcode/settings.py) ---
    #: most ffmpeg remux/transcode processes at once; one more answers 503
    transcode_limit: int = 2
    #: libx264 preset for re-encoded video (ultrafast ... medium): speed against size
    transcode_preset: str = "veryfast"
    #: re-encoded video is scaled down to at most this many lines (0 = keep)
    transcode_max_height: int = 1080
    #: seconds a probe (ffmpeg -i on the file's index pieces) may take
    probe_timeout: float = 20.0
    # --- anime (README "Anime"; checked in anime/settings.py) ---
    #: AniList's GraphQL endpoint (tests point it at a local server)
    anilist_url: str = "https://graphql.anilist.co"
    #: seconds one AniList request may take, retries and rate-limit waits included
    anilist_timeout: float = 10.0
    #: seconds AniList answers (search, trending, popular, details) stay in the cache
    anime_cache_ttl: float = 3600.0
    #: seconds a show that is still airing (and its episode torrents) stays in the tables
    anime_airing_ttl: float = 3600.0
    #: seconds a finished show (and its episode torrents) stays in the tables
    anime_finished_ttl: float = 86400.0
    #: where episode torrents are searched: nyaa and/or torznab (every TSTREAM_TORZNAB indexer)
    anime_providers: str = "nyaa"
    #: Torznab categories asked for anime (5070 = TV/Anime)
    anime_torznab_categories: str = "5070"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        if env is None:   # the process environment over an optional .env file
            from .ops.settings import environ_with_dotenv
            env = environ_with_dotenv()
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            key = "TSTREAM_" + f.name.upper()
            if f.name in overrides and overrides[f.name] is not None:
                raw: Any = overrides[f.name]
            elif key in env:
                raw = env[key]
            else:
                continue
            try:
                values[f.name] = _coerce(f.name, raw, f.default if f.default is not field else None)
            except ValueError as exc:
                problems.append(f"{key}={raw!r}: {exc}")
        settings = cls(**values)
        problems += settings.problems()
        if problems:
            raise ConfigError(problems)
        return settings

    def problems(self) -> list[str]:
        out = []
        if not 0 <= self.port <= 65535:
            out.append(f"TSTREAM_PORT={self.port}: a port is 0..65535")
        if self.database_url:
            from .store.history import store_kind
            try:
                store_kind(self.database_url)
            except ValueError as exc:
                out.append(f"TSTREAM_DATABASE_URL: {exc}")
        if self.secret and len(self.secret) < 16:
            out.append("TSTREAM_SECRET must be at least 16 characters")
        if self.disk_io not in DISK_IO_CHOICES:
            out.append(f"TSTREAM_DISK_IO={self.disk_io!r}: one of {', '.join(DISK_IO_CHOICES)}")
        if self.metadata_timeout <= 0:
            out.append("TSTREAM_METADATA_TIMEOUT must be > 0 seconds")
        if self.piece_timeout <= 0:
            out.append("TSTREAM_PIECE_TIMEOUT must be > 0 seconds")
        from .ops.settings import ops_problems
        out += ops_problems(self)
        from .search.settings import search_problems
        out += search_problems(self)
        from .transcode.settings import media_problems
        out += media_problems(self)
        from .anime.settings import anime_problems
        out += anime_problems(self)
        return out

    def replace(self, **kw: Any) -> "Settings":
        return replace(self, **kw)

    def offline(self) -> "Settings":
        """Loopback-only engine: no DHT/LSD/UPnP, TCP (for local swarms)."""
        return replace(self, dht=False, lsd=False, port_mapping=False, utp=False,
                       bt_listen="127.0.0.1:0")

    def public_dict(self) -> dict[str, Any]:
        out = {f.name: (str(v) if isinstance(v, Path) else v)
               for f in fields(self) for v in [getattr(self, f.name)]}
        # secrets stay out of `tstream config`
        from .search.settings import redact_torznab
        from .store.cache import redact_url
        out["redis_url"] = redact_url(self.redis_url)
        out["torznab"] = redact_torznab(self.torznab)
        out["database_url"] = re.sub(r"(password=)[^&\s]*", r"\1***", redact_url(self.database_url))
        out["secret"] = "***" if self.secret else ""
        out["api_token"] = "***" if self.api_token else ""
        return out


def _coerce(name: str, raw: Any, default: Any) -> Any:
    if name == "data_dir":
        return Path(os.path.expanduser(str(raw)))
    if name in ("disk_quota", "max_upload_size"):
        from .ops.settings import parse_size
        return parse_size(raw)
    if name == "allowed_hosts":
        if isinstance(raw, (list, tuple)):
            return tuple(raw)
        return tuple(h.strip().lower() for h in str(raw).split(",") if h.strip())
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("expected a boolean (1/0, true/false, yes/no, on/off)")
    if isinstance(default, int):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError("expected an integer") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
    return str(raw)
