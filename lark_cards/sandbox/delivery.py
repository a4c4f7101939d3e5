"""Build Feishu event envelopes and deliver them the way Feishu does (acked in time, retried).

:func:`message_envelope` and :func:`card_action_envelope` build schema 2.0 bodies
(docs/feishu-platform.md §1.2-1.3, §6.1); :func:`event_request` encrypts and signs them
(§1.6-1.7). :class:`Deliverer` pushes them over a :class:`Channel`: an event that is not
acked within 3 s is pushed again after 15 s, 5 min, 1 h and 6 h (§1.8; the delays are
configurable so tests use short ones), a card callback is sent once and its answer returned
(§6.1). Feishu applies the same ladder to both of its transports, so it is written once here
and the channel only says how one push went: :class:`HttpChannel` POSTs to the bot's event
URL (webhook mode); the long connection's hub (:mod:`.longconn`, §2.2) writes frames to a
WebSocket and waits for the ack frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from lark_cards.api.errors import (
    CALLBACK_BAD_BODY,
    CALLBACK_BAD_STATUS,
    CALLBACK_TIMEOUT,
    CALLBACK_UNREACHABLE,
)
from lark_cards.transport.security import encrypt, signature

log = logging.getLogger(__name__)

ACK_DEADLINE = 3.0  # §1.8: HTTP 200 within 3 s, else the push failed
RETRY_DELAYS = (15.0, 300.0, 3600.0, 21600.0)  # §1.8: at most 4 retries

# How one push went: the answer's status (HTTP status, or an ack frame's ``code``) and body,
# or (None, None, problem) when there was no answer; problem "timeout" when it came too late.
Outcome = tuple[int | None, bytes | None, str | None]
TIMEOUT = "timeout"
ANSWER_KEPT = 300  # characters of the bot's answer an attempt keeps (it says why it refused)


def message_envelope(
    text: str,
    *,
    chat_id: str,
    sender_open_id: str,
    chat_type: str = "group",
    message_id: str | None = None,
    event_id: str | None = None,
    mentions: Sequence[dict[str, Any]] = (),
    app_id: str = "cli_sandbox",
    token: str | None = None,
) -> dict[str, Any]:
    """A schema 2.0 ``im.message.receive_v1`` envelope (docs/feishu-platform.md §1.2-1.3)."""
    now_ms = str(int(time.time() * 1000))
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or secrets.token_hex(16),
            "event_type": "im.message.receive_v1",
            "create_time": now_ms,
            "token": token or "",
            "app_id": app_id,
            "tenant_key": "sandbox",
        },
        "event": {
            "sender": {
                "sender_id": {"open_id": sender_open_id, "union_id": "", "user_id": ""},
                "sender_type": "user",
                "tenant_key": "sandbox",
            },
            "message": {
                "message_id": message_id or "om_" + secrets.token_hex(16),
                "root_id": "",
                "parent_id": "",
                "create_time": now_ms,
                "update_time": now_ms,
                "chat_id": chat_id,
                "thread_id": "",
                "chat_type": chat_type,
                "message_type": "text",
                "content": json.dumps({"text": text}, ensure_ascii=False),
                "mentions": list(mentions),
            },
        },
    }


def card_action_envelope(
    action: dict[str, Any],
    *,
    operator_open_id: str,
    message_id: str,
    chat_id: str,
    app_id: str = "cli_sandbox",
    token: str | None = None,
) -> dict[str, Any]:
    """A schema 2.0 ``card.action.trigger`` callback for a click on ``message_id`` (§6.1).

    ``action`` is what the component carries: ``{"tag": "button", "value": {…}, "name": …}``.
    """
    return {
        "schema": "2.0",
        "header": {
            "event_id": secrets.token_hex(16),
            "token": token or "",
            "create_time": str(int(time.time() * 1_000_000)),  # §6.1: microseconds
            "event_type": "card.action.trigger",
            "tenant_key": "sandbox",
            "app_id": app_id,
        },
        "event": {
            "operator": {
                "tenant_key": "sandbox",
                "user_id": "",
                "open_id": operator_open_id,
                "union_id": "",
            },
            "token": "c-" + secrets.token_hex(16),  # the delayed-update token
            "action": action,
            "host": "im_message",
            "context": {"open_message_id": message_id, "open_chat_id": chat_id},
        },
    }


def event_request(
    payload: dict[str, Any], *, encrypt_key: str | None, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of the POST Feishu would make for ``payload`` (§1.6-1.7).

    With an encrypt key the body is ``{"encrypt": …}`` and the request carries the
    timestamp/nonce/signature headers computed over the exact body bytes.
    """
    headers = {"Content-Type": "application/json; charset=utf-8"}
    plain = json.dumps(payload, ensure_ascii=False).encode()
    if not encrypt_key:
        return plain, headers
    body = json.dumps({"encrypt": encrypt(encrypt_key, plain)}).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = secrets.token_hex(8)
    headers |= {
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(ts, nonce, encrypt_key, body),
    }
    return body, headers


