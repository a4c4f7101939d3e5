"""The aiohttp app that receives Feishu event callbacks: authenticate, ack, hand off.

:func:`authenticate` is the whole decision, pure and synchronous (raw bytes + headers + time in,
a parsed callback or :class:`Rejected` out), so every rule can be tested on bytes; the request
handler is a thin translator around it. Order, following docs/feishu-platform.md §1:

1. body size (aiohttp's ``client_max_size`` → 413), raw bytes → JSON object;
2. ``{"encrypt": ...}``: signature over the *raw* bytes **before** decrypting (§1.7), then
   decrypt (§1.6); unsigned bodies may only be a URL challenge, which Feishu does not sign
   (§1.1); with an Encrypt Key configured, a plain body is refused so nobody skips the signature;
3. envelope shape, then the Verification Token in constant time (§1.5), then the app: an
   envelope naming another app in ``header.app_id`` (§1.2) is refused with a 403; envelopes
   that name none (the URL challenge, §1.1) pass;
4. challenge → echo it; any other envelope goes to ``reception.Reception`` (shared with the
   long connection): dedup on event id and message id (§1.8) → 200, dispatch scheduled off
   the request so the 3 s ack deadline (§1.8) never waits for a command; a card callback's
   200 carries its answer (a toast, maybe a card), the same for a retry, which is not
   dispatched again.

Every failure is a JSON ``{"error": ...}`` 4xx; no input is meant to produce a 5xx. A refusal
that means the bot's keys and the app's disagree (no or another Encrypt Key, another
Verification Token, another app) is logged at WARNING with what to check, the first time and
then once per :data:`REFUSAL_LOG_INTERVAL` per kind: Feishu's console only says the push
failed, and retries, so a quiet log would leave the user guessing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from lark_cards.settings import Settings
from lark_cards.transport.dedup import EventClaims, MemoryClaims, TTLSet, dedup_keys
from lark_cards.transport.envelope import Envelope, UrlVerification
from lark_cards.transport.logs import LogThrottle, brief
from lark_cards.transport.reception import (
    Callback,
    Reception,
    Rejected,
    Respond,
    check_app,
    json_object,
    parse,
)
from lark_cards.transport.security import (
    BadCiphertext,
    BadSignature,
    BadToken,
    StaleRequest,
    VerificationError,
    check_token,
    decrypt,
    verify_signature,
)

__all__ = [
    "Rejected",
    "authenticate",
    "create_app",
    "dedup_keys",
]

log = logging.getLogger(__name__)

# §1.7: the three headers Feishu adds when an Encrypt Key is configured.
TIMESTAMP_HEADER = "X-Lark-Request-Timestamp"
NONCE_HEADER = "X-Lark-Request-Nonce"
SIGNATURE_HEADER = "X-Lark-Signature"
_SIGNATURE_HEADERS = (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)

# What to check when a refusal means the config and the app disagree (Rejected.check). Fixed
# strings: they name keys and console pages, never a value, and serve as LogThrottle kinds.
REFUSAL_LOG_INTERVAL = 300.0  # s between two WARNING lines of one kind
_CONSOLE = "the developer console's Events & Callbacks → Encryption Strategy"
CHECK_NO_KEY = (
    f"Feishu encrypts the events but BOT_IDENTITY has no 'encrypt_key': set it to the "
    f"Encrypt Key in {_CONSOLE}"
)
CHECK_PLAIN = (
    f"BOT_IDENTITY['encrypt_key'] is set but the event came unencrypted: set the same "
    f"Encrypt Key in {_CONSOLE} (or remove 'encrypt_key')"
)
CHECK_KEY = f"check that BOT_IDENTITY['encrypt_key'] is the Encrypt Key in {_CONSOLE}"
CHECK_TOKEN = (
    f"check that BOT_IDENTITY['verification_token'] is the Verification Token in {_CONSOLE}"
)
CHECK_CLOCK = (
    "check this machine's clock: the signed timestamp is outside LARK_CARDS['replay_window']"
)


def authenticate(
    settings: Settings, body: bytes, headers: Mapping[str, str], *, now: float
) -> Callback:
    """Turn a raw request into a trusted callback or raise :class:`Rejected`.

    ``headers`` must look names up case-insensitively (aiohttp's ``request.headers`` does);
    ``now`` is wall-clock seconds, compared with Feishu's signed timestamp.
    """
    payload = json_object(body, "body")
    key = settings.encrypt_key
    if "encrypt" not in payload:
        if key is not None:
            # A plain body would skip the signature, which only exists for encrypted ones. It
            # is refused either way; only a body shaped like Feishu's callbacks means the
            # console sends plain events (the WARNING): a scanner's {} stays a quiet 401.
            check = CHECK_PLAIN if _is_callback(payload) else None
            raise Rejected(401, "body must be encrypted", check=check)
        callback = parse(payload)
    elif key is None:
        raise Rejected(400, "encrypted body but no encrypt_key configured", check=CHECK_NO_KEY)
    elif any(name in headers for name in _SIGNATURE_HEADERS):
        try:
            verify_signature(
                body,
                timestamp=headers.get(TIMESTAMP_HEADER),
                nonce=headers.get(NONCE_HEADER),
                signature=headers.get(SIGNATURE_HEADER),
                encrypt_key=key,
                now=now,
                window=settings.replay_window,
            )
            plaintext = decrypt(key, _ciphertext(payload))
        except VerificationError as exc:
            raise _rejection(exc) from exc
        callback = parse(json_object(plaintext, "decrypted body"))
    else:
        callback = _unsigned_challenge(key, payload)
    try:
        check_token(settings.verification_token, callback.token)
    except VerificationError as exc:
        raise _rejection(exc) from exc
    check_app(settings.app_id, callback)
    return callback


def _unsigned_challenge(key: str, payload: Mapping[str, Any]) -> UrlVerification:
    """An encrypted body without signature headers: only a URL challenge may pass (§1.1).

    Every failure gets the same 401 and body. Distinct answers for "bad padding" and "bad
    JSON" would be a padding oracle that decrypts captured bodies one byte at a time.
    """
    try:
        plaintext = decrypt(key, _ciphertext(payload))
        callback = parse(json_object(plaintext, "decrypted body"))
    except (VerificationError, Rejected) as exc:
        # Most often the console's URL check with another Encrypt Key than ours.
        detail = f"unsigned and undecryptable: {exc}"
        raise Rejected(401, "unsigned request", detail, check=CHECK_KEY) from exc
    if not isinstance(callback, UrlVerification):
        raise Rejected(401, "unsigned request", "unsigned encrypted event")
    return callback


def _rejection(exc: VerificationError) -> Rejected:
    # A ciphertext that fails after a valid signature is malformed, not unauthenticated (and
    # not a wrong key: the signature proved ours is right).
    if isinstance(exc, BadCiphertext):
        return Rejected(400, str(exc))
    return Rejected(401, str(exc), check=_CHECKS.get(type(exc)))


# What each refusal of security.py says to check; a missing header is a broken client.
_CHECKS: dict[type[VerificationError], str] = {
    BadSignature: CHECK_KEY,
    BadToken: CHECK_TOKEN,
    StaleRequest: CHECK_CLOCK,
}


def _ciphertext(payload: Mapping[str, Any]) -> str:
    value = payload["encrypt"]
    if not isinstance(value, str):
        raise Rejected(400, "encrypt is not a string")
    return value


class _EventHandler:
    """The POST handler: reads the body, calls :func:`authenticate`, hands it to reception."""

    def __init__(
        self, settings: Settings, reception: Reception, clock: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._reception = reception
        self._clock = clock
        self._refusals = LogThrottle(log, REFUSAL_LOG_INTERVAL)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()  # over client_max_size → HTTPRequestEntityTooLarge → 413
        except RequestPayloadError as exc:
            # A body aiohttp cannot decode (bad gzip, broken chunking): the client's fault.
            log.debug("unreadable body from %s: %s", request.remote, brief(exc))
            return _error(400, "body could not be read")
        try:
            callback = authenticate(self._settings, body, request.headers, now=self._clock())
        except Rejected as exc:
            self._log_refusal(exc, request.remote)
            return _error(exc.status, exc.reason)
        if isinstance(callback, UrlVerification):
            return web.json_response({"challenge": callback.challenge})
        received = await self._reception.receive(callback)
        return web.json_response(received.body, status=received.status)

    def _log_refusal(self, exc: Rejected, remote: str | None) -> None:
        """A refusal that says what to check: WARNING, the first and then one per interval
        and kind; every other one (and the held-back ones) at DEBUG, since anyone who can
        reach the port decides how many there are."""
        if exc.check is not None and self._refusals.log(
            exc.check,
            logging.WARNING,
            "rejected event from %s (%d %s): %s",
            remote,
            exc.status,
            exc.detail,
            exc.check,
        ):
            return
        log.debug("rejected event from %s: %d %s", remote, exc.status, exc.detail)


def _error(status: int, reason: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": reason}, status=status, headers=headers)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Give aiohttp's own 404/405/413 the same JSON shape as ours (keeping e.g. ``Allow``)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        log.debug("rejected request from %s: %d %s", request.remote, exc.status, exc.reason)
        kept = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        return _error(exc.status, exc.reason.lower(), kept)


_BODY_HEADERS = frozenset({"content-type", "content-length"})


async def _healthz(request: web.Request) -> web.Response:
    """Liveness for load balancers: the loop answers, nothing more is claimed."""
    return web.json_response({"status": "ok"})


def create_app(
    settings: Settings,
    dispatch: Callable[[Envelope], None] | None = None,
    *,
    reception: Reception | None = None,
    dedup: EventClaims | None = None,
    clock: Callable[[], float] = time.time,
    respond: Respond | None = None,
    busy: Callable[[], bool] | None = None,
) -> web.Application:
    """Build the webhook app: ``POST settings.path`` for events, ``GET /healthz``.

    ``dispatch`` is the backend's synchronous hand-off (it queues the envelope for a worker and
    returns); it is called once per new event, after the ack is decided. ``dedup`` says
    whether an event is new (the backend's durable claim); it defaults to an in-memory
    :class:`TTLSet` sized from settings (8 h TTL ≥ Feishu's 7.1 h retry window, §1.8).
    ``clock`` is wall time because it is compared with Feishu's timestamps.

    ``respond`` answers card callbacks (``card.action.trigger``): it gets every verified
    callback, retries included, and returns the JSON body Feishu shows the clicker
    (``{"toast": {...}, "card": {...}}``, §6.1; None → ``{}``). It runs inside the request on
    the loop, so it must be fast and must not block; since a retry calls it again, its answer
    should depend on the envelope alone. The callback is still dispatched, once, and always
    after ``respond`` has answered it.

    ``busy`` (optional) bounds the backend's inbound backlog: while it returns True, verified
    events are answered 429 without being recorded, and Feishu delivers them again later.

    ``reception`` replaces all four (``dispatch``, ``dedup``, ``respond``, ``busy``): the
    backend builds one and gives the same to the long connection.
    """
    if settings.encrypt_key is None and settings.verification_token is None:
        log.warning(
            "neither encrypt_key nor verification_token is configured: "
            "the webhook accepts events from anyone who can reach it"
        )
    # aiohttp enforces the body limit while reading the request (request.read() → 413).
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_json_errors])
    if reception is None:
        if dispatch is None:
            raise TypeError("create_app needs dispatch or reception")
        if dedup is None:
            dedup = MemoryClaims(TTLSet(settings.dedup_ttl, settings.dedup_max_entries))
        reception = Reception(dispatch, dedup, respond=respond, busy=busy)
    handler = _EventHandler(settings, reception, clock)
    app.router.add_post(settings.path, handler.handle)
    app.router.add_get("/healthz", _healthz)
    return app


def _is_callback(payload: dict[str, Any]) -> bool:
    """Whether ``payload`` reads as one of Feishu's callbacks (``envelope.parse`` accepts it):
    only to choose how loudly a refusal is logged, never to accept it."""
    try:
        parse(payload)
    except Rejected:
        return False
    return True
