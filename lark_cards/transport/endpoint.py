"""Long connection set-up, pure: what discovery answered, what a refused handshake means, and
how long to wait before the next try.

Discovery is ``POST {domain}/callback/ws/endpoint`` with ``{"AppID", "AppSecret"}``; the answer
carries the WebSocket URL (with ``device_id``, ``service_id`` and a ticket, new every time)
and a ``ClientConfig`` that pongs may update later (docs/feishu-platform.md §2.2). Everything
here turns bytes or headers into values or into one of two errors: :class:`Fatal` (a retry
cannot help: wrong credentials, not a self-built app, 50 connections already) and
:class:`Transient` (try again after :class:`Backoff`). A fatal error's message says what to
fix, because it is the one line the user reads before the bot stops.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lark_cards.api.errors import (
    WS_AUTH_FAILED,
    WS_CONNECTION_LIMIT,
    WS_FORBIDDEN,
    WS_TRANSIENT,
)

ENDPOINT_PATH = "/callback/ws/endpoint"
LIVENESS_GRACE = 5.0  # at most this beyond two ping intervals before a silent socket is dead
_CREDENTIALS = "check BOT_IDENTITY['app_id'] and ['app_secret']"
_SELF_BUILT = (
    "the app must be a self-built (企业自建) Feishu app with events and callbacks set to "
    "'persistent connection'; Lark international apps use mode 'webhook'"
)


_SERVICE_ID = re.compile(r"-?[0-9]{1,10}")  # an int32 (§2.2: ping frames carry it)


class Fatal(Exception):
    """A long-connection problem a retry cannot fix; the message names what to change."""


class Transient(Exception):
    """A long-connection problem worth retrying (network, Feishu busy, a dropped socket)."""


class Forbidden(Transient):
    """A handshake refused as forbidden (403). Fatal for the official SDKs, but a stale
    ticket may look the same (UNCONFIRMED), so it is fatal only when fresh discoveries keep
    getting it: :data:`FORBIDDEN_TRIES` in a row."""


FORBIDDEN_TRIES = 3


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Feishu's timing for the connection, in seconds (§2.2; the SDKs' defaults)."""

    ping_interval: float = 120.0
    reconnect_count: int = -1  # -1 = forever; we never give up on a transient failure
    reconnect_interval: float = 120.0
    reconnect_nonce: float = 30.0

    def updated(self, raw: Any) -> ClientConfig:
        """These values with what Feishu sent (discovery's ``ClientConfig``, a pong's
        payload); a missing or nonsensical value keeps the one we had."""
        if not isinstance(raw, Mapping):
            return self
        changes: dict[str, Any] = {}
        for key, name, lowest in (
            ("PingInterval", "ping_interval", 1.0),
            ("ReconnectInterval", "reconnect_interval", 1.0),
            ("ReconnectNonce", "reconnect_nonce", 0.0),
        ):
            value = _number(raw.get(key))
            if value is not None and lowest <= value <= 86400:
                changes[name] = value
        count = _number(raw.get("ReconnectCount"))
        if count is not None and -1 <= count <= 1e6 and count == int(count):
            changes["reconnect_count"] = int(count)
        return replace(self, **changes) if changes else self

    def to_json(self) -> dict[str, float]:
        """Feishu's spelling (discovery's ``ClientConfig``, a pong's payload): what the
        sandbox sends. Whole numbers are written as integers, as Feishu does."""
        values = (
            ("ReconnectCount", self.reconnect_count),
            ("ReconnectInterval", self.reconnect_interval),
            ("ReconnectNonce", self.reconnect_nonce),
            ("PingInterval", self.ping_interval),
        )
        return {name: int(v) if float(v).is_integer() else v for name, v in values}

    @property
    def liveness(self) -> float:
        """Seconds without any frame after which the socket is taken for dead: a pong is
        due every ping interval, so two missed pongs plus a grace (5 s, or one interval
        when pings are more frequent)."""
        return 2 * self.ping_interval + min(LIVENESS_GRACE, self.ping_interval)


