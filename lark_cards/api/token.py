"""The tenant access token: cached, refreshed early, fetched by one caller at a time (§3).

Feishu hands out a new token only once fewer than 30 minutes of the old one remain, and every
Open API call needs one, so a cold start or an expiry under load must cause one fetch, not a
stampede; a token Feishu calls invalid is dropped (only that one: another caller may already
hold its successor) so the next call fetches afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import NO_FEISHU_CODE, LarkAPIError
from .ratelimit import Clock

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"  # §3
REFRESH_MARGIN = 1800.0  # §3: Feishu hands out a new token only once < 30 min remain


class TenantToken:
    """``fetch`` posts the app's id and secret to ``TOKEN_PATH`` and returns the body."""

    def __init__(self, fetch: Callable[[], Awaitable[dict[str, Any]]], clock: Clock) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """The cached token, or a new one when it is about to expire.

        The expiry is re-checked after taking the lock, so concurrent callers that all saw a
        stale token cause a single fetch.
        """
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            fetched_at = self._clock()
            body = await self._fetch()
            token, expire = body.get("tenant_access_token"), body.get("expire")
            if not isinstance(token, str) or not isinstance(expire, int | float):
                raise LarkAPIError(NO_FEISHU_CODE, "token response lacks token or expire")
            # Refresh once fewer than min(30 min, half the lifetime) remain (§3).
            self._refresh_at = fetched_at + expire - min(REFRESH_MARGIN, expire / 2)
            self._token = token
            return token

    def drop(self, token: str) -> None:
        """Forget ``token`` after Feishu called it invalid (if it is still the cached one)."""
        if self._token == token:
            self._token = None
