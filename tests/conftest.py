"""Shared fixtures: random source files, loopback swarms, engines and servers.

Everything is real: libtorrent seeders on 127.0.0.1, an Engine with its own
libtorrent session, the Tornado server on an unused port. Each test gets its
own data directory under pytest's tmp_path, so nothing is left behind.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tstream_kit.config import Settings
from tstream_kit.engine import Engine, EngineConfig
from tstream_kit.engine.swarm import LocalSwarm

PIECE = 256 * 1024


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def wait_until(cond: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``cond`` (a function, or one returning a coroutine) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """make_file(name, size, seed) -> path of a file of random bytes."""
    src = tmp_path / "src"

    def make(name: str, size: int, seed: int = 0) -> Path:
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random_bytes(size, seed))
        return path

    return make


@pytest.fixture
def make_swarm(tmp_path: Path) -> Iterator[Callable[..., LocalSwarm]]:
    """make_swarm([files], name=..., upload_rate=...) -> a seeding LocalSwarm."""
    swarms: list[LocalSwarm] = []
    counter = iter(range(1000))

    def make(files: list[Path], **kw) -> LocalSwarm:
        kw.setdefault("workdir", tmp_path / f"seed{next(counter)}")
        swarm = LocalSwarm.from_files(files, **kw)
        swarms.append(swarm)
        return swarm

    yield make
    for s in swarms:
        s.close()


def offline_engine_config(data_dir: Path) -> EngineConfig:
    return EngineConfig(data_dir=data_dir, listen_interfaces="127.0.0.1:0",
                        dht=False, lsd=False, port_mapping=False, utp=False)


@pytest.fixture
async def engine(tmp_path: Path):
    eng = Engine(offline_engine_config(tmp_path / "data"))
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, data_dir=tmp_path / "data", port=0).offline()


@pytest.fixture
async def server(settings: Settings):
    from tstream_kit.server.app import start_server
    running = await start_server(settings)
    yield running
    await running.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # HTTP clients in tests talk to 127.0.0.1 only
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TSTREAM_TEST", "1")
