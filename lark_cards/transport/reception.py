"""What both transports do with a trusted envelope: claim it, answer it, hand it on.

The webhook (``webhook.py``) and the long connection (``longconn.py``) differ in how bytes
become a trusted envelope (a signature and a token over HTTP; an authenticated socket over
WebSocket, docs/feishu-platform.md §2.1) and in how the answer travels (an HTTP response; the
``code`` and ``data`` of an ack frame, §2.2). Everything after that is here, once:

1. a full inbound backlog refuses the event *before* it is recorded, so Feishu's retry is
   taken later (429);
2. the durable claim (``EventClaims``, the state store) says whether the event is new; when
   the store fails nothing is acked (503) and Feishu retries;
3. a card callback (``card.action.trigger``, §6.1) gets its answer (toast, maybe a card)
   built now, inside Feishu's 3 s, retries included, since the first answer may be the one
   that got lost;
4. a new event is dispatched on a later loop iteration: the ack never waits for a command.

Also here, for both: the JSON and envelope readers and the app check that turn a refusal into
:class:`Rejected` (a 4xx with a reason that never holds a secret).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lark_cards.transport.dedup import EventClaims
from lark_cards.transport.envelope import (
    CARD_ACTION,
    Envelope,
    EventError,
    UrlVerification,
    parse_callback,
)
from lark_cards.transport.logs import brief

__all__ = ["Received", "Reception", "Rejected", "check_app", "json_object", "parse"]

log = logging.getLogger(__name__)

Callback = UrlVerification | Envelope
# Builds a card callback's answer body (§6.1); runs on the loop inside the request.
Respond = Callable[[Envelope], Mapping[str, Any] | None]


class Rejected(Exception):
    """A request we answer with a 4xx. ``reason`` goes to the client; ``detail`` only to logs.

    ``check`` is set when the refusal most likely means our config and the app's disagree
    (a wrong key, token or app_id): what to check, for the one WARNING line the user reads,
    since Feishu only shows "push failed" and retries. None of the three ever holds a token,
    key, signature or body.
    """

    def __init__(
        self, status: int, reason: str, detail: str | None = None, *, check: str | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason
        self.check = check


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object, or :class:`Rejected` 400 naming ``what``."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and >4300-digit ints; RecursionError covers
        # "[[[[..." nested deeper than the C parser's recursion limit.
        raise Rejected(400, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise Rejected(400, f"{what} is not a JSON object")
    return value


def parse(payload: Mapping[str, Any]) -> Callback:
    """A JSON object as a URL challenge or an envelope, or :class:`Rejected` 400."""
    try:
        return parse_callback(payload)
    except EventError as exc:
        raise Rejected(400, "not a Feishu callback", str(exc)) from exc


def check_app(app_id: str, callback: Callback) -> None:
    """Refuse an event addressed to another app, e.g. a second app sharing our request URL
    and credentials: its commands are not ours to run (and it must not enter dedup)."""
    named = callback.app_id if isinstance(callback, Envelope) else None
    if named is not None and named != app_id:
        raise Rejected(
            403,
            "event is for another app",
            f"app_id {named[:64]!r} is not ours",
            check="check BOT_IDENTITY['app_id']: another app's events come to this URL",
        )


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one verified envelope: the status to answer with and the body.

    ``status`` is 200 (new or duplicate), 429 (busy) or 503 (the store failed); ``body`` is
    the webhook's JSON answer; ``answer`` is a card callback's answer (also the body then),
    None for other events.
    """

    status: int
    body: dict[str, Any]
    answer: dict[str, Any] | None = None


class Reception:
    """Claims, answers and dispatches verified envelopes for either transport.

    ``dispatch`` is the backend's synchronous hand-off (it queues the envelope and returns);
    ``respond`` builds a card callback's answer on the loop (fast, never blocking; it may be
    called again for a retry, so it should depend on the envelope alone); ``busy`` says the
    inbound backlog is full.
    """

    def __init__(
        self,
        dispatch: Callable[[Envelope], None],
        dedup: EventClaims,
        *,
        respond: Respond | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self._dispatch = dispatch
        self._dedup = dedup
        self._respond = respond
        self._busy = busy

    async def receive(self, envelope: Envelope) -> Received:
        """Decide the answer to ``envelope`` and schedule its dispatch when it is new."""
        if self._busy is not None and self._busy():
            # A full backlog: refuse before recording the event, so Feishu's retry (15 s
            # later, §1.8) is taken then. 429, not a 5xx: the input is fine, we are busy.
            log.warning("inbound backlog full: event %s refused for a retry", envelope.event_id)
            return Received(429, {"error": "busy, retry later"})
        try:
            duplicate = not await self._dedup.claim(envelope)
        except Exception as error:  # the state store failed: no ack, Feishu retries later
            log.error("cannot record event %s: %s", envelope.event_id, brief(error))
            return Received(503, {"error": "cannot record the event now, retry later"})
        # Built before the dispatch below runs, so ``respond`` may hand what it parsed on.
        answer = self._answer(envelope) if envelope.event_type == CARD_ACTION else None
        if duplicate:
            log.debug("duplicate event %s (%s)", envelope.event_id, envelope.event_type)
        else:
            # Ack first, work later (§1.8): dispatch runs on a later loop iteration.
            asyncio.get_running_loop().call_soon(self._run_dispatch, envelope)
        if answer is not None:
            return Received(200, answer, answer)
        body = {"msg": "duplicate" if duplicate else "ok"}
        return Received(200, body)

    def _answer(self, envelope: Envelope) -> dict[str, Any]:
        if self._respond is None:
            return {}  # §6.1: an empty object keeps the card as it is
        try:
            answer = dict(self._respond(envelope) or {})
            # A body we cannot serialise would be a 500, e.g. a lone surrogate in UTF-8.
            json.dumps(answer, ensure_ascii=False).encode()
        except Exception:
            # Feishu shows 200672 for a bad body; an empty answer still acknowledges the click.
            log.exception("respond failed for card callback %s", envelope.event_id)
            return {}
        return answer

    def _run_dispatch(self, envelope: Envelope) -> None:
        try:
            self._dispatch(envelope)
        except Exception:
            # The ack is already on its way; a broken dispatch must not change it or kill the
            # loop, but it must be loud.
            log.exception(
                "dispatch failed for event %s (%s)", envelope.event_id, envelope.event_type
            )
