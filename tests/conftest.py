"""Fixtures shared by the test modules."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses
from api_fakes import BASE, TOKEN_BODY, TOKEN_URL
from outbox_wiring import Wiring
from yarl import URL

from lark_cards.api.client import LarkClient

ROOT = Path(__file__).resolve().parent.parent


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds ClientResponse without the ``stream_writer`` argument that
    aiohttp 3.14 requires (pnuckowski/aioresponses#289); supply a finished writer."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


_NEEDS_COMPAT = "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters


@pytest.fixture
def api_mock() -> Iterator[aioresponses]:
    """aioresponses for the Open API (outbound HTTP faked; switches its workaround off once
    aioresponses no longer needs it)."""
    with (
        mock.patch("aioresponses.core.ClientResponse", _CompatResponse)
        if _NEEDS_COMPAT
        else contextlib.nullcontext(),
        aioresponses() as mocked,
    ):
        yield mocked


@pytest.fixture
def m(api_mock: aioresponses) -> aioresponses:
    """The Open API at ``api_fakes.BASE``, already answering the tenant-token request."""
    api_mock.post(TOKEN_URL, payload=TOKEN_BODY)
    return api_mock


@pytest.fixture
async def client(m: aioresponses) -> AsyncIterator[LarkClient]:
    lark = LarkClient(app_id="cli_test", app_secret="s", base_url=BASE, jitter=lambda: 0.0)
    await lark.start()
    yield lark
    await lark.close()


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop running in its own thread, as the backend's is during serve_once."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lark-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture
def connected(tmp_path: Any, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """An offline ``LarkCardsBackend`` connected to a ``FakeOpenAPI`` (``bot.client``), its
    bridge on ``loop``: plugin API calls from the test thread reach the fake."""
    from api_fakes import connect
    from errbot_config import errbot_config, offline_backend

    bot = offline_backend(errbot_config(tmp_path))
    connect(bot, loop)
    yield bot
    bot.outbox.close()


class Processes:
    """``python -m`` processes a test starts as a user starts them."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def python(
        self, module: str, *args: str, cwd: Path = ROOT, **popen: Any
    ) -> subprocess.Popen[str]:
        """``python -m module args…`` from the clone root (or ``cwd``) without PYTHONPATH, so
        the code loads as it does for a user; stdout and stderr on one text pipe unless
        ``popen`` says otherwise."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, **popen}
        process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, **popen)
        self.started.append(process)
        return process

    @staticmethod
    def stop(process: subprocess.Popen[str], grace: float = 15) -> None:
        """Ctrl-C if it is still running, and a kill if it has not stopped ``grace`` s later."""
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start processes with ``processes.python(…)``; any still running at teardown is
    stopped (``Processes.stop``)."""
    started = Processes()
    yield started
    for process in started.started:
        started.stop(process)


@pytest.fixture
async def bots(tmp_path: Path, processes: Processes) -> AsyncIterator[Any]:
    """A fake Open Platform (with its long-connection hub) and ``e2e_bots.Bots`` to start
    real errbot processes against it; every bot is stopped at teardown."""
    from e2e_bots import running

    async with running(tmp_path, processes) as started:
        yield started


@pytest.fixture
def wired(loop: asyncio.AbstractEventLoop) -> Iterator[Wiring]:
    """The outgoing side on the ``loop`` thread, sending to a FakeOpenAPI."""
    wiring = Wiring(loop)
    yield wiring
    wiring.outbox.close()


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``redis_servers(password=None)`` starts a real ``redis-server`` on a free loopback port
    (``tests/redis_server.py``) and returns it; all are stopped at teardown. The test is
    skipped, saying why, where the binary is not installed."""
    from redis_server import RedisServer

    started: list[RedisServer] = []

    def start(password: str | None = None) -> RedisServer:
        directory = tmp_path / f"redis-{len(started)}"
        directory.mkdir()
        try:
            server = RedisServer(directory, password=password)
        except FileNotFoundError as error:
            pytest.skip(f"redis-server not installed: {error}")
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_server(redis_servers: Callable[..., Any]) -> Any:
    """One real ``redis-server`` (see ``redis_servers``), stopped at teardown."""
    return redis_servers()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another socket listens on for the whole test (a port in use)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]
