"""Feishu's long connection, served by the sandbox: discovery, handshake, cluster pushes.

A bot in ``BOT_IDENTITY["mode"] = "websocket"`` never listens: it asks
``POST /callback/ws/endpoint`` for a one-time WebSocket URL, connects, pings, and answers every
pushed frame with an ack frame (docs/feishu-platform.md §2.2, as lark-oapi 1.7.5 does it).
:class:`LongConnHub` is that server side for one app, on any aiohttp app that also serves the
fake Open API (``hub.add_routes(app)``): the sandbox's (:mod:`.runner`) or a test harness's.

It is a :class:`~.delivery.Channel`, so the :class:`~.delivery.Deliverer` keeps Feishu's retry
ladder and only the transport changes: a push goes to **one random** open connection (§2.1,
cluster mode; none → "no bot connected", like an unreachable bot), split into fragments when
asked, and is acked only by an ack frame with ``code`` 200 within the deadline. Each socket is
a :class:`~.wsconn.Connection`; the faults (:meth:`LongConnHub.drop`,
:meth:`LongConnHub.half_open`) are on demand for tests and the page's buttons.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from lark_cards.api.errors import (
    APP_SECRET_INVALID,
    FIELD_VALIDATION_FAILED,
    WS_AUTH_FAILED,
    WS_CONNECTION_LIMIT,
    WS_FORBIDDEN,
    WS_SYSTEM_BUSY,
)
from lark_cards.transport.endpoint import ENDPOINT_PATH
from lark_cards.transport.frames import CARD, EVENT

from .delivery import ACK_DEADLINE, Outcome
from .wsconn import HALF_OPEN, LOST, OPEN, ClientConfig, Connection, socket_response, split

__all__ = ["ClientConfig", "Connection", "LongConnHub"]

log = logging.getLogger(__name__)

SOCKET_PATH = "/ws/v2"
MAX_CONNECTIONS = 50  # §2.1: at most 50 connections per app
TICKET_TTL = 300.0  # an endpoint URL is good for one connection, within 5 minutes
MAX_TICKETS = 1000  # unused tickets kept at most: a discovery flood cannot grow memory
NO_BOT = "no bot connected"
STOPPED = "the sandbox stopped"


@dataclass(frozen=True)
class _Ticket:
    device_id: str
    service_id: int
    expires: float


class LongConnHub:
    """The long connection's server for one app: routes, sockets, pushes, faults."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        client_config: ClientConfig | None = None,
        max_connections: int = MAX_CONNECTIONS,
        ack_deadline: float = ACK_DEADLINE,
        fragment_bytes: int | None = None,
        card_frames: bool = False,
        ticket_ttl: float = TICKET_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``fragment_bytes``: split every payload longer than this into fragments.
        ``card_frames``: push card callbacks as ``type=card`` frames (the legacy type the
        SDKs drop) instead of ``type=event``. ``clock`` times tickets (tests move it)."""
        self.app_id = app_id
        self.app_secret = app_secret
        self.client_config = client_config or ClientConfig()
        self.max_connections = max_connections
        self.ack_deadline = ack_deadline
        self.fragment_bytes = fragment_bytes
        self.card_frames = card_frames
        self.ticket_ttl = ticket_ttl
        self._clock = clock
        self._tickets: dict[str, _Ticket] = {}
        self._connections: dict[str, Connection] = {}
        self._ids = itertools.count(1)
        self._handshakes = 0  # admitted, not yet upgraded: they count against the limit
        self._changed = asyncio.Event()
        self._closed = False

    def add_routes(self, app: web.Application) -> None:
        """Serve discovery and the socket on ``app``; its shutdown closes every socket."""
        app.add_routes(
            [web.post(ENDPOINT_PATH, self._discover), web.get(SOCKET_PATH, self._socket)]
        )
        app.on_shutdown.append(self._on_shutdown)

    def page_routes(self) -> list[web.RouteDef]:
        """The page's API for the connections (under ``/api/``, so behind ``local_only``)."""
        return [
            web.get("/api/connections", self._list),
            web.post("/api/connections/{conn_id}/{fault:drop|half-open}", self._fault),
        ]

    # ----- connections and faults -----------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """Every connected socket, half-open ones included, oldest first."""
        return list(self._connections.values())

    @property
    def open_connections(self) -> list[Connection]:
        """The sockets a push may go to."""
        return [c for c in self._connections.values() if c.state == OPEN]

    async def wait_connected(self, count: int = 1) -> list[Connection]:
        """Wait until ``count`` connections are open (bound it with ``asyncio.timeout``)."""
        while len(self.open_connections) < count:
            await self._changed.wait()
        return self.open_connections

    def drop(self, conn_id: str) -> bool:
        """Abort connection ``conn_id`` (no close frame); False when there is none."""
        conn = self._connections.pop(conn_id, None)
        if conn is None:
            return False
        log.info("Long connection %s dropped on request", conn_id)
        conn.abort()
        conn.fail_pending(LOST)
        self._notify()
        return True

    def half_open(self, conn_id: str) -> bool:
        """Make ``conn_id`` deaf and mute while its socket stays open; False when unknown.
        Pushes waiting for its ack then time out, as they would on Feishu."""
        conn = self._connections.get(conn_id)
        if conn is None:
            return False
        log.info("Long connection %s is half-open on request", conn_id)
        conn.state = HALF_OPEN
        self._notify()
        return True

    # ----- pushes (the Channel) -------------------------------------------------------------

    async def post(self, payload: Mapping[str, Any], *, fragments: int | None = None) -> Outcome:
        """Push ``payload`` to one random open connection and wait for its ack;
        ``fragments`` overrides how many frames it takes (else ``fragment_bytes`` decides)."""
        choices = self.open_connections
        if not choices:
            return None, None, NO_BOT
        data = json.dumps(payload, ensure_ascii=False).encode()
        if fragments is None:
            fragments = math.ceil(len(data) / self.fragment_bytes) if self.fragment_bytes else 1
        kind = CARD if self.card_frames and _is_callback(payload) else EVENT
        return await random.choice(choices).push(kind, split(data, fragments), self.ack_deadline)

    async def close(self) -> None:
        """Refuse new connections, settle pending pushes, close every socket."""
        self._closed = True
        conns = list(self._connections.values())
        for conn in conns:
            conn.fail_pending(STOPPED)
        await asyncio.gather(*(conn.close() for conn in conns), return_exceptions=True)

    # ----- discovery and handshake (§2.2 item 1) ---------------------------------------------

    async def _discover(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("AppID", "AppSecret")
        ):
            problem = "the body must be a JSON object with the strings AppID and AppSecret"
            return web.json_response({"code": FIELD_VALIDATION_FAILED, "msg": problem}, status=400)
        if not (_same(body["AppID"], self.app_id) and _same(body["AppSecret"], self.app_secret)):
            return web.json_response({"code": APP_SECRET_INVALID, "msg": "app secret invalid"})
        if self._closed:
            return web.json_response({"code": WS_SYSTEM_BUSY, "msg": "system busy"})
        ticket, issued = self._issue()
        scheme = "wss" if request.secure else "ws"
        query = f"device_id={issued.device_id}&service_id={issued.service_id}&ticket={ticket}"
        data = {
            "URL": f"{scheme}://{request.host}{SOCKET_PATH}?{query}",
            "ClientConfig": self.client_config.to_json(),
        }
        return web.json_response({"code": 0, "msg": "", "data": data})

    def _issue(self) -> tuple[str, _Ticket]:
        """A new ticket, for a new device and service id; old and surplus tickets go."""
        now = self._clock()
        for key, old in list(self._tickets.items()):
            if old.expires <= now:
                del self._tickets[key]
        while len(self._tickets) >= MAX_TICKETS:
            del self._tickets[next(iter(self._tickets))]
        ticket = secrets.token_urlsafe(24)
        device_id, service_id = str(secrets.randbits(62)), secrets.randbelow(1 << 30) + 1
        self._tickets[ticket] = issued = _Ticket(device_id, service_id, now + self.ticket_ttl)
        return ticket, issued

    def _admit(self, query: Mapping[str, str]) -> _Ticket | web.Response:
        """The ticket a handshake may use, or the refusal lark-oapi reads from the headers."""
        if self._closed:
            return _refusal(WS_FORBIDDEN, "the sandbox is stopping")
        ticket = self._tickets.pop(query.get("ticket", ""), None)  # one use, even when refused
        if ticket is None or ticket.expires <= self._clock():
            return _refusal(WS_FORBIDDEN, "invalid ticket: unknown, used or expired")
        issued_for = (ticket.device_id, str(ticket.service_id))
        if (query.get("device_id"), query.get("service_id")) != issued_for:
            return _refusal(WS_FORBIDDEN, "invalid ticket: issued for another device")
        if len(self._connections) + self._handshakes >= self.max_connections:
            return _refusal(WS_AUTH_FAILED, "exceed connection limit", WS_CONNECTION_LIMIT)
        return ticket

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ws = socket_response()
        if not ws.can_prepare(request).ok:
            problem = "this is the long connection's WebSocket: send an upgrade request"
            return web.json_response({"code": FIELD_VALIDATION_FAILED, "msg": problem}, status=400)
        ticket = self._admit(request.query)
        if isinstance(ticket, web.Response):
            return ticket
        self._handshakes += 1
        try:
            await ws.prepare(request)
        finally:
            self._handshakes -= 1
        conn = Connection(
            f"c{next(self._ids)}",
            ticket.device_id,
            ticket.service_id,
            ws,
            request,
            self.client_config,
        )
        self._connections[conn.id] = conn
        self._notify()
        log.info("Long connection %s open (device %s)", conn.id, conn.device_id)
        try:
            await conn.serve()
        finally:
            if self._connections.pop(conn.id, None) is not None:
                self._notify()
            conn.fail_pending(LOST)
            log.info("Long connection %s closed", conn.id)
        return ws

    # ----- the rest -------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake :meth:`wait_connected` (the event is replaced, so each wait sees a change)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.close()

    async def _list(self, _request: web.Request) -> web.Response:
        return web.json_response([c.to_json() for c in self.connections])

    async def _fault(self, request: web.Request) -> web.Response:
        conn_id = request.match_info["conn_id"]
        act = self.drop if request.match_info["fault"] == "drop" else self.half_open
        if not act(conn_id):
            return web.json_response({"error": f"no connection {conn_id!r}"}, status=404)
        return web.json_response([c.to_json() for c in self.connections])


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def _is_callback(payload: Mapping[str, Any]) -> bool:
    header = payload.get("header")
    return isinstance(header, dict) and header.get("event_type") == "card.action.trigger"


def _refusal(status: int, reason: str, auth_code: int | None = None) -> web.Response:
    """A refused handshake: HTTP 403 and the ``handshake-*`` headers (§2.2 item 1)."""
    headers = {"handshake-status": str(status), "handshake-msg": reason}
    if auth_code is not None:
        headers["handshake-autherrcode"] = str(auth_code)
    return web.json_response({"code": status, "msg": reason}, status=403, headers=headers)
