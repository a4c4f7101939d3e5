"""The webhook's listening socket: aiohttp's HTTP server with the bounds a public port needs.

Left alone, aiohttp keeps an idle connection for an hour and waits for a body as long as the
client likes, so a thousand slow connections from one client used up the process's open files
and took the bot offline. :func:`start_server` serves the app through :class:`GuardedSite`,
whose connections (:class:`GuardedConnection`, an aiohttp ``RequestHandler``) add:

- a request deadline: from a request's first byte until its answer is written, at most
  ``request_timeout`` seconds (a Feishu push is answered in well under its 3 s, §1.8); a
  connection that sends nothing is closed by aiohttp's keep-alive timer after
  ``keepalive_timeout``, and our timer stops it anyway after keep-alive + request timeout;
- a connection cap below the open-files limit: a connection beyond it closes the oldest open
  one, so a new request (Feishu's) always gets in and slow clients only wait to be dropped;
- short, rate-limited log lines (:class:`~lark_cards.transport.logs.LogThrottle`) for malformed
  HTTP, clients that break off, slow clients, evictions and ``accept()`` failures such as
  EMFILE, where aiohttp and asyncio log a traceback per request or per failed accept.

aiohttp's own answers are kept: a malformed request still gets its 400. A port that cannot be
bound for good (taken, privileged, an address that is not this machine's) is
:func:`unbindable`: the backend stops with one line instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from yarl import URL

from lark_cards.transport.logs import LOG_INTERVAL, LogThrottle, brief

__all__ = [
    "BACKLOG",
    "KEEPALIVE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MIN_BURST",
    "REQUEST_TIMEOUT",
    "GuardedConnection",
    "GuardedSite",
    "ServerLimits",
    "accept_burst",
    "default_max_connections",
    "start_server",
    "unbindable",
]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # s from a request's first byte until its answer is written
KEEPALIVE_TIMEOUT = 5.0  # s an idle connection is kept open (aiohttp's default: 3630)
MAX_CONNECTIONS = 500  # the cap, unless half the open-files limit is lower
BACKLOG = 128  # pending connections the kernel queues for accept()
MIN_BURST = 16  # accepted per loop turn at least, however few files the cap leaves

# accept() failures that mean "out of file descriptors or memory", which asyncio logs with a
# traceback, once per queued connection, while it lasts.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# What a client can cause on its own: bad HTTP, a body that does not decode, a dropped socket.
_CLIENT_FAULTS = (HttpProcessingError, RequestPayloadError, ConnectionError)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The bounds of one listening site; every field has a default for a public port.

    ``max_connections`` None means :func:`default_max_connections` (read when the site is
    made). ``log_interval`` is the shortest time between two log lines of one kind.
    """

    request_timeout: float = REQUEST_TIMEOUT
    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    max_connections: int | None = None
    backlog: int = BACKLOG
    log_interval: float = LOG_INTERVAL

    def __post_init__(self) -> None:
        for name in ("request_timeout", "keepalive_timeout", "log_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.backlog < 1:
            raise ValueError("backlog must be at least 1")


# bind() failures no retry fixes, and what to change for each. EADDRINUSE is another live
# listener (aiohttp sets SO_REUSEADDR, so a socket in TIME_WAIT from our own last run is not).
_UNBINDABLE = {
    errno.EADDRINUSE: (
        "the port is in use (another bot, or an old process still running?)",
        "port",
    ),
    errno.EACCES: ("permission denied (ports below 1024 need privileges)", "port"),
    # Not EADDRNOTAVAIL: a bot started before its network is up binds once the address
    # appears, so that one is retried (Errbot's reconnect loop, with backoff).
    socket.EAI_NONAME: ("the host name does not resolve", "host"),
}


def unbindable(error: OSError, host: str, port: int) -> str | None:
    """Why ``start_server`` can never listen on ``host:port`` after ``error``, naming the
    BOT_IDENTITY key to change; None when the failure may pass (then retrying is right)."""
    known = _UNBINDABLE.get(error.errno) if error.errno is not None else None
    if known is None:
        return None
    why, key = known
    return f"cannot listen on {host}:{port}: {why}: check BOT_IDENTITY['{key}']"


def _open_files_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None when there is none to fit in."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def default_max_connections() -> int:
    """``min(MAX_CONNECTIONS, soft RLIMIT_NOFILE // 2)``: the other half is left for the
    listening socket, the Open API client, log files and whatever plugins open."""
    soft = _open_files_limit()
    return MAX_CONNECTIONS if soft is None else max(1, min(MAX_CONNECTIONS, soft // 2))


def accept_burst(backlog: int, max_connections: int, open_files: int | None) -> int:
    """How many queued connections to accept in one loop turn: ``backlog``, fewer when the
    files the connection cap leaves would not hold that many.

    asyncio accepts up to its ``backlog`` argument each time the listening socket is ready,
    before any of them reaches :meth:`GuardedSite.admit`. If that burst runs out of files,
    accept() fails with EMFILE and asyncio stops accepting for a whole second
    (``asyncio.constants.ACCEPT_RETRY_DELAY``): a flood of slow clients under a low limit
    delayed a signed event by 1-2 s. A socket accepted in one turn is admitted two turns later
    and the one it evicts closes a turn after that, so up to three bursts are open beside the
    cap: a burst gets a quarter of what the cap leaves, the last quarter being the process's
    own files (at least MIN_BURST). The kernel's queue stays ``backlog`` long
    (:meth:`GuardedSite.start`): a smaller one would drop a client's SYN, a second's wait too.
    """
    if open_files is None:
        return backlog
    return min(backlog, max(MIN_BURST, (open_files - max_connections) // 4))


async def start_server(
    app: web.Application, host: str, port: int, limits: ServerLimits | None = None
) -> web.AppRunner:
    """Serve ``app`` on ``host:port`` behind a :class:`GuardedSite`; returns the runner
    (``await runner.cleanup()`` stops it, as with aiohttp's own ``TCPSite``).

    ``handler_cancellation``: a request handler whose client went away (or was cut off for
    being slow) is cancelled rather than failing with a logged "Connection lost" 500.
    """
    limits = limits or ServerLimits()
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        keepalive_timeout=limits.keepalive_timeout,
    )
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, limits).start()
    except BaseException:
        await runner.cleanup()  # e.g. the port is taken: leave nothing half-started
        raise
    return runner


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedConnection` s, at most
    ``max_connections`` of them; it also keeps the loop's ``accept()`` errors to one line."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        limits: ServerLimits | None = None,
    ) -> None:
        self.limits = limits = limits or ServerLimits()
        self.max_connections = limits.max_connections or default_max_connections()
        super().__init__(runner, backlog=limits.backlog)
        self.burst = accept_burst(limits.backlog, self.max_connections, _open_files_limit())
        self._host = host
        self._port = port
        self.log = LogThrottle(log, limits.log_interval)
        # Open connections, oldest first: the cap closes from the front.
        self._open: dict[GuardedConnection, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_handler: Any = None

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host or "0.0.0.0", port=self._port))

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return len(self._open)

    async def start(self) -> None:
        await super().start()
        self._loop = loop = asyncio.get_running_loop()
        # asyncio's backlog is both the kernel's queue and the accepts per loop turn: serve
        # with the burst, then give the kernel its longer queue again (listen() on a listening
        # socket only resizes the queue; asyncio never calls it again, not after EMFILE).
        self._server = server = await loop.create_server(
            self._connection, self._host, self._port, backlog=self.burst
        )
        for listening in server.sockets:
            with listening.dup() as same_socket:
                same_socket.listen(self._backlog)
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_error)
        log.debug("serving %s with at most %d connections", self.name, self.max_connections)

    async def stop(self) -> None:
        loop = self._loop
        if loop is not None and loop.get_exception_handler() == self._loop_error:
            loop.set_exception_handler(self._previous_handler)
        await super().stop()
        self.log.flush()

    def _connection(self) -> GuardedConnection:
        """The protocol factory ``loop.create_server`` calls once per accepted socket."""
        server = self._runner.server
        assert server is not None  # runner.setup() ran before the site was made
        assert self._loop is not None  # start() ran before the first accept
        options: dict[str, Any] = {
            "keepalive_timeout": self.limits.keepalive_timeout,
            "access_log": None,
        }
        return GuardedConnection(server, self, loop=self._loop, **options)

    def admit(self, connection: GuardedConnection) -> None:
        """Count a new connection in, closing the oldest ones while the cap is reached."""
        while len(self._open) >= self.max_connections:
            oldest = next(iter(self._open))
            del self._open[oldest]
            self.log.log(
                "evicted",
                logging.WARNING,
                "%d connections open (the limit): closed the oldest, from %s",
                self.max_connections,
                oldest.peer,
            )
            oldest.drop()
        self._open[connection] = None

    def release(self, connection: GuardedConnection) -> None:
        self._open.pop(connection, None)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: asyncio's "socket.accept() out of system resource"
        becomes one rate-limited line; anything else goes where it went before."""
        exc = context.get("exception")
        if (
            isinstance(exc, OSError)
            and exc.errno in _OUT_OF_RESOURCES
            and "accept" in str(context.get("message", ""))
        ):
            self.log.log(
                "accept",
                logging.WARNING,
                "cannot accept connections: %s (%d open here, limit %d)",
                exc.strerror or brief(exc),
                len(self._open),
                self.max_connections,
            )
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)


class GuardedConnection(web.RequestHandler):
    """aiohttp's HTTP/1 connection with a request deadline and quiet logs for client faults.

    The deadline runs from a request's first byte until its answer is written; between
    requests (and before the first) the connection gets keep-alive + request timeout, which
    also bounds a pipelined request already buffered when the previous answer went out.
    """

    __slots__ = ("_deadline", "_in_request", "_site")

    def __init__(self, manager: web.Server, site: GuardedSite, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._site = site
        self._deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    @property
    def peer(self) -> str:
        """The client's address, for logs."""
        name = self.peername
        return str(name[0]) if isinstance(name, tuple) else str(name)

    # --- the asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._site.admit(self)
        self._arm(self._between_requests)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._site.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and not self._in_request:
            self._in_request = True
            self._arm(self._site.limits.request_timeout)
        super().data_received(data)

    # --- aiohttp's hooks ----------------------------------------------------------------------

    def log_access(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        # Called once per answer, after it is written: the request is over.
        super().log_access(request, response, time)
        self._in_request = False
        self._arm(self._between_requests)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Malformed HTTP: aiohttp's 400 (same status and text), one short line instead of
        aiohttp's traceback. Anything else (a 500 from a handler bug) stays loud."""
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        self._site.log.log(
            "malformed", logging.INFO, "malformed HTTP from %s: %s", self.peer, brief(exc)
        )
        response = web.Response(status=status, text=message, content_type="text/plain")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, _CLIENT_FAULTS):
            self._site.log.log(
                "broken", logging.DEBUG, "broken request from %s: %s", self.peer, brief(exc)
            )
            return
        super().log_exception(*args, **kw)

    # --- the deadline -------------------------------------------------------------------------

    @property
    def _between_requests(self) -> float:
        limits = self._site.limits
        return limits.keepalive_timeout + limits.request_timeout

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._deadline = self._loop.call_later(delay, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.transport is None:
            return
        self._site.log.log(
            "slow",
            logging.INFO,
            "closed a connection from %s: no complete request within %.1f s",
            self.peer,
            self._site.limits.request_timeout if self._in_request else self._between_requests,
        )
        self.drop()

    def drop(self) -> None:
        """Close the connection now; a handler still reading its body is cancelled."""
        self._disarm()
        self.force_close()
