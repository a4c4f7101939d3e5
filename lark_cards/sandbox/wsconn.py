"""One long-connection socket on the sandbox's side: frames out, acks and pings in, faults.

:class:`Connection` is what :class:`~.longconn.LongConnHub` keeps per bot socket. It speaks
the frame protocol of docs/feishu-platform.md §2.2 with the shared codec
(:mod:`lark_cards.transport.frames`): a CONTROL ``ping`` gets a ``pong`` carrying the
:class:`~lark_cards.transport.endpoint.ClientConfig` (the bot's own type, so both sides
read one spelling); a push is one or more DATA frames (``sum``/``seq``); the only DATA frames
a client sends are acks, matched to their push by ``message_id`` and SeqID. Anything else a
client sends (garbage, text, a frame for no push) is logged at debug and ignored: no input may
take the sandbox down.

Two faults a real network has, on demand: :meth:`Connection.abort` cuts the TCP connection with
no close frame, and the ``half-open`` state keeps the socket open but deaf and mute (no pongs,
no pushes, not even an answer to a close frame), the silent death SDK users report.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from lark_cards.transport import frames
from lark_cards.transport.endpoint import ClientConfig
from lark_cards.transport.frames import (
    CONTROL,
    DATA,
    MESSAGE_ID,
    PING,
    PONG,
    SEQ,
    SUM,
    TRACE_ID,
    TYPE,
    Frame,
    FrameError,
)

from .delivery import TIMEOUT, Outcome

__all__ = ["HALF_OPEN", "LOST", "OPEN", "ClientConfig", "Connection", "split"]

log = logging.getLogger(__name__)

OPEN, HALF_OPEN = "open", "half-open"
LOST = "connection lost"
MAX_MESSAGE = 1 << 20  # an ack is small; a bigger WebSocket message is refused (close 1009)
CLOSE_TIMEOUT = 2.0  # how long a clean close waits for the client's close frame
# Ack ``data`` that is not base64: bytes that are no JSON, so callback() says CALLBACK_BAD_BODY.
_NOT_BASE64 = b"\x00"


@dataclass
class _Pending:
    seq_ids: frozenset[int]
    future: asyncio.Future[Outcome]


def socket_response() -> web.WebSocketResponse:
    """The server side of one socket. No autoping/autoclose: a half-open socket must answer
    neither WebSocket pings nor close frames, so this module answers them itself."""
    return web.WebSocketResponse(
        autoping=False, autoclose=False, max_msg_size=MAX_MESSAGE, timeout=CLOSE_TIMEOUT
    )


@dataclass(eq=False)
class Connection:
    """One bot socket. ``id`` is the sandbox's short name for it (the page's buttons)."""

    id: str
    device_id: str
    service_id: int
    ws: web.WebSocketResponse
    request: web.Request
    client_config: ClientConfig
    connected_at: float = field(default_factory=time.time)
    state: str = OPEN
    last_ping: float | None = None
    pushes: int = 0
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[str, _Pending] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The page's view (times in milliseconds, like its messages)."""
        return {
            "id": self.id,
            "device_id": self.device_id,
            "state": self.state,
            "connected_at": int(self.connected_at * 1000),
            "last_ping": None if self.last_ping is None else int(self.last_ping * 1000),
            "pushes": self.pushes,
        }

    # ----- pushes out ---------------------------------------------------------------------

    async def push(self, kind: str, parts: list[bytes], deadline: float) -> Outcome:
        """Send one push as ``len(parts)`` frames and wait at most ``deadline`` seconds for
        its ack: (ack code, answer bytes, None), or (None, None, why not)."""
        message_id, pushed = self._frames(kind, parts)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = _Pending(frozenset(f.seq_id for f in pushed), future)
        self.pushes += 1
        try:
            async with asyncio.timeout(deadline):
                for frame in pushed:
                    if not await self._send(frames.encode(frame)):
                        return None, None, LOST
                return await future
        except TimeoutError:
            return None, None, TIMEOUT
        finally:
            self._pending.pop(message_id, None)

    def _frames(self, kind: str, parts: list[bytes]) -> tuple[str, list[Frame]]:
        """A push's message id and frames: fragment ``seq`` of ``sum`` each (§2.2 item 4)."""
        message_id, trace_id = secrets.token_hex(16), secrets.token_hex(16)
        pushed = []
        for seq, part in enumerate(parts):
            headers = (
                (TYPE, kind),
                (MESSAGE_ID, message_id),
                (SUM, str(len(parts))),
                (SEQ, str(seq)),
                (TRACE_ID, trace_id),
            )
            frame = Frame(
                seq_id=next(self._seq),
                log_id=secrets.randbits(63),
                service=self.service_id,
                method=DATA,
                headers=headers,
                payload=part,
            )
            pushed.append(frame)
        return message_id, pushed

    def fail_pending(self, problem: str) -> None:
        """Settle every push still waiting for an ack as not acked."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_result((None, None, problem))

    # ----- what the client sends ------------------------------------------------------------

    async def serve(self) -> None:
        """Read the socket until it closes (or is aborted)."""
        while True:
            message = await self.ws.receive()
            if message.type in (WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return
            if self.state == HALF_OPEN:  # deaf: not even a close handshake
                if message.type == WSMsgType.CLOSE:
                    await self._gone()
                    return
                continue
            if message.type == WSMsgType.CLOSE:
                await self.ws.close()
                return
            if message.type == WSMsgType.PING:
                await self._pong(message.data)
            elif message.type == WSMsgType.BINARY:
                await self._on_frame(message.data)
            else:
                log.debug("Connection %s: a %s message, ignored", self.id, message.type.name)

    async def _on_frame(self, data: bytes) -> None:
        try:
            frame = frames.decode(data)
        except FrameError as error:
            log.debug("Connection %s: not a frame (%s), ignored", self.id, error)
            return
        if frame.method == DATA:
            self._settle(frame)  # the only data frames a client sends are acks
        elif frame.method == CONTROL and frame.type == PING:
            self.last_ping = time.time()
            payload = json.dumps(self.client_config.to_json()).encode()
            pong = Frame(
                service=self.service_id, method=CONTROL, headers=((TYPE, PONG),), payload=payload
            )
            await self._send(frames.encode(pong))
        else:
            log.debug("Connection %s: a %s frame, ignored", self.id, frame.type)

    def _settle(self, frame: Frame) -> None:
        """Match an ack to its push by ``message_id`` and SeqID; anything else is ignored."""
        pending = self._pending.get(frame.header(MESSAGE_ID) or "")
        if pending is None or frame.seq_id not in pending.seq_ids or pending.future.done():
            log.debug("Connection %s: an ack for no pending push, ignored", self.id)
            return
        outcome = read_ack(frame.payload)
        if outcome is None:
            log.debug("Connection %s: an ack without a JSON code, ignored", self.id)
            return
        pending.future.set_result(outcome)

    # ----- the socket itself ----------------------------------------------------------------

    async def _send(self, data: bytes) -> bool:
        """Write one binary message unless half-open or closing; True when written."""
        if self.state == HALF_OPEN or self.ws.closed:
            return False
        try:
            await self.ws.send_bytes(data)
        except ConnectionError:
            return False
        return True

    async def _pong(self, data: bytes) -> None:
        try:
            await self.ws.pong(data)
        except ConnectionError:
            log.debug("Connection %s: a WebSocket pong could not be written", self.id)

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure does."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """A clean close (GOING_AWAY); a half-open socket is cut, since it answers nothing."""
        if self.state == HALF_OPEN:
            self.abort()
        else:
            await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"sandbox stopped")

    async def _gone(self) -> None:
        """Wait until the TCP connection is closed (by the client, or by :meth:`abort`)."""
        # aiohttp has no event for a lost transport of a socket nobody reads; poll it.
        while (transport := self.request.transport) is not None and not transport.is_closing():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def split(data: bytes, parts: int) -> list[bytes]:
    """``data`` in ``parts`` pieces of nearly equal size, cut at byte offsets: a multi-byte
    UTF-8 character may straddle two pieces, as on Feishu's wire (§2.2 item 4)."""
    parts = max(1, min(parts, len(data)))
    size, extra = divmod(len(data), parts)
    pieces, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append(data[start:end])
        start = end
    return pieces


def read_ack(payload: bytes | None) -> Outcome | None:
    """An ack's ``{"code": …, "data": base64(JSON)}`` as (code, answer bytes, None); None
    when it has no integer code. No ``data`` reads as b"" (the answer ``{}``)."""
    try:
        body = json.loads(payload or b"")
    except (ValueError, RecursionError):
        return None
    code = body.get("code") if isinstance(body, Mapping) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    data = body.get("data")
    if data is None:
        return code, b"", None
    try:
        answer = base64.b64decode(data, validate=True) if isinstance(data, str) else _NOT_BASE64
    except (binascii.Error, ValueError):
        answer = _NOT_BASE64
    return code, answer, None
