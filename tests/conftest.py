"""Fixtures shared by the test modules."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses
from api_fakes import BASE, TOKEN_BODY, TOKEN_URL
from yarl import URL

from lark_cards.api import LarkClient


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
