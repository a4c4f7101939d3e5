"""``LongConnection`` against a small scripted Feishu: discovery, pings, acks, losses, stops.

The server here is written for the test so it can misbehave precisely (stay silent, refuse a
handshake, answer discovery with a given code); the sandbox's full long-connection server is
tested in test_sandbox_longconn.py and end to end with a real errbot in test_e2e_longconn.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from feishu_payloads import PLAIN, load, plain_body, with_ids

from lark_cards.transport import frames
from lark_cards.transport.dedup import MemoryClaims, TTLSet
from lark_cards.transport.endpoint import Backoff, Fatal
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.longconn import LongConnection
from lark_cards.transport.pushed import PushedEvents
from lark_cards.transport.reception import Reception

SERVICE = 77
TIMING = {"PingInterval": 1, "ReconnectCount": -1, "ReconnectInterval": 5, "ReconnectNonce": 0}


class ScriptedFeishu:
    """Discovery and the WebSocket route; every socket's received frames are kept."""

    def __init__(self) -> None:
        self.discoveries: list[dict[str, Any]] = []
        self.discovery_answers: list[tuple[int, dict[str, Any]]] = []  # used first, in order
        self.refuse_handshake: dict[str, str] | None = None
        self.tickets: list[str] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.received: list[list[frames.Frame]] = []
        self.silent = False  # stop answering pings (the socket looks alive but is deaf)
        self.timing: dict[str, Any] = dict(TIMING)  # discovery's ClientConfig
        self.pong = b'{"PingInterval":1}'
        self.close_at_once = False  # accept the socket, then close it
        self.discovery_hangs = False
        self.closed_by_client: list[int] = []
        self.opened = asyncio.Condition()
        self.server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/callback/ws/endpoint", self._discover)
        app.router.add_get("/ws/v2", self._socket)
        return app

    async def _discover(self, request: web.Request) -> web.Response:
        self.discoveries.append(await request.json())
        if self.discovery_hangs:
            await asyncio.sleep(30)
        if self.discovery_answers:
            status, body = self.discovery_answers.pop(0)
            return web.json_response(body, status=status)
        number = len(self.discoveries)
        url = f"ws://{request.host}/ws/v2?device_id=d{number}&service_id={SERVICE}&ticket=t{number}"
        return web.json_response(
            {"code": 0, "msg": "", "data": {"URL": url, "ClientConfig": self.timing}}
        )

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_handshake is not None:
            return web.Response(status=403, headers=self.refuse_handshake)
        self.tickets.append(request.query["ticket"])
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        received: list[frames.Frame] = []
        async with self.opened:
            self.sockets.append(socket)
            self.received.append(received)
            self.opened.notify_all()
        if self.close_at_once:
            await socket.close()
            return socket
        async for message in socket:
            if message.type is not WSMsgType.BINARY:
                continue
            frame = frames.decode(message.data)
            received.append(frame)
            if frame.type == frames.PING and not self.silent:
                pong = frames.Frame(service=frame.service, headers=(("type", "pong"),))
                await socket.send_bytes(frames.encode(replace(pong, payload=self.pong)))
        if socket.close_code is not None:
            self.closed_by_client.append(socket.close_code)
        return socket

    async def connected(self, count: int, limit: float = 10.0) -> web.WebSocketResponse:
        """The ``count``-th socket, once it is open."""
        async with self.opened:
            await asyncio.wait_for(self.opened.wait_for(lambda: len(self.sockets) >= count), limit)
        return self.sockets[count - 1]


async def wait_for_frame(
    received: list[frames.Frame], kind: str, limit: float = 5.0
) -> frames.Frame:
    for _ in range(int(limit * 50)):
        for frame in received:
            if frame.type == kind or (kind == "ack" and frame.method == frames.DATA):
                return frame
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} frame within {limit} s")


class Client:
    def __init__(self, feishu: ScriptedFeishu, url: str, claims: Any = None) -> None:
        self.dispatched: list[Envelope] = []
        settings = replace(PLAIN, base_url=url, mode="websocket", request_timeout=2.0)
        claims = claims or MemoryClaims(TTLSet(3600, 100))
        reception = Reception(self.dispatched.append, claims)
        self.connection = LongConnection(
            settings, PushedEvents(settings, reception), backoff=Backoff(rand=lambda: 0.0)
        )


