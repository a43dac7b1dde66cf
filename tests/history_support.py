"""Helpers for the history tests: a PostgreSQL schema of their own on the
real server (created and dropped), and a TCP proxy the test can cut.

PostgreSQL is at 127.0.0.1:5432 (TSTREAM_TEST_PG to change). Without it the
PostgreSQL half is skipped, except under CI=true, where it fails.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import Iterator

import pytest

PG_BASE = os.environ.get("TSTREAM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_admin_connect():
    import psycopg
    return psycopg.connect(PG_BASE, autocommit=True, connect_timeout=5)


def pg_available() -> str | None:
    try:
        with pg_admin_connect() as c:
            c.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc)


def schema_url(schema: str, base: str = PG_BASE) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema; dropped with everything in it afterwards."""
    problem = pg_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI: {problem}")
        pytest.skip(f"no PostgreSQL at {PG_BASE}: {problem}")
    schema = "tstream_test_" + uuid.uuid4().hex[:12]
    with pg_admin_connect() as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with pg_admin_connect() as c:
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class TcpProxy:
    """127.0.0.1:port -> target. ``cut()`` closes every connection and
    refuses new ones (the database looks down); ``hang()`` closes every
    connection and accepts new ones that then never answer (a host that
    stopped responding: only the client's own timeouts end the wait);
    ``restore()`` lets them in."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._up = True
        self._silent = False
        self._held: list[socket.socket] = []     # accepted while hung: never answered
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            if self._silent:
                with self._lock:
                    self._held.append(client)
                continue
            if not self._up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._up = False
        self._silent = False
        self._close_all()

    def hang(self) -> None:
        self._up = False
        self._silent = True
        self._close_all()

    def _close_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns + self._held, []
            self._held = []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self._silent = False
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            s.close()
        self._up = True

    def close(self) -> None:
        self._stop = True
        self.cut()
        self.listener.close()
        self._thread.join(timeout=2)