def _number(value: Any) -> float | None:
    """A finite JSON number as a float (a bool is no number here); None for anything else,
    an integer too large for a float included."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect: the URL exactly as discovery gave it, and what it names."""

    url: str
    device_id: str
    service_id: int
    config: ClientConfig


def read_endpoint(status: int, body: bytes, config: ClientConfig) -> Endpoint:
    """Discovery's HTTP status and body → an :class:`Endpoint`, or Fatal / Transient."""
    if status == 429 or status >= 500:
        raise Transient(f"endpoint discovery answered HTTP {status}")
    if status != 200:
        raise Fatal(
            f"endpoint discovery answered HTTP {status}: check BOT_IDENTITY['domain'] "
            f"(it must be Feishu's Open Platform); {_SELF_BUILT}"
        )
    try:
        answer = json.loads(body)
    except ValueError:
        raise Transient("endpoint discovery answered with a body that is not JSON") from None
    if not isinstance(answer, Mapping):
        raise Transient("endpoint discovery answered with a body that is not a JSON object")
    code, message = answer.get("code"), str(answer.get("msg") or "")[:200]
    if code in WS_TRANSIENT:
        raise Transient(f"endpoint discovery: Feishu is busy ({code} {message})")
    if code != 0:
        raise Fatal(f"Feishu refused the long connection ({code} {message}): {_CREDENTIALS}")
    data = answer.get("data")
    if not isinstance(data, Mapping):
        raise Transient("endpoint discovery answered without data")
    url = data.get("URL")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:  # e.g. "ws://[::1/": never the URL in the message (it holds a ticket)
        parts = None
    if not isinstance(url, str) or parts is None or parts.scheme not in ("ws", "wss"):
        raise Transient("endpoint discovery answered without a WebSocket URL")
    query = parse_qs(parts.query)
    device_id = (query.get("device_id") or [""])[0]
    service = (query.get("service_id") or [""])[0]
    if not _SERVICE_ID.fullmatch(service):
        raise Transient("the WebSocket URL names no service_id")
    return Endpoint(url, device_id, int(service), config.updated(data.get("ClientConfig")))


def handshake_error(status: int, headers: Mapping[str, str]) -> Fatal | Transient:
    """What a refused WebSocket upgrade means: Feishu explains it in ``handshake-*`` headers
    (§2.2). A full connection quota is fatal, a forbidden app :class:`Forbidden`; the rest is
    retried."""
    code = headers.get("handshake-status", "")
    message = headers.get("handshake-msg", "")[:200]
    auth = headers.get("handshake-autherrcode", "")
    said = f"handshake refused: HTTP {status}, status {code or '-'} {message}".rstrip()
    if code == str(WS_AUTH_FAILED) and auth == str(WS_CONNECTION_LIMIT):
        return Fatal(
            f"{said}: the app already has Feishu's limit of 50 long connections; stop the "
            f"other bot processes using this app_id (or old ones still running)"
        )
    if code == str(WS_FORBIDDEN):
        return Forbidden(f"{said}: {_SELF_BUILT}")
    return Transient(said)


class Backoff:
    """Waits between connection attempts: jittered, growing, bounded by Feishu's config.

    After a connection that worked is lost, the first try waits a random share of
    ``ReconnectNonce`` (Feishu asks this so its clients do not all come back at once, §2.2);
    each failed try after that waits "equal jitter" exponential backoff: half of
    ``min(ReconnectInterval, first × 2^n)`` plus a random share of the other half, so however
    Feishu's numbers are set, tries are at least ``first / 2`` apart.
    """

    def __init__(self, *, first: float = 1.0, rand: Callable[[], float] = random.random) -> None:
        self.first = first
        self._rand = rand

    def after_drop(self, config: ClientConfig) -> float:
        return self._rand() * config.reconnect_nonce

    def after_failure(self, failures: int, config: ClientConfig) -> float:
        """The wait after ``failures`` (≥ 1) tries in a row failed."""
        window = min(config.reconnect_interval, self.first * 2 ** min(failures - 1, 30))
        window = max(window, self.first)
        return window / 2 + self._rand() * window / 2