@pytest.fixture
async def feishu() -> AsyncIterator[tuple[ScriptedFeishu, str]]:
    scripted = ScriptedFeishu()
    server = TestServer(scripted.app())
    await server.start_server()
    try:
        yield scripted, str(server.make_url("")).rstrip("/")
    finally:
        for socket in scripted.sockets:
            await socket.close()
        await server.close()


@pytest.fixture
async def client(feishu: tuple[ScriptedFeishu, str]) -> AsyncIterator[Client]:
    made = Client(*feishu)
    made.connection.start()
    try:
        yield made
    finally:
        await made.connection.close()


def pushed_event(payload: bytes, seq_id: int = 1) -> bytes:
    headers = (("type", "event"), ("message_id", f"p{seq_id}"), ("sum", "1"), ("seq", "0"))
    frame = frames.Frame(
        seq_id=seq_id,
        log_id=5,
        service=SERVICE,
        method=frames.DATA,
        headers=headers,
        payload=payload,
    )
    return frames.encode(frame)


async def test_it_discovers_with_the_apps_credentials_and_pings_with_the_service_id(feishu, client):
    scripted, _ = feishu
    await scripted.connected(1)
    assert scripted.discoveries == [{"AppID": PLAIN.app_id, "AppSecret": PLAIN.app_secret}]
    assert scripted.tickets == ["t1"]  # the URL was used exactly as discovery gave it
    ping = await wait_for_frame(scripted.received[0], "ping")
    assert (ping.service, ping.method, ping.seq_id, ping.log_id) == (SERVICE, frames.CONTROL, 0, 0)
    assert client.connection.config.ping_interval == 1.0


async def test_an_event_is_acked_with_the_same_frame_and_handed_on(feishu, client):
    scripted, _ = feishu
    socket = await scripted.connected(1)
    await socket.send_bytes(pushed_event(plain_body(load("p2p_text")), seq_id=42))
    ack = await wait_for_frame(scripted.received[0], "ack")
    assert (ack.seq_id, ack.log_id, ack.service) == (42, 5, SERVICE)
    assert ack.header("biz_rt") is not None
    assert json.loads(ack.payload or b"") == {"code": 200}
    assert [e.event_type for e in client.dispatched] == ["im.message.receive_v1"]


async def test_malformed_messages_are_ignored_and_the_connection_stays(feishu, client):
    scripted, _ = feishu
    socket = await scripted.connected(1)
    await socket.send_bytes(b"\xff\xff\xff")
    await socket.send_str("hello")
    await socket.send_bytes(pushed_event(plain_body(load("p2p_text"))))
    await wait_for_frame(scripted.received[0], "ack")
    assert len(scripted.sockets) == 1


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_a_lost_connection_is_replaced_after_a_new_discovery(feishu, client, how):
    scripted, _ = feishu
    first = await scripted.connected(1)
    if how == "close":
        await first.close()
    else:  # the network goes: no close frame
        transport = first._req.transport if first._req else None
        assert transport is not None
        transport.abort()
    second = await scripted.connected(2)
    assert scripted.tickets == ["t1", "t2"]
    assert client.connection.connections == 2
    await second.send_bytes(pushed_event(plain_body(load("p2p_text"))))
    await wait_for_frame(scripted.received[1], "ack")


async def test_a_silent_socket_is_declared_dead_within_the_liveness_time(feishu, client):
    scripted, _ = feishu
    await scripted.connected(1)
    scripted.silent = True  # pings go unanswered, as on a half-open socket
    started = asyncio.get_running_loop().time()
    await scripted.connected(2, limit=10)
    took = asyncio.get_running_loop().time() - started
    liveness = 2 * 1 + 1  # two ping intervals and a grace of one
    assert liveness - 1.2 < took < liveness + 2


async def test_wrong_credentials_stop_with_one_line_naming_them(feishu):
    scripted, url = feishu
    scripted.discovery_answers = [(200, {"code": 10014, "msg": "app secret invalid"})]
    with pytest.raises(Fatal, match=r"app_secret"):
        await asyncio.wait_for(Client(scripted, url).connection.run(), 5)
    assert len(scripted.discoveries) == 1


