"""Async Feishu Open API client: tenant token cache, retries, rate limits, per-chat ordering.

Everything that has to be right for a bot that posts under load lives here once:
- the tenant token is cached, refreshed early and fetched by one caller at a time (§3);
- transient failures are retried with backoff, reusing the message ``uuid`` so a retry can
  never post twice (§4.1, §4.4);
- sends are paced to Feishu's per-app and per-chat limits (§4.4) and leave each chat in the
  order they were started.
Section numbers refer to reference/feishu-platform.md. Clock, sleep and jitter are injected
(aesthetics.md lesson 6) so the tests run instantly on a fake clock.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from .errors import NO_FEISHU_CODE, RETRYABLE, TOKEN_INVALID, LarkAPIError, decode_response
from .ratelimit import Clock, KeyedLock, KeyedRateLimiter, RateLimiter, Sleep

if TYPE_CHECKING:
    from lark_cards.settings import Settings

log = logging.getLogger(__name__)

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"  # §3
MESSAGES_PATH = "/open-apis/im/v1/messages"  # §4.1, §4.2

GATEWAY_RATE_LIMITED = 99991400  # §4.4: comes with HTTP 429 (or 400) and x-ogw-ratelimit-reset
REFRESH_MARGIN = 1800.0  # §3: Feishu hands out a new token only once < 30 min remain
BACKOFF_START, BACKOFF_CAP = 1.0, 30.0  # §4.4 "exponential backoff (start ≥ 1 s)"
MAX_RESET_WAIT = 60.0  # §4.4: the longest Feishu window is a minute (1000/min)
MAX_UUID_LEN = 50  # §4.1
# Never log bodies, params or headers: they carry the app secret, tokens and message content.
_ATTEMPT_LOG = "Feishu %s %s -> code %s (log_id %s, attempt %d)"


class LarkClient:
    """One aiohttp session plus the token cache and flow control shared by every call."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str,
        timeout: float = 10.0,
        chat_qps: float = 5.0,
        app_qps: float = 50.0,
        max_retries: int = 4,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._app_id = app_id
        self._app_secret = app_secret
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._max_retries = max_retries
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._token_lock = asyncio.Lock()
        self._app_limiter = RateLimiter(app_qps, clock=clock, sleep=sleep)
        self._chat_limiter = KeyedRateLimiter(chat_qps, clock=clock, sleep=sleep)
        self._chat_order = KeyedLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LarkClient:
        """The client for the app and limits in ``BOT_IDENTITY`` / ``LARK_CARDS``."""
        return cls(
            app_id=settings.app_id,
            app_secret=settings.app_secret,
            base_url=settings.base_url,
            timeout=settings.request_timeout,
            chat_qps=settings.chat_qps,
            app_qps=settings.app_qps,
            max_retries=settings.max_retries,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the one ``ClientSession``; it binds to the running loop, hence async."""
        if self._session is None or self._session.closed:
            # UTF-8 bodies, not \uXXXX escapes: the 30 KB card limit counts request bytes, and
            # ASCII-escaping would make a Chinese card twice its budgeted size (§4.1).
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                json_serialize=functools.partial(json.dumps, ensure_ascii=False),
            )

    async def close(self) -> None:
        """Close the session; safe to call twice."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- token (§3) ------------------------------------------------------------------------

    async def tenant_token(self) -> str:
        """Return a cached tenant token, fetching a new one when it is about to expire.

        The expiry is re-checked after taking the lock so that concurrent callers that all
        saw a stale token trigger a single fetch (aesthetics.md lesson 8).
        """
        if self._token is not None and self._clock() < self._token_refresh_at:
            return self._token
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_refresh_at:
                return self._token
            fetched_at = self._clock()
            body = await self._call(
                "POST",
                TOKEN_PATH,
                json_body={"app_id": self._app_id, "app_secret": self._app_secret},
                auth=False,
            )
            token, expire = body.get("tenant_access_token"), body.get("expire")
            if not isinstance(token, str) or not isinstance(expire, int | float):
                raise LarkAPIError(NO_FEISHU_CODE, "token response lacks token or expire")
            # Refresh once fewer than min(30 min, half the lifetime) remain (§3).
            self._token_refresh_at = fetched_at + expire - min(REFRESH_MARGIN, expire / 2)
            self._token = token
            return token

    def _drop_token(self, token: str) -> None:
        # Only drop the token that failed: another caller may already have fetched a new one.
        if self._token == token:
            self._token = None

    # -- generic request -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: aiohttp.FormData | None = None,
        auth: bool = True,
        timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 - aiohttp applies it
    ) -> dict[str, Any]:
        """Call ``path`` with retries; return the whole body (``code == 0``) or raise.

        ``data`` is re-sent as-is on a retry; pass file contents as ``bytes`` so every
        attempt can read them again. ``timeout`` replaces the session's for each attempt
        (uploads need longer than JSON calls).
        """
        return await self._call(
            method, path, params=params, json_body=json, data=data, auth=auth, http_timeout=timeout
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: aiohttp.FormData | None = None,
        auth: bool = True,
        chat: str | None = None,
        http_timeout: aiohttp.ClientTimeout | None = None,
    ) -> dict[str, Any]:
        """The retry loop. With ``chat`` set, every attempt is paced by the app and per-chat
        limiters, because Feishu counts retries against the same limits (§4.4)."""
        url = self._base_url + path
        retries = 0
        token_refetched = False
        while True:
            if chat is not None:
                await self._app_limiter.acquire()
                await self._chat_limiter.acquire(chat)
            token = await self.tenant_token() if auth else None
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                return await self._attempt(
                    method, url, path, params, json_body, data, headers, retries, http_timeout
                )
            except LarkAPIError as err:
                error, wait = err, self._retry_wait(err, retries)
                if token and err.code in TOKEN_INVALID and not token_refetched:
                    # §3: drop the cached token, refetch, retry once (not a backoff retry).
                    self._drop_token(token)
                    token_refetched = True
                    continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                # str(exc), never repr: a repr can include request_info with its headers.
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                error = LarkAPIError(NO_FEISHU_CODE, f"network error: {detail}")
                error.__cause__ = exc
                wait = self._backoff(retries)
            if wait is None or retries >= self._max_retries:
                raise error
            retries += 1
            log.warning(
                "Feishu %s %s failed (code %s, log_id %s); retry %d/%d in %.1f s",
                method, path, error.code, error.log_id, retries, self._max_retries, wait,
            )  # fmt: skip
            await self._sleep(wait)

    async def _attempt(
        self,
        method: str,
        url: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: aiohttp.FormData | None,
        headers: dict[str, str],
        attempt: int,
        http_timeout: aiohttp.ClientTimeout | None = None,
    ) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("LarkClient.start() must be awaited before making requests")
        # Passed only when set: ``timeout=None`` would mean "no timeout at all" to aiohttp.
        extra: dict[str, Any] = {} if http_timeout is None else {"timeout": http_timeout}
        async with self._session.request(
            method, url, params=params, json=json_body, data=data, headers=headers, **extra
        ) as resp:
            raw = await resp.read()
            status, resp_headers = resp.status, resp.headers
        try:
            body = decode_response(status, resp_headers, raw)
        except LarkAPIError as err:
            log.debug(_ATTEMPT_LOG, method, path, err.code, err.log_id, attempt)
            raise
        log.debug(_ATTEMPT_LOG, method, path, 0, resp_headers.get("X-Tt-Logid"), attempt)
        return body

    def _retry_wait(self, err: LarkAPIError, retries: int) -> float | None:
        """Seconds to wait before retrying ``err``, or None when retrying cannot help (§4.4)."""
        if err.http_status == 429 or err.code == GATEWAY_RATE_LIMITED:
            if err.retry_after is not None:
                return min(MAX_RESET_WAIT, err.retry_after)
            return self._backoff(retries)
        if err.http_status >= 500 or err.code in RETRYABLE:
            return self._backoff(retries)
        return None

    def _backoff(self, retries: int) -> float:
        return min(BACKOFF_CAP, BACKOFF_START * 2**retries) + self._jitter()

    # -- messages (§4.1, §4.2) -------------------------------------------------------------

    async def send_message(
        self,
        receive_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        receive_id_type: str = "chat_id",
        uuid: str | None = None,
        chat_key: str | None = None,
    ) -> dict[str, Any]:
        """Create a message; returns ``data`` (``message_id``, ``chat_id``, ...).

        ``chat_key`` names the conversation for ordering and the 5 QPS limit when it differs
        from ``receive_id`` (a person's open_id for their direct chat with the bot), so new
        messages and replies into one chat share one turn and one rate window."""
        body = {
            "receive_id": receive_id,
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),  # Feishu wants a JSON string
            "uuid": _check_uuid(uuid),  # one per logical send: every retry reuses it
        }
        # Taking the chat lock is the first await, so sends leave in the order they started.
        chat = chat_key or receive_id
        async with self._chat_order.hold(chat):
            resp = await self._call(
                "POST",
                MESSAGES_PATH,
                params={"receive_id_type": receive_id_type},
                json_body=body,
                chat=chat,
            )
        return resp.get("data") or {}

    async def reply_message(
        self,
        message_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        chat_id: str,
        reply_in_thread: bool = False,
        uuid: str | None = None,
    ) -> dict[str, Any]:
        """Reply to ``message_id``; ``chat_id`` is where it lands, for ordering and limits."""
        body = {
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),
            "reply_in_thread": reply_in_thread,
            "uuid": _check_uuid(uuid),
        }
        async with self._chat_order.hold(chat_id):
            resp = await self._call(
                "POST",
                f"{MESSAGES_PATH}/{_seg(message_id)}/reply",
                json_body=body,
                chat=chat_id,
            )
        return resp.get("data") or {}

    # -- lookups ---------------------------------------------------------------------------

    async def bot_info(self) -> dict[str, Any]:
        """The bot's own identity (``open_id``, ``app_name``); this endpoint has no ``data``."""
        return (await self.request("GET", "/open-apis/bot/v3/info")).get("bot") or {}

    async def user_info(self, open_id: str) -> dict[str, Any]:
        """A user's contact record (needs a contact scope; callers should expect errors)."""
        resp = await self.request(
            "GET",
            f"/open-apis/contact/v3/users/{_seg(open_id)}",
            params={"user_id_type": "open_id"},
        )
        return (resp.get("data") or {}).get("user") or {}

    async def chat_info(self, chat_id: str) -> dict[str, Any]:
        """A chat's details (name, chat_mode, ...)."""
        resp = await self.request("GET", f"/open-apis/im/v1/chats/{_seg(chat_id)}")
        return resp.get("data") or {}

    async def list_chats(self) -> list[dict[str, Any]]:
        """Every chat the bot is in, following ``page_token`` until ``has_more`` is false."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": 100}
        while True:
            data = (await self.request("GET", "/open-apis/im/v1/chats", params=params)).get(
                "data"
            ) or {}
            items.extend(data.get("items") or [])
            page_token = data.get("page_token")
            if (
                not data.get("has_more") or not page_token or page_token == params.get("page_token")
            ):  # the last check stops a server that repeats a page from looping us forever
                return items
            params = {"page_size": 100, "page_token": page_token}


def _check_uuid(value: str | None) -> str:
    if value is None:
        return uuidlib.uuid4().hex  # 32 chars
    if len(value) > MAX_UUID_LEN:
        raise ValueError(f"uuid must be at most {MAX_UUID_LEN} characters (§4.1)")
    return value


def _seg(value: str) -> str:
    """Quote an id for use as one path segment, so it can never add path components."""
    return quote(value, safe="")
