"""HTTP for providers: one client, polite per-host pacing, retries in a budget.

Every request names the project in its User-Agent, is paced per host (public
indexers: at least :data:`PUBLIC_MIN_INTERVAL` seconds between requests to one
host), and never outlives the deadline it is given: a retry, a ``Retry-After``
or a pacing wait that would not fit fails at once instead of waiting.
Query parameters are always URL-encoded here (``urlencode``), never spliced.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Mapping, Sequence

import tornado.httpclient
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from .. import __version__
from .base import ProviderError, ProviderHTTPError

log = logging.getLogger("tstream.search")

__all__ = ["USER_AGENT", "PUBLIC_MIN_INTERVAL", "HostPacer", "Fetcher", "Response",
           "is_loopback_url", "DeadlineExceeded"]

USER_AGENT = f"tstream/{__version__} (torrent streaming toolkit; search)"
#: seconds between two requests to one public host (Nyaa, apibay): their
#: operators ask for restraint, and a second search within this is cached anyway
PUBLIC_MIN_INTERVAL = 2.0
#: an indexer page is a few hundred kB; anything far bigger is not one
MAX_BODY = 16 * 1024 * 1024
#: statuses worth a retry (the server said "later" or failed on its side)
RETRY_STATUSES = {429, 500, 502, 503, 504}


class DeadlineExceeded(ProviderError):
    """The provider's time budget ran out (reported as ``timeout``)."""


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostPacer:
    """Spaces requests to one host by a minimum interval, across all providers
    of a process (two Nyaa searches share Nyaa's budget)."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, host: str, interval: float, deadline: float) -> None:
        if interval <= 0:
            return
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, 0.0))
            if start > deadline:
                raise DeadlineExceeded(
                    f"polite rate limit: next request to {host} allowed in {start - now:.1f} s, "
                    "after this search's timeout")
            self._next[host] = start + interval
        if start > now:
            await asyncio.sleep(start - now)


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class Fetcher:
    """GETs with pacing and retries. One per process (the kit owns it)."""

    def __init__(self, pacer: HostPacer | None = None, *, max_clients: int = 32) -> None:
        self.pacer = pacer or HostPacer()
        self._max_clients = max_clients
        self._client: AsyncHTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> AsyncHTTPClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = AsyncHTTPClient(force_instance=True, max_clients=self._max_clients,
                                           max_body_size=MAX_BODY)
            self._loop = loop
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def get(self, url: str, params: Sequence[tuple[str, str]] | Mapping[str, str] = (), *,
                  deadline: float, min_interval: float = 0.0, retries: int = 1,
                  follow_redirects: bool = True, accept: str = "*/*") -> Response:
        """GET ``url`` with ``params`` URL-encoded. Retries connection errors,
        429 and 5xx (honouring ``Retry-After``) while the deadline allows.
        Returns 2xx and 3xx answers (3xx only with ``follow_redirects=False``);
        raises :class:`ProviderHTTPError` / :class:`DeadlineExceeded` otherwise."""
        if params:
            query = urllib.parse.urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
            url = url + ("&" if urllib.parse.urlsplit(url).query else "?") + query
        host = urllib.parse.urlsplit(url).netloc
        attempt = 0
        backoff = 0.25
        while True:
            await self.pacer.wait(host, min_interval, deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                raise DeadlineExceeded(f"no answer from {host} within the timeout")
            request = HTTPRequest(url, method="GET", headers={"User-Agent": USER_AGENT, "Accept": accept},
                                  connect_timeout=remaining, request_timeout=remaining,
                                  follow_redirects=follow_redirects, max_redirects=5,
                                  decompress_response=True)
            retry_after: float | None = None
            try:
                resp = await self._http().fetch(request, raise_error=False)
            except (OSError, tornado.httpclient.HTTPError, asyncio.TimeoutError) as exc:
                if time.monotonic() >= deadline - 0.01:
                    raise DeadlineExceeded(f"no answer from {host} within the timeout") from None
                error: ProviderError = ProviderError(f"cannot reach {host}: {exc}")
            else:
                if resp.code == 599:   # tornado: timeout or connection failure
                    if time.monotonic() >= deadline - 0.05:
                        raise DeadlineExceeded(f"no answer from {host} within the timeout")
                    error = ProviderError(f"cannot reach {host}: {resp.error}")
                elif 200 <= resp.code < 300 or (300 <= resp.code < 400 and not follow_redirects):
                    return Response(resp.code, resp.headers, resp.body or b"", resp.effective_url)
                else:
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    reason = "rate limited by the indexer" if resp.code == 429 else resp.reason
                    error = ProviderHTTPError(resp.code, f"{host} answered HTTP {resp.code} ({reason})",
                                              retry_after)
                    if resp.code not in RETRY_STATUSES:
                        raise error
            if attempt >= retries:
                raise error
            attempt += 1
            pause = max(backoff, retry_after or 0.0)
            if time.monotonic() + pause >= deadline:
                raise error   # waiting would cross the deadline: give the real reason now
            log.debug("retrying %s in %.2f s: %s", host, pause, error)
            await asyncio.sleep(pause)
            backoff *= 2


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