async def test_the_connection_limit_stops_instead_of_looping(feishu):
    scripted, url = feishu
    scripted.refuse_handshake = {
        "handshake-status": "514",
        "handshake-msg": "exceed conn limit",
        "handshake-autherrcode": "1000040350",
    }
    with pytest.raises(Fatal, match="50 long connections"):
        await asyncio.wait_for(Client(scripted, url).connection.run(), 5)


async def test_a_forbidden_handshake_is_fatal_only_when_fresh_tickets_keep_getting_it(feishu):
    scripted, url = feishu
    scripted.refuse_handshake = {"handshake-status": "403", "handshake-msg": "forbidden"}
    with pytest.raises(Fatal, match="self-built"):
        await asyncio.wait_for(Client(scripted, url).connection.run(), 10)
    assert len(scripted.discoveries) == 3  # a stale ticket would have passed the second time


async def test_transient_failures_are_retried_until_it_connects(feishu):
    scripted, url = feishu
    scripted.discovery_answers = [(503, {}), (200, {"code": 1, "msg": "system busy"})]
    retrying = Client(scripted, url)
    retrying.connection.start()
    try:
        await scripted.connected(1)
        assert len(scripted.discoveries) == 3  # two failures, one success
    finally:
        await retrying.connection.close()


async def test_close_sends_a_close_frame_and_nothing_reconnects(feishu, client):
    scripted, _ = feishu
    await scripted.connected(1)
    await client.connection.close()
    assert client.connection.task is not None
    assert client.connection.task.done()
    for _ in range(50):
        if scripted.closed_by_client:
            break
        await asyncio.sleep(0.02)
    assert scripted.closed_by_client == [1000]
    await asyncio.sleep(0.3)
    assert len(scripted.discoveries) == 1


async def test_close_while_connecting_ends_at_once(feishu):
    scripted, url = feishu
    scripted.discovery_answers = [(503, {})] * 100
    client = Client(scripted, url)
    task = client.connection.start()
    await asyncio.sleep(0.2)
    started = asyncio.get_running_loop().time()
    await client.connection.close()
    assert task.done()
    assert asyncio.get_running_loop().time() - started < 1.0
    with contextlib.suppress(asyncio.CancelledError):
        await task


class SlowClaims:
    """Claims that take ``seconds`` each (a busy SQLite, a slow Redis); records finished ones."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.claims = MemoryClaims(TTLSet(3600, 100))
        self.finished = 0

    async def claim(self, envelope: Envelope) -> bool:
        await asyncio.sleep(self.seconds)
        new = await self.claims.claim(envelope)
        self.finished += 1
        return new


def three_events() -> list[bytes]:
    return [
        pushed_event(
            plain_body(with_ids(load("p2p_text"), event_id=f"e{n}", message_id=f"om{n}")), n
        )
        for n in range(1, 4)
    ]


@contextlib.asynccontextmanager
async def serving(scripted: ScriptedFeishu, url: str, claims: Any = None) -> AsyncIterator[Client]:
    """A started client, closed when the block ends."""
    client = Client(scripted, url, claims)
    client.connection.start()
    try:
        yield client
    finally:
        await client.connection.close()


async def until(predicate: Any, limit: float) -> None:
    """Poll ``predicate`` every 20 ms for at most ``limit`` seconds."""
    for _ in range(int(limit * 50)):
        if predicate():
            return
        await asyncio.sleep(0.02)


def acks(received: list[frames.Frame]) -> list[frames.Frame]:
    return [f for f in received if f.method == frames.DATA]


async def test_close_acks_every_frame_already_read_before_its_close_frame(feishu):
    scripted, url = feishu
    client = Client(scripted, url, SlowClaims(0.5))
    client.connection.start()
    socket = await scripted.connected(1)
    for event in three_events():
        await socket.send_bytes(event)
    await asyncio.sleep(0.1)  # read, not yet claimed
    await client.connection.close()
    acked = acks(scripted.received[0])
    assert sorted(a.seq_id for a in acked) == [1, 2, 3]
    assert {json.loads(a.payload or b"")["code"] for a in acked} == {200}
    assert len(client.dispatched) == 3


async def test_a_lost_socket_never_cuts_a_claim_in_half(feishu):
    """The socket goes while claims run: no ack can be sent, but every claim finishes and its
    event runs; Feishu's next push of them finds the claims."""
    scripted, url = feishu
    async with serving(scripted, url, SlowClaims(1.0)) as client:
        socket = await scripted.connected(1)
        for event in three_events():
            await socket.send_bytes(event)
        await asyncio.sleep(0.2)
        socket._req.transport.abort()  # type: ignore[union-attr]
        await scripted.connected(2)
        await until(lambda: len(client.dispatched) == 3, 5)
        assert len(client.dispatched) == 3