@dataclass(frozen=True)
class Attempt:
    """One push of an event: ``status`` is the HTTP status (or ack frame code), None when
    there was no answer; ``answer`` the start of the bot's answer body, which says why it
    refused (``{"error": "signature mismatch"}``): Feishu's console only says "failed", the
    sandbox can do better."""

    event_id: str
    number: int  # 0 for the first push, 1.. for retries
    status: int | None
    error: str | None = None
    answer: str | None = None

    @property
    def acked(self) -> bool:
        return self.status == 200

    @property
    def outcome(self) -> str:
        """One line on how this push went, for the page and the log."""
        if self.acked:
            return "acked"
        if self.status is None:
            return "no answer in time" if self.error == TIMEOUT else self.error or "no answer"
        said = f"the bot answered {self.status}"
        return f"{said}: {self.answer}" if self.answer else said


def kept_answer(raw: bytes | None) -> str | None:
    """The first :data:`ANSWER_KEPT` characters of an answer body, on one line."""
    if not raw:
        return None
    text = " ".join(raw[: 4 * ANSWER_KEPT].decode("utf-8", "replace").split())
    return text if len(text) <= ANSWER_KEPT else text[: ANSWER_KEPT - 1] + "…"


@dataclass(frozen=True)
class CallbackAnswer:
    """The bot's answer to a card callback: its JSON body, or Feishu's client error code."""

    body: dict[str, Any] | None
    error_code: int | None = None
    error: str | None = None


class Channel(Protocol):
    """One way of getting a payload to the bot and its answer back."""

    async def post(self, payload: dict[str, Any]) -> Outcome:
        """Push ``payload`` once; never raises for the bot's failures (they are the Outcome)."""
        ...

    async def close(self) -> None: ...


class HttpChannel:
    """Webhook mode: POST to the bot's event URL, encrypted and signed when there is a key."""

    def __init__(self, url: str | None, *, encrypt_key: str | None, ack_deadline: float) -> None:
        self.url = url
        self.encrypt_key = encrypt_key
        self.ack_deadline = ack_deadline
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, payload: dict[str, Any]) -> Outcome:
        if not self.url:
            return None, None, "no bot event URL is configured"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body, headers = event_request(payload, encrypt_key=self.encrypt_key)
        timeout = aiohttp.ClientTimeout(total=self.ack_deadline)
        try:
            async with self._session.post(
                self.url, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read(), None
        except TimeoutError:
            return None, None, TIMEOUT
        except aiohttp.ClientError as exc:
            return None, None, f"{type(exc).__name__}: {exc}"


class Deliverer:
    """Pushes events and card callbacks to the bot the way Feishu does.

    Over ``channel`` when one is given (the long connection's hub, which the caller owns and
    closes), else by POSTing to ``url`` (an :class:`HttpChannel` this deliverer owns).
    """

    def __init__(
        self,
        url: str | None,
        *,
        encrypt_key: str | None = None,
        ack_deadline: float = ACK_DEADLINE,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        channel: Channel | None = None,
    ) -> None:
        self.url = url
        self.encrypt_key = encrypt_key
        self.ack_deadline = ack_deadline
        self.retry_delays = tuple(retry_delays)
        self.attempts: list[Attempt] = []
        self._sleep = sleep
        self._owned = channel is None
        self.channel: Channel = channel or HttpChannel(
            url, encrypt_key=encrypt_key, ack_deadline=ack_deadline
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop pending retries, and close the channel when it is this deliverer's own."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._owned:
            await self.channel.close()

    def push(
        self, payload: dict[str, Any], on_attempt: Callable[[Attempt], None] | None = None
    ) -> asyncio.Task[None]:
        """Deliver an event in the background, retrying until it is acked or retries run out."""
        task = asyncio.create_task(self._deliver(payload, on_attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(
        self, payload: dict[str, Any], on_attempt: Callable[[Attempt], None] | None
    ) -> None:
        event_id = payload["header"]["event_id"]
        for number, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                await self._sleep(delay)
            status, raw, problem = await self.channel.post(payload)
            attempt = Attempt(event_id, number, status, problem, kept_answer(raw))
            self.attempts.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if attempt.acked:
                return
            log.info("Event %s not acked (%s); attempt %d", event_id, attempt.outcome, number + 1)
        log.warning("Event %s dropped after %d attempts", event_id, len(self.retry_delays) + 1)

    async def callback(self, payload: dict[str, Any]) -> CallbackAnswer:
        """Send a card callback once and return the bot's answer (§6.1: no retries)."""
        status, raw, problem = await self.channel.post(payload)
        if status is None:
            code = CALLBACK_TIMEOUT if problem == TIMEOUT else CALLBACK_UNREACHABLE
            return CallbackAnswer(None, code, problem)
        if status != 200:
            return CallbackAnswer(None, CALLBACK_BAD_STATUS, f"the bot answered {status}")
        try:
            body = json.loads(raw or b"{}") if (raw or b"").strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return CallbackAnswer(None, CALLBACK_BAD_BODY, "the answer is not a JSON object")
        return CallbackAnswer(body)
