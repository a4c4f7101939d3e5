"""Async Feishu Open API client: tenant token cache, retries, rate limits — one request path.

Here once: the tenant token (``api.token``, §3); transient failures retried with capped,
jittered backoff until a deadline, reusing the message ``uuid`` so a retry never posts twice
(§4.1, §4.4); sends paced to the per-app and per-chat limits, card updates per message (§4.3).
Per-chat *order* is kept by the delivery path (``lark_cards.outbound``), which holds a chat's
turn for a whole send, retries included. Every call goes through :meth:`LarkClient._request`,
the one place that touches the network (gidgethub's seam): tests replace it with a fake Open
Platform. ``§x.y`` is docs/feishu-platform.md; clock, sleep and jitter are injected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import random
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from .errors import (
    NO_FEISHU_CODE,
    TOKEN_INVALID,
    LarkAPIError,
    backoff,
    credentials_checked,
    decode_response,
    is_error_body,
    retry_delay,
)
from .ratelimit import Clock, KeyedRateLimiter, RateLimiter, Sleep
from .token import TOKEN_PATH, TenantToken

if TYPE_CHECKING:
    from lark_cards.settings import Settings

log = logging.getLogger(__name__)

MESSAGES_PATH = "/open-apis/im/v1/messages"  # §4.1, §4.2

MAX_UUID_LEN = 50  # §4.1
PATCH_QPS = 5.0  # §4.3: card updates, per message
# How long a failing call keeps being retried (capped, jittered backoff) before it is given
# up. A message is Errbot's answer to someone: worth ten minutes of Feishu trouble, and its
# chat waits meanwhile (order is kept). A look-up blocks a plugin thread: half a minute.
SEND_DEADLINE = 600.0
REQUEST_DEADLINE = 30.0
MAX_PAGES = 1000  # 100,000 chats or members at 100 a page: more than any bot is in
MAX_JSON_BYTES = 16 * 1024 * 1024  # no Open API JSON answer is near this; a body past it is cut
# Never log bodies, params or headers: they carry the app secret, tokens and message content.
_ATTEMPT_LOG = "Feishu %s %s -> code %s (log_id %s, attempt %d)"


Form = Callable[[], aiohttp.FormData]


@dataclasses.dataclass(frozen=True)
class Call:
    """One Open API request as the retry loop re-sends it. ``data`` (a multipart upload) is
    a function making the form, called per attempt: aiohttp sends a form once. With
    ``binary_limit`` set the answer is bytes (a download), returned as ``{"raw": …}``."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    data: Form | None = None
    timeout: aiohttp.ClientTimeout | None = None  # replaces the session's, per attempt
    binary_limit: int | None = None


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
        app_qps: float = 45.0,
        send_deadline: float = SEND_DEADLINE,
        request_deadline: float = REQUEST_DEADLINE,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if send_deadline < 0 or request_deadline < 0:
            raise ValueError("deadlines must be >= 0")
        self._app_id = app_id
        self._app_secret = app_secret
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._send_deadline = send_deadline
        self._request_deadline = request_deadline
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._session: aiohttp.ClientSession | None = None
        self._token = TenantToken(self._fetch_token, clock)
        self._app_limiter = RateLimiter(app_qps, clock=clock, sleep=sleep)
        self._chat_limiter = KeyedRateLimiter(
            functools.partial(RateLimiter, chat_qps, clock=clock, sleep=sleep)
        )
        self._patch_limiter = KeyedRateLimiter(
            functools.partial(RateLimiter, PATCH_QPS, clock=clock, sleep=sleep)
        )

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
            send_deadline=settings.send_deadline,
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

    async def tenant_token(self) -> str:
        """The tenant token every call carries (cached, see ``api.token``)."""
        return await self._token.get()

    async def _fetch_token(self) -> dict[str, Any]:
        body = {"app_id": self._app_id, "app_secret": self._app_secret}
        try:  # a refused id or secret becomes CredentialsRejected: fatal for the backend
            return await self._call(Call("POST", TOKEN_PATH, json_body=body), auth=False)
        except LarkAPIError as error:
            raise credentials_checked(error) from error.__cause__

    # -- generic request -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Form | None = None,
        auth: bool = True,
        timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 - aiohttp applies it
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """Call ``path`` with retries; return the whole body (``code == 0``) or raise.
        ``timeout`` replaces the session's for each attempt (uploads need longer);
        ``deadline`` bounds the retries (``send_deadline`` for what a message needs)."""
        call = Call(method, path, params=params, json_body=json, data=data, timeout=timeout)
        return await self._call(call, auth=auth, deadline=deadline)

    @property
    def send_deadline(self) -> float:
        """How long a message (and the upload it carries) is retried before it is given up."""
        return self._send_deadline

    async def request_bytes(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        max_bytes: int,
        timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109 - aiohttp applies it
        deadline: float | None = None,
    ) -> bytes:
        """Call ``path`` for a binary body (downloads), with the same token and retries. An
        error answered as JSON raises :class:`LarkAPIError` (``errors.is_error_body``); a
        body over ``max_bytes`` raises ``ValueError``."""
        call = Call(method, path, params=params, timeout=timeout, binary_limit=max_bytes)
        body = await self._call(call, deadline=deadline)
        raw: bytes = body["raw"]
        if len(raw) > max_bytes:
            raise ValueError(f"resource larger than {max_bytes} bytes")
        return raw

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, page_size: int = 50
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a paginated list (``page_token`` / ``has_more``), page by page.

        A server that hands back a page token it gave before would loop us forever: the
        listing ends there instead, and after ``MAX_PAGES`` pages in any case.
        """
        query: dict[str, Any] = {**(params or {}), "page_size": page_size}
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            data = (await self.request("GET", path, params=query)).get("data") or {}
            for item in data.get("items") or ():
                yield item
            token = data.get("page_token")
            if not data.get("has_more") or not token or token in seen:
                return
            seen.add(token)
            query = {**query, "page_token": token}
        log.warning("Feishu GET %s: stopped after %d pages", path, MAX_PAGES)

    async def _call(
        self,
        call: Call,
        *,
        auth: bool = True,
        chat: str | None = None,
        patched: str | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any]:
        """The retry loop: transient failures are retried with capped, jittered backoff
        until ``deadline`` seconds have passed (the request deadline by default); then the
        last error is raised. With ``chat`` set, every attempt is paced by the app and
        per-chat limiters, because Feishu counts retries against the same limits (§4.4);
        ``patched`` paces a card update by its message."""
        give_up_at = self._clock() + (self._request_deadline if deadline is None else deadline)
        retries = 0
        token_refetched = False
        while True:
            # The token before the slots: a fetch between them would delay the send past it.
            token = await self.tenant_token() if auth else None
            if chat is not None:
                # The chat's slot first: an app slot taken while waiting for the chat would
                # be counted long before the send goes out, and a later second carry more.
                await self._chat_limiter.acquire(chat)
                await self._app_limiter.acquire()
            if patched is not None:
                await self._patch_limiter.acquire(patched)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                return await self._attempt(call, headers, retries)
            except LarkAPIError as err:
                error, wait = err, retry_delay(err, retries, self._jitter)
                if token and err.code in TOKEN_INVALID and not token_refetched:
                    # §3: drop the cached token, refetch, retry once (not a backoff retry): a
                    # fresh token has ≥ 30 min left, longer than any call's retries.
                    self._token.drop(token)
                    token_refetched = True
                    continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                # str(exc), never repr: a repr can include request_info with its headers.
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                error = LarkAPIError(NO_FEISHU_CODE, f"network error: {detail}")
                error.__cause__ = exc
                wait = backoff(retries, self._jitter)
            if wait is None or self._clock() + wait > give_up_at:
                raise error
            retries += 1
            log.warning(
                "Feishu %s %s failed (code %s, log_id %s); retry %d in %.1f s",
                call.method, call.path, error.code, error.log_id, retries, wait,
            )  # fmt: skip
            await self._sleep(wait)

    async def _attempt(self, call: Call, headers: dict[str, str], attempt: int) -> dict[str, Any]:
        binary = call.binary_limit is not None
        status, resp_headers, raw = await self._request(
            call.method,
            self._base_url + call.path,
            params=call.params,
            json_body=call.json_body,
            data=call.data() if call.data is not None else None,
            headers=headers,
            timeout=call.timeout,
            max_bytes=call.binary_limit if call.binary_limit is not None else MAX_JSON_BYTES,
        )
        try:
            if binary and status < 400 and not is_error_body(resp_headers, raw):
                body = {"raw": raw}
            else:
                body = decode_response(status, resp_headers, raw)
        except LarkAPIError as err:
            log.debug(_ATTEMPT_LOG, call.method, call.path, err.code, err.log_id, attempt)
            raise
        log.debug(_ATTEMPT_LOG, call.method, call.path, 0, resp_headers.get("X-Tt-Logid"), attempt)
        return body

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: aiohttp.FormData | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout | None,  # noqa: ASYNC109 - aiohttp applies it
        max_bytes: int,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange: ``(status, headers, body)``, the body read up to one byte past
        ``max_bytes``. The only method that touches the network; tests override it."""
        if self._session is None:
            raise RuntimeError("LarkClient.start() must be awaited before making requests")
        # Passed only when set: ``timeout=None`` would mean "no timeout at all" to aiohttp.
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        async with self._session.request(
            method, url, params=params, json=json_body, data=data, headers=headers, **extra
        ) as resp:
            raw = await read_limited(resp.content, max_bytes)
            return resp.status, resp.headers, raw

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
        """Create a message; returns ``data`` (``message_id``, …). ``chat_key`` names the
        conversation for the 5 QPS window when it is not ``receive_id`` (a direct chat)."""
        body = {
            "receive_id": receive_id,
            "msg_type": msg_type,
            "content": json.dumps(content, ensure_ascii=False),  # Feishu wants a JSON string
            "uuid": _check_uuid(uuid),  # one per logical send: every retry reuses it
        }
        params = {"receive_id_type": receive_id_type}
        call = Call("POST", MESSAGES_PATH, params=params, json_body=body)
        resp = await self._call(call, chat=chat_key or receive_id, deadline=self._send_deadline)
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
        call = Call("POST", f"{MESSAGES_PATH}/{_seg(message_id)}/reply", json_body=body)
        resp = await self._call(call, chat=chat_id, deadline=self._send_deadline)
        return resp.get("data") or {}

    async def update_message(self, message_id: str, card: Mapping[str, Any]) -> None:
        """Replace a sent card's content (``PATCH``, §4.3), paced per message. A 2.0 card is
        always shared; a 1.0 card needs ``config.update_multi`` in both versions."""
        body = {"content": json.dumps(card, ensure_ascii=False)}
        call = Call("PATCH", f"{MESSAGES_PATH}/{_seg(message_id)}", json_body=body)
        await self._call(call, patched=message_id, deadline=self._send_deadline)


async def read_limited(content: aiohttp.StreamReader, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of a body, so callers can tell "too big" apart; chunks
    joined until the end or the limit (``read(n)`` returns only what is buffered)."""
    body = bytearray()
    async for chunk in content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            break
    return bytes(body[: max_bytes + 1])


def _check_uuid(value: str | None) -> str:
    if value is not None and len(value) > MAX_UUID_LEN:
        raise ValueError(f"uuid must be at most {MAX_UUID_LEN} characters (§4.1)")
    return uuidlib.uuid4().hex if value is None else value  # a new one has 32 characters


def _seg(value: str) -> str:
    """Quote an id for use as one path segment, so it can never add path components."""
    return quote(value, safe="")