async def test_a_claim_slower_than_feishus_deadline_is_acked_500_in_time_and_still_runs(feishu):
    scripted, url = feishu
    async with serving(scripted, url, SlowClaims(4.0)) as client:
        socket = await scripted.connected(1)
        started = asyncio.get_running_loop().time()
        await socket.send_bytes(three_events()[0])
        ack = await wait_for_frame(scripted.received[0], "ack", limit=4)
        took = asyncio.get_running_loop().time() - started
        assert json.loads(ack.payload or b"") == {"code": 500}
        assert took < 3.0  # Feishu waits 3 s
        await until(lambda: client.dispatched, 6)
        assert len(client.dispatched) == 1  # the claim went on and the event runs, once


async def test_frames_are_acked_side_by_side_not_one_after_another(feishu):
    scripted, url = feishu
    async with serving(scripted, url, SlowClaims(1.0)):
        socket = await scripted.connected(1)
        started = asyncio.get_running_loop().time()
        for event in three_events():
            await socket.send_bytes(event)
        await until(lambda: len(acks(scripted.received[0])) == 3, 4)
        assert len(acks(scripted.received[0])) == 3
        assert asyncio.get_running_loop().time() - started < 2.0  # not 3 × 1 s


async def test_a_socket_closed_at_once_is_retried_with_growing_waits_not_a_hot_loop(feishu):
    scripted, url = feishu
    scripted.close_at_once = True
    scripted.timing = {**TIMING, "ReconnectNonce": 0, "ReconnectInterval": 0}
    client = Client(scripted, url)
    client.connection.start()
    await asyncio.sleep(3.0)
    await client.connection.close()
    assert 2 <= len(scripted.discoveries) <= 5  # 0.5 s, 1 s, 2 s apart at least


async def test_a_pong_that_shortens_the_interval_retimes_the_pings_at_once(feishu):
    scripted, url = feishu
    scripted.timing = {**TIMING, "PingInterval": 30}  # discovery: 30 s; pongs then say 1 s
    async with serving(scripted, url):
        await scripted.connected(1)
        await asyncio.sleep(4.5)  # the 30 s pinger would be declared dead by the 1 s liveness
        assert len(scripted.sockets) == 1
        pings = [f for f in scripted.received[0] if f.type == frames.PING]
        assert len(pings) >= 4


@pytest.mark.parametrize(
    "pong",
    [
        b'{"ReconnectCount": Infinity}',
        b'{"ReconnectCount": 1e999}',
        b'{"PingInterval": ' + b"9" * 400 + b"}",
        b"\xff",
    ],
)
async def test_absurd_timing_in_a_pong_is_ignored(feishu, pong):
    scripted, url = feishu
    scripted.pong = pong
    async with serving(scripted, url) as client:
        socket = await scripted.connected(1)
        await asyncio.sleep(1.5)
        await socket.send_bytes(pushed_event(plain_body(load("p2p_text"))))
        await wait_for_frame(scripted.received[0], "ack")
        assert client.connection.task is not None
        assert not client.connection.task.done()
        assert client.connection.config.ping_interval == 1.0


async def test_close_during_a_discovery_that_hangs_is_immediate(feishu):
    scripted, url = feishu

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    scripted._discover = hang  # type: ignore[method-assign]
    client = Client(scripted, url)
    client.connection.start()
    await asyncio.sleep(0.3)
    started = asyncio.get_running_loop().time()
    await client.connection.close()
    assert asyncio.get_running_loop().time() - started < 0.5
    assert scripted.discoveries  # it was waiting on one
