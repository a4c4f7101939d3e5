"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL


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
