"""Feishu's long connection: the bot dials out over WebSocket, no public URL needed.

One :class:`LongConnection` runs on the backend's own loop (aiohttp's WebSocket client; no
thread, no module-level loop, a real ``close()``), following docs/feishu-platform.md §2:

- discovery → connect → serve, and again after every loss, discovery included (each URL
  carries a one-time ticket); waits between tries from :class:`~.endpoint.Backoff`, and a
  connection that dies young counts as a failed try, so nothing can make it spin;
- a ping every ``PingInterval``; a pong may carry a new ``ClientConfig`` (a new interval
  takes effect at once, for the pings and the liveness deadline alike);
- liveness: no frame at all for two ping intervals plus a grace means the socket is dead
  (half-open sockets never say so); it is dropped without waiting for a close handshake from a
  peer that is gone (each connection has its own HTTP session, closed to abort it);
- every data frame is handled in a task of its own, started in arrival order, by
  :class:`~.pushed.PushedEvents`, and acked within ``ACK_WITHIN`` of its arrival however slow
  the state store is (late: 500, and Feishu pushes it again); at most ``MAX_IN_FLIGHT`` at a
  time, the rest acked 500 at once;
- :meth:`LongConnection.close` stops reading, lets the frames already read be acked, then
  sends a close frame;
- :class:`~.endpoint.Fatal` (wrong credentials, not a self-built app, the 50-connection limit)
  ends :meth:`LongConnection.run` with one message naming what to fix; nothing else does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

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
from lark_cards.transport.logs import LogThrottle, brief
from lark_cards.transport.pushed import PushedEvents
from lark_cards.transport.reception import Rejected, json_object

__all__ = ["Fatal", "LongConnection"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 2.0  # a clean stop waits this long for Feishu's answer to our close frame
ACK_WITHIN = 2.5  # seconds from a frame's arrival to its ack: Feishu waits 3 s (§2.1)
WORK_TIMEOUT = ACK_WITHIN + 0.5  # frames read before a connection ended get this to be acked
MAX_IN_FLIGHT = 64  # frames being handled at once; more are acked 500 (pushed again later)
# One WebSocket message. The official SDK's client (websockets) takes at most 1 MiB, so Feishu
# cannot send more in one frame; it fragments bigger payloads (§2.2).
MAX_FRAME_BYTES = 4 << 20
ABORT_WAIT = 0.2  # closing a dead socket: how long its close frame may wait for an answer


class LongConnection:
    """The bot's side of the long connection, from :meth:`run` until :meth:`close`.

    ``connections`` counts the connections opened so far (the first one and every
    reconnect).
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
        self.connections = 0
        self._closing = asyncio.Event()
        self._retimed = asyncio.Event()  # a pong changed the ping interval
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._send_lock = asyncio.Lock()
        self._throttle = LogThrottle(log)
        self._heard = False  # a frame came through the current connection
        self.task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        """Run on the current loop in a task; the task ends with :class:`Fatal` or after
        :meth:`close`."""
        self.task = asyncio.create_task(self.run(), name="lark-long-connection")
        return self.task

    async def run(self) -> None:
        """Connect and serve until :meth:`close`; raises :class:`Fatal` for what only the
        user can fix. Every other failure is logged and retried, forever."""
        failures = forbidden = 0
        while not self._closing.is_set():
            try:
                reason, heard = await self._connect_and_serve()
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
            forbidden = 0
            if self._closing.is_set():
                break
            delay = self._backoff.after_drop(self.config)
            if not heard:  # accepted, then lost before Feishu said a word: a failed try
                failures += 1
                delay = max(delay, self._backoff.after_failure(failures, self.config))
            else:
                failures = 0
            log.info("Long connection lost (%s); reconnecting in %.1f s", reason, delay)
            await self._pause(delay)
        log.info("Long connection closed")

    async def close(self) -> None:
        """Stop: no new frames are read, those already read are acked, then the socket gets
        a close frame (Feishu's answer is awaited at most ``CLOSE_TIMEOUT``)."""
        self._closing.set()
        task = self.task
        if task is None or task.done():
            return
        if self._socket is None:  # connecting or waiting to: nothing read, nothing to ack
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT + WORK_TIMEOUT)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _connect_and_serve(self) -> tuple[str, bool]:
        """One connection: why it ended, and whether any frame came through it."""
        # One session per connection: closing it aborts a socket whose peer is gone. Its
        # timeout bounds discovery and the handshake, not the open socket.
        timeout = aiohttp.ClientTimeout(total=self._settings.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            endpoint = await self._discover(session)
            socket = await self._open(session, endpoint)
            self._heard = False
            try:
                reason = await self._serve(socket, endpoint)
            except Exception as error:  # a bug here must not end the bot: log it, reconnect
                log.exception("Long connection failed")
                reason = f"error: {brief(error)}"
            if not socket.closed:  # a dead peer: its close frame gets no answer, so no wait
                with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
                    await asyncio.wait_for(socket.close(), ABORT_WAIT)
            return reason, self._heard

    async def _discover(self, session: aiohttp.ClientSession) -> Endpoint:
        settings = self._settings
        url = settings.base_url + ENDPOINT_PATH
        body = {"AppID": settings.app_id, "AppSecret": settings.app_secret}
        try:
            async with session.post(url, json=body, headers={"locale": "zh"}) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
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
        except (aiohttp.InvalidURL, ValueError):
            # Never the URL itself in the log: it carries the one-time ticket.
            raise Transient("discovery gave a WebSocket URL that cannot be opened") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise Transient(f"cannot open the WebSocket: {type(error).__name__}") from None

    async def _serve(self, socket: aiohttp.ClientWebSocketResponse, endpoint: Endpoint) -> str:
        """Read frames until the connection ends or :meth:`close`; the reason it ended."""
        self._socket = socket
        self.connections += 1
        log.info(
            "Long connection %s (device %s, ping every %g s)",
            "open" if self.connections == 1 else "open again",
            endpoint.device_id or "-",
            self.config.ping_interval,
        )
        handling: set[asyncio.Task[None]] = set()
        pinger = asyncio.create_task(self._ping(socket, endpoint.service_id))
        try:
            return await self._read(socket, handling)
        finally:
            pinger.cancel()
            if handling:  # frames already read are acked (a dead socket: they give up)
                await asyncio.wait(handling, timeout=WORK_TIMEOUT)
            for task in list(handling):
                task.cancel()  # each claim is shielded: cancelling never splits one
            await asyncio.gather(pinger, *list(handling), return_exceptions=True)
            if self._closing.is_set() and not socket.closed:
                await socket.close()
            self._socket = None

    async def _read(
        self, socket: aiohttp.ClientWebSocketResponse, handling: set[asyncio.Task[None]]
    ) -> str:
        loop = asyncio.get_running_loop()
        closing = asyncio.ensure_future(self._closing.wait())
        last_seen = loop.time()
        try:
            while True:
                silent_for = self.config.liveness
                left = max(0.001, last_seen + silent_for - loop.time())  # 0 = no timeout
                receiving = asyncio.ensure_future(socket.receive(timeout=left))
                await asyncio.wait({receiving, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    return "stopped"
                try:
                    message = receiving.result()
                except TimeoutError:
                    return f"no frame for {silent_for:g} s: the socket is half-open or gone"
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                    return f"closed by Feishu ({message.data})"
                if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return "the socket failed"
                last_seen = loop.time()
                self._heard = True
                self._take(socket, message, handling)
                await asyncio.sleep(0)  # a burst of buffered frames must not starve the loop
        finally:
            closing.cancel()

    def _take(
        self,
        socket: aiohttp.ClientWebSocketResponse,
        message: aiohttp.WSMessage,
        handling: set[asyncio.Task[None]],
    ) -> None:
        if message.type is not aiohttp.WSMsgType.BINARY:
            log.debug("ignored a %s WebSocket message", message.type.name)
            return
        try:
            frame = frames.decode(message.data)
        except frames.FrameError as error:
            self._throttle.log("malformed", logging.INFO, "ignored a malformed frame: %s", error)
            return
        if frame.method == frames.DATA:
            if len(handling) >= MAX_IN_FLIGHT:
                self._throttle.log(
                    "busy", logging.WARNING, "%d frames in hand: one acked 500", len(handling)
                )
                busy = frames.ack(frame, 500, elapsed_ms=0)
                task = asyncio.create_task(self._send(socket, frames.encode(busy), "ack"))
            else:
                task = asyncio.create_task(self._answer(socket, frame))
            handling.add(task)
            task.add_done_callback(handling.discard)
            return
        if frame.type == frames.PONG and frame.payload:
            self._configure(frame.payload)

    async def _answer(self, socket: aiohttp.ClientWebSocketResponse, frame: frames.Frame) -> None:
        try:
            async with asyncio.timeout(ACK_WITHIN):
                answer = await self._pushed.handle(frame)
        except TimeoutError:
            # The claim goes on (shielded) and runs the event if new; Feishu's next push of
            # it finds the claim.
            log.warning("pushed frame not handled within %g s: acked 500", ACK_WITHIN)
            answer = frames.ack(frame, 500, elapsed_ms=round(ACK_WITHIN * 1000))
        except Exception:  # a bug must not end the connection; Feishu pushes it again
            log.exception("pushed frame %s failed", frame.header(frames.MESSAGE_ID))
            answer = frames.ack(frame, 500, elapsed_ms=0)
        if answer is not None:
            await self._send(socket, frames.encode(answer), "ack")

    def _configure(self, payload: bytes) -> None:
        try:
            config = self.config.updated(json_object(payload, "pong"))
        except Rejected:
            return
        if config != self.config:
            log.info("Long connection: Feishu's new timing %s", config)
            if config.ping_interval != self.config.ping_interval:
                self._retimed.set()
            self.config = config

    async def _ping(self, socket: aiohttp.ClientWebSocketResponse, service: int) -> None:
        ping = frames.encode(frames.ping(service))
        while True:
            self._retimed.clear()
            await self._send(socket, ping, "ping")
            with contextlib.suppress(TimeoutError):  # a new interval: ping now, then by it
                await asyncio.wait_for(self._retimed.wait(), self.config.ping_interval)

    async def _send(self, socket: aiohttp.ClientWebSocketResponse, data: bytes, what: str) -> None:
        async with self._send_lock:
            try:
                await socket.send_bytes(data)
            except (aiohttp.ClientError, OSError, RuntimeError) as error:
                # The reader sees the end of the socket and reconnects; an unsent ack is
                # pushed again by Feishu and found in the claims.
                log.debug("%s not sent: %s", what, brief(error))
