"""Feishu's long connection: the bot dials out over WebSocket, no public URL needed.

One :class:`LongConnection` runs on the backend's own loop (aiohttp's WebSocket client; no
thread, no module-level loop, a real ``close()``), following docs/feishu-platform.md §2:

- discovery → connect → serve, and again after every loss, discovery included (each URL
  carries a one-time ticket); waits between tries from :class:`~.endpoint.Backoff`;
- a ping every ``PingInterval``; a pong may carry a new ``ClientConfig``;
- liveness: no frame at all for two ping intervals plus a grace means the socket is dead
  (half-open sockets never say so); it is dropped without waiting for a close handshake from a
  peer that is gone (each connection has its own HTTP session, closed to abort it);
- data frames (``type`` ``event`` or ``card``; fragments joined by :class:`~.frames.Fragments`)
  become envelopes handled one at a time, in arrival order, by :class:`PushedEvents`, whose
  ack (``{"code": 200}``, a card callback's answer in ``data``) goes back at once while the
  command runs later;
- :class:`~.endpoint.Fatal` (wrong credentials, not a self-built app, the 50-connection limit)
  ends :meth:`LongConnection.run` with one message naming what to fix; nothing else does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from lark_cards.settings import Settings
from lark_cards.transport import frames
from lark_cards.transport.endpoint import (
    ENDPOINT_PATH,
    FORBIDDEN_TRIES,
    Backoff,
    ClientConfig,
    Endpoint,
    Fatal,
    Forbidden,
    Transient,
    handshake_error,
    read_endpoint,
)
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.logs import brief
from lark_cards.transport.reception import Reception, Rejected, check_app, json_object, parse

__all__ = ["Fatal", "LongConnection", "PushedEvents"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0  # a clean stop waits this long for Feishu's answer to our close frame
WORK_TIMEOUT = 5.0  # frames read before a connection ended get this long to be handled
MAX_FRAME_BYTES = 16 << 20  # one WebSocket message; Feishu fragments big payloads (§2.2)
_DATA_TYPES = (frames.EVENT, frames.CARD)


class PushedEvents:
    """Data frames → envelopes → :class:`~.reception.Reception` → the ack frame.

    The same path as a webhook request after its signature check: one parser, one claim in
    the state store, one hand-off to Errbot. ``card`` frames are handled like ``event``
    frames (the official SDKs drop them, and buttons die with 200340, §2.2). An envelope
    that is refused is acked with the 4xx the webhook would answer; one that could not be
    recorded (store down, backlog full) with 500, so Feishu pushes it again.
    """

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
        self.fragments = frames.Fragments()

    async def handle(self, frame: frames.Frame) -> frames.Frame | None:
        """The ack for a data frame; None while a fragmented payload is incomplete (the
        frame that completes it is the one acked, as the SDKs do)."""
        started = self._clock()
        try:
            payload = self._payload(frame)
            if payload is None:
                return None
            code, data = await self._receive(frame.type, payload)
        except Rejected as refused:
            log.info("refused pushed frame %s: %s", frame.header(frames.MESSAGE_ID), refused.detail)
            code, data = refused.status, None
        elapsed_ms = round((self._clock() - started) * 1000)
        return frames.ack(frame, code, elapsed_ms=elapsed_ms, data=data)

    def _payload(self, frame: frames.Frame) -> bytes | None:
        payload = frame.payload or b""
        total, seq = frame.header(frames.SUM) or "1", frame.header(frames.SEQ) or "0"
        if not (total.isdigit() and seq.isdigit()):
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
        received = await self._reception.receive(callback)
        if received.status != 200:
            return 500, None  # not recorded: Feishu pushes it again (§2.2)
        return 200, received.answer


class LongConnection:
    """The bot's side of the long connection, from :meth:`run` until :meth:`close`.

    ``connected`` is set once the first connection is open; ``connections`` counts the
    connections opened so far (the first one and every reconnect).
    """

    def __init__(
        self,
        settings: Settings,
        pushed: PushedEvents,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self._settings = settings
        self._pushed = pushed
        self._backoff = backoff or Backoff()
        self.config = ClientConfig()
        self.connected = asyncio.Event()
        self.connections = 0
        self._closing = asyncio.Event()
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Connect and serve until :meth:`close`; raises :class:`Fatal` for what only the
        user can fix. Every other failure is logged and retried, forever."""
        failures = forbidden = 0
        while not self._closing.is_set():
            # One session per connection: closing it aborts a socket whose peer is gone. Its
            # timeout bounds discovery and the handshake, not the open socket.
            timeout = aiohttp.ClientTimeout(total=self._settings.request_timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                try:
                    endpoint = await self._discover(session)
                    socket = await self._open(session, endpoint)
                except Transient as problem:
                    forbidden = forbidden + 1 if isinstance(problem, Forbidden) else 0
                    if forbidden >= FORBIDDEN_TRIES:
                        raise Fatal(str(problem)) from None
                    failures += 1
                    delay = self._backoff.after_failure(failures, self.config)
                    log.warning(
                        "Long connection: cannot connect (%s); next try in %.1f s", problem, delay
                    )
                    await self._pause(delay)
                    continue
                failures = forbidden = 0
                reason = await self._serve(socket, endpoint)
            if self._closing.is_set():
                break
            delay = self._backoff.after_drop(self.config)
            log.info("Long connection lost (%s); reconnecting in %.1f s", reason, delay)
            await self._pause(delay)
        log.info("Long connection closed")

    def start(self) -> asyncio.Task[None]:
        """Run on the current loop in a task; the task ends with :class:`Fatal` or after
        :meth:`close`."""
        self.task = asyncio.create_task(self.run(), name="lark-long-connection")
        return self.task

    async def close(self) -> None:
        """Stop: no new frames are read, those already read are handled and acked, the
        socket gets a close frame (Feishu's answer is awaited at most ``CLOSE_TIMEOUT``)."""
        self._closing.set()
        socket = self._socket
        if socket is not None and not socket.closed:
            await socket.close()
        task = self.task
        if task is None or task.done():
            return
        # Still connecting (nothing read yet) or handling a frame: give it a moment, then go.
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT + WORK_TIMEOUT)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _discover(self, session: aiohttp.ClientSession) -> Endpoint:
        settings = self._settings
        url = settings.base_url + ENDPOINT_PATH
        body = {"AppID": settings.app_id, "AppSecret": settings.app_secret}
        try:
            async with session.post(url, json=body, headers={"locale": "zh"}) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise Transient(f"endpoint discovery failed: {brief(error)}") from None
        endpoint = read_endpoint(status, raw, self.config)
        self.config = endpoint.config
        return endpoint

    async def _open(
        self, session: aiohttp.ClientSession, endpoint: Endpoint
    ) -> aiohttp.ClientWebSocketResponse:
        try:
            return await session.ws_connect(
                endpoint.url,  # exactly as given: it carries the ticket (§2.2)
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
                max_msg_size=MAX_FRAME_BYTES,
                autoclose=True,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as refused:
            raise handshake_error(refused.status, refused.headers or {}) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise Transient(f"cannot open the WebSocket: {brief(error)}") from None

    async def _serve(self, socket: aiohttp.ClientWebSocketResponse, endpoint: Endpoint) -> str:
        """Read frames until the connection ends; the reason it ended."""
        self._socket = socket
        if self._closing.is_set():  # close() came while we were connecting
            await socket.close()
            return "stopped"
        self.connections += 1
        first = not self.connected.is_set()
        self.connected.set()
        log.info(
            "Long connection %s (device %s, ping every %g s)",
            "open" if first else "open again",
            endpoint.device_id or "-",
            self.config.ping_interval,
        )
        queue: asyncio.Queue[frames.Frame | None] = asyncio.Queue()
        pinger = asyncio.create_task(self._ping(socket, endpoint.service_id))
        worker = asyncio.create_task(self._work(socket, queue))
        try:
            return await self._read(socket, queue)
        finally:
            pinger.cancel()
            queue.put_nowait(None)  # frames already read are still handled (claimed, acked)
            await asyncio.wait({worker}, timeout=WORK_TIMEOUT)  # an ack may hang on a dead socket
            worker.cancel()
            await asyncio.gather(pinger, worker, return_exceptions=True)
            self._socket = None

    async def _read(
        self, socket: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[frames.Frame | None]
    ) -> str:
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        while True:
            silent_for = self.config.liveness
            try:
                message = await socket.receive(
                    timeout=max(0.0, last_seen + silent_for - loop.time())
                )
            except TimeoutError:
                return f"no frame for {silent_for:g} s: the socket is half-open or Feishu is gone"
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                return "stopped" if self._closing.is_set() else f"closed by Feishu ({message.data})"
            if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return "stopped" if self._closing.is_set() else "the socket failed"
            last_seen = loop.time()
            if message.type is not aiohttp.WSMsgType.BINARY:
                log.debug("ignored a %s WebSocket message", message.type.name)
                continue
            try:
                frame = frames.decode(message.data)
            except frames.FrameError as error:
                log.info("ignored a malformed frame: %s", error)
                continue
            if frame.method == frames.DATA:
                queue.put_nowait(frame)
            elif frame.type == frames.PONG and frame.payload:
                self._configure(frame.payload)

    def _configure(self, payload: bytes) -> None:
        try:
            config = self.config.updated(json_object(payload, "pong"))
        except Rejected:
            return
        if config != self.config:
            log.info("Long connection: Feishu's new timing %s", config)
            self.config = config

    async def _ping(self, socket: aiohttp.ClientWebSocketResponse, service: int) -> None:
        ping = frames.encode(frames.ping(service))
        while True:
            await self._send(socket, ping, "ping")
            await asyncio.sleep(self.config.ping_interval)

    async def _work(
        self, socket: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[frames.Frame | None]
    ) -> None:
        while (frame := await queue.get()) is not None:
            try:
                answer = await self._pushed.handle(frame)
            except Exception:  # a bug must not end the connection; Feishu pushes it again
                log.exception("pushed frame %s failed", frame.header(frames.MESSAGE_ID))
                answer = frames.ack(frame, 500, elapsed_ms=0)
            if answer is not None:
                await self._send(socket, frames.encode(answer), "ack")

    async def _send(self, socket: aiohttp.ClientWebSocketResponse, data: bytes, what: str) -> None:
        async with self._send_lock:
            try:
                await socket.send_bytes(data)
            except (aiohttp.ClientError, OSError, RuntimeError) as error:
                # The reader sees the end of the socket and reconnects; an unsent ack is
                # pushed again by Feishu and found in the claims.
                log.debug("%s not sent: %s", what, brief(error))
