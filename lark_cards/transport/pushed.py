"""A frame Feishu pushed over the long connection → an envelope → the ack frame it gets.

The same path as a webhook request after its signature check (``reception``): one parser,
one claim in the state store, one hand-off to Errbot. ``card`` frames are handled like
``event`` frames: the official SDKs drop them unacked and buttons die with 200340
(docs/feishu-platform.md §2.2). A refused envelope is acked with the 4xx the webhook would
answer; one that could not be recorded (store down, backlog full) with 500, so Feishu pushes
it again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from lark_cards.settings import Settings
from lark_cards.transport import frames
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.logs import LogThrottle
from lark_cards.transport.reception import (
    Received,
    Reception,
    Rejected,
    check_app,
    json_object,
    parse,
)

__all__ = ["PushedEvents"]

log = logging.getLogger(__name__)

_DATA_TYPES = (frames.EVENT, frames.CARD)
_COUNT = re.compile(r"[0-9]{1,4}")  # a fragment's sum / seq header (Fragments bounds them)


class PushedEvents:
    """Data frames → envelopes → :class:`~.reception.Reception` → the ack frame."""

    def __init__(
        self,
        settings: Settings,
        reception: Reception,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app_id = settings.app_id
        self._reception = reception
        self._clock = clock
        self._throttle = LogThrottle(log)
        self.fragments = frames.Fragments()

    async def handle(self, frame: frames.Frame) -> frames.Frame | None:
        """The ack for a data frame; None while a fragmented payload is incomplete (the
        frame that completes it is the one acked, as the SDKs do).

        The claim runs shielded: a caller that stops waiting (a deadline, a lost socket, a
        stop) never cuts it between the claim and the inbox, which would mark the event as
        seen while nothing runs it.
        """
        started = self._clock()
        try:
            payload = self._payload(frame)
            if payload is None:
                return None
            code, data = await self._receive(frame.type, payload)
        except Rejected as refused:
            self._throttle.log(
                "refused", logging.INFO, "refused a pushed frame: %s", refused.detail
            )
            code, data = refused.status, None
        elapsed_ms = round((self._clock() - started) * 1000)
        return frames.ack(frame, code, elapsed_ms=elapsed_ms, data=data)

    def _payload(self, frame: frames.Frame) -> bytes | None:
        payload = frame.payload or b""
        total, seq = frame.header(frames.SUM) or "1", frame.header(frames.SEQ) or "0"
        if not (_COUNT.fullmatch(total) and _COUNT.fullmatch(seq)):
            raise Rejected(400, "bad fragment headers", f"sum {total[:20]!r} seq {seq[:20]!r}")
        if int(total) <= 1:
            return payload
        message_id = frame.header(frames.MESSAGE_ID) or ""
        try:
            return self.fragments.add(message_id, int(total), int(seq), payload, self._clock())
        except frames.FrameError as error:
            raise Rejected(400, "bad fragment", str(error)) from None

    async def _receive(self, kind: str | None, payload: bytes) -> tuple[int, Any]:
        if kind not in _DATA_TYPES:
            raise Rejected(400, "unknown frame type", f"type {str(kind)[:40]!r}")
        callback = parse(json_object(payload, "payload"))
        if not isinstance(callback, Envelope):
            raise Rejected(400, "not an event", "a URL challenge over the long connection")
        check_app(self._app_id, callback)
        received = await _shielded(self._reception.receive(callback))
        if received.status != 200:
            return 500, None  # not recorded: Feishu pushes it again (§2.2)
        return 200, received.answer


async def _shielded(receiving: Any) -> Received:
    task: asyncio.Task[Received] = asyncio.ensure_future(receiving)
    task.add_done_callback(_settled)
    return await asyncio.shield(task)


def _settled(task: asyncio.Task[Received]) -> None:
    """Read a shielded claim's outcome even when nobody waits for it any more."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("a pushed event's claim failed after its ack was decided: %s", error)
