"""Shared bits of the Open API tests: the fake base URL, its token answer, recorded calls."""

from __future__ import annotations

import asyncio
from typing import Any

from aioresponses import aioresponses

BASE = "https://open.feishu.test"
TOKEN_URL = f"{BASE}/open-apis/auth/v3/tenant_access_token/internal"
TOKEN_BODY = {"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200}


def calls(m: aioresponses, method: str, path: str) -> list[Any]:
    """Recorded requests to ``path`` (query ignored)."""
    return [
        call
        for (verb, url), recorded in m.requests.items()
        if verb == method and url.path == path
        for call in recorded
    ]


class FakeTime:
    """A clock that only moves when someone sleeps; sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would
