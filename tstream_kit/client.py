"""A small typed HTTP client for a tstream server (notebooks, widgets, CLI).

Standard library only (``urllib``), every call with a timeout. Errors::

    ClientError             the server could not be reached or answered badly
     +-- ApiError           the server answered {"error": ...} with a 4xx/5xx status

>>> Client("http://127.0.0.1:8080/").base_url
'http://127.0.0.1:8080'
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping, Optional, TypedDict

__all__ = ["Client", "ClientError", "ApiError", "SearchResult", "ProviderStatus", "SearchResponse"]


class ClientError(Exception):
    """The server could not be reached, or its answer was not JSON."""


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


class Client:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, Any] | None = None, *,
             timeout: float | None = None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.base_url}{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw[:200].decode("utf-8", "replace") or exc.reason
            raise ApiError(exc.code, str(message)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClientError(f"cannot reach {self.base_url}: {getattr(exc, 'reason', exc)}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise ClientError(f"{url} did not answer JSON") from None

    def search(self, query: str, *, provider: str | None = None, limit: int | None = None,
               sort: str | None = None) -> SearchResponse:
        """Ranked torrents from every configured provider (or ``provider``)."""
        return self._get("/api/search", {"query": query, "provider": provider, "limit": limit, "sort": sort})

    def info(self, magnet: str) -> dict[str, Any]:
        """A torrent's metadata: name, files, default file (waits for the swarm if needed)."""
        return self._get("/api/info", {"magnet": magnet})

    def health(self) -> dict[str, Any]:
        return self._get("/api/health")
