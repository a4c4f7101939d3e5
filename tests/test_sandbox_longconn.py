"""The sandbox speaks Feishu's long connection (docs/feishu-platform.md §2.2) like Feishu:
one-time endpoint URLs, handshake refusals in headers, pongs carrying the ClientConfig, pushes
to one random connection, fragments cut mid-character, acks that carry callback answers, the
retry ladder for pushes not acked, and faults on demand (drop, half-open). The client here is
a minimal one written with aiohttp and the shared frame codec, not the bot's."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestServer

from lark_cards.api.errors import (
    APP_SECRET_INVALID,
    CALLBACK_BAD_BODY,
    CALLBACK_BAD_STATUS,
    CALLBACK_TIMEOUT,
    WS_CONNECTION_LIMIT,
    WS_SYSTEM_BUSY,
)
from lark_cards.sandbox.delivery import Deliverer, card_action_envelope, message_envelope
from lark_cards.sandbox.longconn import ClientConfig, LongConnHub
from lark_cards.sandbox.openapi import FakeOpenPlatform
from lark_cards.sandbox.runner import Sandbox, SandboxConfig
from lark_cards.sandbox.state import ALICE, BOB, GROUP_CHAT, StoredMessage
from lark_cards.transport import frames
from lark_cards.transport.frames import CONTROL, DATA, Frame

APP_ID = "cli_longconn_test"
APP_SECRET = "longconn-secret"
CONFIG = ClientConfig(reconnect_count=3, reconnect_interval=1, reconnect_nonce=0, ping_interval=1)
Answer = Callable[[Frame], Awaitable[Frame | None]]


@dataclass
class Client:
    """A bot's end of one long connection, as small as a test can have it."""

    ws: aiohttp.ClientWebSocketResponse
    service_id: int
    device_id: str
    pushes: list[Frame] = field(default_factory=list)

    async def frame(self) -> Frame:
        message = await self.ws.receive(2.0)
        assert message.type == WSMsgType.BINARY, message
        return frames.decode(message.data)

    async def silent(self, within: float = 0.3) -> None:
        with pytest.raises(TimeoutError):
            await self.ws.receive(within)

    async def send(self, frame: Frame) -> None:
        await self.ws.send_bytes(frames.encode(frame))

    async def ping(self) -> None:
        await self.send(frames.ping(self.service_id))

    async def ack(self, frame: Frame, code: int = 200, data: Any = None) -> None:
        await self.send(frames.ack(frame, code, elapsed_ms=3, data=data))

    async def answer(self, reply: Answer) -> None:
        """Until the socket ends: keep every push, send back what ``reply`` makes of it."""
        async for message in self.ws:
            if message.type == WSMsgType.BINARY:
                frame = frames.decode(message.data)
                self.pushes.append(frame)
                answer = await reply(frame)
                if answer is not None:
                    await self.send(answer)


async def ok(frame: Frame) -> Frame:
    return frames.ack(frame, 200, elapsed_ms=1)


@dataclass
class Rig:
    hub: LongConnHub
    url: str
    session: aiohttp.ClientSession
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)  # kept: a lost one would close

    async def discover(self, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        if body is None and not kwargs:
            body = {"AppID": APP_ID, "AppSecret": APP_SECRET}
        if body is not None:
            kwargs["json"] = body
        headers = {"locale": "zh"}
        async with self.session.post(
            self.url + "/callback/ws/endpoint", headers=headers, **kwargs
        ) as response:
            return response.status, await response.json()

    async def endpoint(self) -> str:
        status, body = await self.discover()
        assert (status, body["code"]) == (200, 0), body
        return str(body["data"]["URL"])

    async def connect(self, url: str | None = None) -> Client:
        """Discover (unless given the URL) and connect; returns once the hub has the socket."""
        url = url or await self.endpoint()
        ws = await self.session.ws_connect(url, autoping=False)
        query = parse_qs(urlsplit(url).query)
        client = Client(ws, int(query["service_id"][0]), query["device_id"][0])
        self.clients.append(client)
        for _ in range(200):
            if any(c.device_id == client.device_id for c in self.hub.connections):
                return client
            await asyncio.sleep(0.01)
        raise AssertionError("the hub never registered the connection")

    def id_of(self, client: Client) -> str:
        return next(c.id for c in self.hub.connections if c.device_id == client.device_id)

    def answering(self, client: Client, reply: Answer = ok) -> Client:
        self.tasks.append(asyncio.create_task(client.answer(reply)))
        return client


async def _serve(app: web.Application, hub: LongConnHub) -> AsyncIterator[Rig]:
    server = TestServer(app)
    await server.start_server()
    session = aiohttp.ClientSession()
    rig = Rig(hub, str(server.make_url("")).rstrip("/"), session)
    try:
        yield rig
    finally:
        for task in rig.tasks:
            task.cancel()
        await asyncio.gather(*rig.tasks, return_exceptions=True)
        await session.close()
        await server.close()


@pytest.fixture
async def make_rig() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """A fake Open Platform app with a hub attached the way a test harness attaches one."""
    started: list[AsyncIterator[Rig]] = []

    async def make(**options: Any) -> Rig:
        options = {"client_config": CONFIG, "ack_deadline": 0.5, **options}
        hub = LongConnHub(app_id=APP_ID, app_secret=APP_SECRET, **options)
        app = FakeOpenPlatform(app_id=APP_ID, app_secret=APP_SECRET).app()
        hub.add_routes(app)
        serving = _serve(app, hub)
        started.append(serving)
        return await anext(serving)

    yield make
    for serving in started:
        await serving.aclose()


@pytest.fixture
async def rig(make_rig: Callable[..., Awaitable[Rig]]) -> Rig:
    return await make_rig()


def _event(text: str = "!help") -> dict[str, Any]:
    return message_envelope(text, chat_id=GROUP_CHAT, sender_open_id=ALICE, app_id=APP_ID)


def _deliverer(hub: LongConnHub, **options: Any) -> Deliverer:
    return Deliverer(None, channel=hub, **{"retry_delays": (0.05, 0.05), **options})


# ----- discovery and handshake ------------------------------------------------------------------


async def test_discovery_gives_a_fresh_one_time_url_and_the_client_config(rig: Rig):
    status, body = await rig.discover()
    assert status == 200
    assert (body["code"], body["msg"]) == (0, "")
    assert body["data"]["ClientConfig"] == {
        "ReconnectCount": 3,
        "ReconnectInterval": 1,
        "ReconnectNonce": 0,
        "PingInterval": 1,
    }
    url = urlsplit(body["data"]["URL"])
    assert (url.scheme, url.netloc, url.path) == ("ws", urlsplit(rig.url).netloc, "/ws/v2")
    first = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert set(first) == {"device_id", "service_id", "ticket"}
    assert int(first["service_id"]) > 0
    second = parse_qs(urlsplit(await rig.endpoint()).query)
    for key in first:
        assert second[key][0] != first[key], key
    assert LongConnHub(app_id="a", app_secret="b").client_config.to_json() == {
        "ReconnectCount": -1,
        "ReconnectInterval": 120,
        "ReconnectNonce": 30,
        "PingInterval": 120,
    }  # Feishu's defaults (§2.2)


@pytest.mark.parametrize(
    "body",
    [{"AppID": APP_ID, "AppSecret": "wrong"}, {"AppID": "cli_other", "AppSecret": APP_SECRET}],
)
async def test_wrong_credentials_get_feishus_code(rig: Rig, body: dict[str, str]):
    assert await rig.discover(body) == (
        200,
        {"code": APP_SECRET_INVALID, "msg": "app secret invalid"},
    )


@pytest.mark.parametrize(
    "request_options",
    [
        {"data": b"not json"},
        {"data": b"\xff\xfe"},
        {"data": b"[" * 100_000 + b"]" * 100_000},
        {"json": ["AppID", "AppSecret"]},
        {"json": {"AppID": APP_ID}},
        {"json": {"AppID": APP_ID, "AppSecret": 42}},
        {"data": b""},
    ],
)
async def test_a_bad_discovery_body_is_a_4xx_json_answer(rig: Rig, request_options: dict[str, Any]):
    status, body = await rig.discover(**request_options)
    assert status == 400
    assert body["code"] != 0
    assert "AppID" in body["msg"]


async def _refused(rig: Rig, url: str) -> aiohttp.WSServerHandshakeError:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await rig.session.ws_connect(url)
    assert refused.value.status == 403
    return refused.value


async def test_a_ticket_works_once(rig: Rig):
    url = await rig.endpoint()
    await rig.connect(url)
    refusal = await _refused(rig, url)
    assert refusal.headers is not None
    assert refusal.headers["handshake-status"] == "403"
    assert "ticket" in refusal.headers["handshake-msg"]
    query = parse_qs(urlsplit(url).query)
    forged = url.replace(query["ticket"][0], "forged")
    assert (await _refused(rig, forged)).headers["handshake-status"] == "403"  # type: ignore[index]


async def test_a_ticket_expires_and_belongs_to_its_device(make_rig):
    now = [1000.0]
    rig = await make_rig(clock=lambda: now[0])
    late = await rig.endpoint()
    now[0] += 301
    assert (await _refused(rig, late)).headers["handshake-status"] == "403"
    one, other = await rig.endpoint(), await rig.endpoint()
    device = parse_qs(urlsplit(other).query)["device_id"][0]
    swapped = one.replace(parse_qs(urlsplit(one).query)["device_id"][0], device)
    assert "another device" in (await _refused(rig, swapped)).headers["handshake-msg"]


async def test_more_connections_than_the_limit_are_refused_with_feishus_headers(make_rig):
    rig = await make_rig(max_connections=2)
    await rig.connect()
    await rig.connect()
    refusal = await _refused(rig, await rig.endpoint())
    assert refusal.headers is not None
    assert refusal.headers["handshake-status"] == "514"
    assert refusal.headers["handshake-autherrcode"] == str(WS_CONNECTION_LIMIT)
    assert refusal.headers["handshake-msg"] == "exceed connection limit"
    assert len(rig.hub.connections) == 2


async def test_a_plain_get_of_the_socket_path_is_a_4xx(rig: Rig):
    async with rig.session.get(rig.url + "/ws/v2?ticket=x") as response:
        assert response.status == 400
        assert (await response.json())["code"] != 0


# ----- pings and pushes -------------------------------------------------------------------------


async def test_a_ping_gets_a_pong_carrying_the_client_config(rig: Rig):
    client = await rig.connect()
    assert rig.hub.connections[0].last_ping is None
    await client.ping()
    pong = await client.frame()
    assert (pong.method, pong.type, pong.service) == (CONTROL, "pong", client.service_id)
    assert json.loads(pong.payload or b"") == CONFIG.to_json()
    assert rig.hub.connections[0].last_ping is not None
    await client.ws.ping(b"ws-level")  # WebSocket pings are answered too, while open
    message = await client.ws.receive(2)
    assert (message.type, message.data) == (WSMsgType.PONG, b"ws-level")


async def test_an_acked_push_is_one_data_frame_with_the_webhooks_json(rig: Rig):
    client = rig.answering(await rig.connect())
    deliverer = _deliverer(rig.hub)
    payload = _event("飞书 !status")
    await deliverer.push(payload)
    assert [(a.number, a.status, a.error) for a in deliverer.attempts] == [(0, 200, None)]
    [frame] = client.pushes
    assert (frame.method, frame.service, frame.type) == (DATA, client.service_id, "event")
    assert (frame.header("sum"), frame.header("seq")) == ("1", "0")
    assert frame.header("message_id")
    assert frame.header("trace_id")
    assert frame.seq_id >= 1
    assert json.loads(frame.payload or b"") == payload  # plaintext, not {"encrypt": …}
    assert rig.hub.connections[0].pushes == 1


async def test_a_push_not_acked_in_time_is_pushed_again_on_the_ladder(make_rig):
    rig = await make_rig(ack_deadline=0.2)
    late: list[Frame] = []

    async def first_late(frame: Frame) -> Frame | None:
        if not late:
            late.append(frame)
            return None  # the ack that never comes
        return await ok(frame)

    client = rig.answering(await rig.connect(), first_late)
    deliverer = _deliverer(rig.hub)
    payload = _event()
    await deliverer.push(payload)
    assert [(a.number, a.status, a.error) for a in deliverer.attempts] == [
        (0, None, "timeout"),
        (1, 200, None),
    ]
    first, second = client.pushes
    assert first.header("message_id") != second.header("message_id")
    assert json.loads(first.payload or b"") == json.loads(second.payload or b"") == payload
    await client.ack(first)  # too late now: ignored
    await asyncio.sleep(0.05)
    assert len(deliverer.attempts) == 2


async def test_an_ack_with_code_500_is_a_failure_and_retried(rig: Rig):
    codes = [500, 500]

    async def failing(frame: Frame) -> Frame:
        return frames.ack(frame, codes.pop(0) if codes else 200, elapsed_ms=1)

    rig.answering(await rig.connect(), failing)
    deliverer = _deliverer(rig.hub)
    await deliverer.push(_event())
    assert [a.status for a in deliverer.attempts] == [500, 500, 200]
    dropped = _deliverer(rig.hub, retry_delays=())
    codes[:] = [500]
    await dropped.push(_event())
    assert [a.acked for a in dropped.attempts] == [False]


async def test_with_no_bot_connected_a_push_fails_like_an_unreachable_bot(rig: Rig):
    deliverer = _deliverer(rig.hub, retry_delays=(0.01,))
    await deliverer.push(_event())
    assert [(a.status, a.error) for a in deliverer.attempts] == [(None, "no bot connected")] * 2


def _fragments_of(client: Client) -> list[Frame]:
    return sorted(client.pushes, key=lambda f: int(f.header("seq") or 0))


async def test_a_fragmented_push_cuts_characters_and_joins_as_bytes(rig: Rig):
    async def ack_when_whole(frame: Frame) -> Frame | None:
        whole = len(client.pushes) == int(frame.header("sum") or 0)
        return await ok(frame) if whole else None

    client = rig.answering(await rig.connect(), ack_when_whole)
    payload = _event("飞书卡片 " * 40)
    assert await rig.hub.post(payload, fragments=5) == (200, b"", None)
    parts = _fragments_of(client)
    assert [f.header("seq") for f in parts] == ["0", "1", "2", "3", "4"]
    assert {f.header("sum") for f in parts} == {"5"}
    assert len({f.header("message_id") for f in parts}) == 1
    assert len({f.seq_id for f in parts}) == 5
    cut = 0
    for part in parts:
        try:
            (part.payload or b"").decode()
        except UnicodeDecodeError:
            cut += 1
    assert cut, "no fragment boundary fell inside a character"
    assert json.loads(b"".join(p.payload or b"" for p in parts)) == payload


async def test_fragment_bytes_splits_long_payloads_sandbox_wide(make_rig):
    rig = await make_rig(fragment_bytes=200)
    client = await rig.connect()
    payload = _event("长" * 300)
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    push = asyncio.create_task(rig.hub.post(payload))
    parts = [await client.frame() for _ in range(-(-size // 200))]
    assert {len(p.payload or b"") for p in parts} <= {size // len(parts), size // len(parts) + 1}
    await client.ack(parts[-1])
    assert await push == (200, b"", None)
    short = asyncio.create_task(rig.hub.post({"header": {"event_id": "x"}}))
    assert (await client.frame()).header("sum") == "1"
    short.cancel()


async def test_cluster_mode_sends_each_push_to_exactly_one_random_connection(rig: Rig):
    one, two = [rig.answering(await rig.connect()) for _ in range(2)]
    outcomes = await asyncio.gather(*(rig.hub.post(_event(f"!echo {n}")) for n in range(40)))
    assert all(outcome == (200, b"", None) for outcome in outcomes)
    assert len(one.pushes) + len(two.pushes) == 40
    assert one.pushes
    assert two.pushes
    texts = Counter(
        json.loads(json.loads(f.payload or b"")["event"]["message"]["content"])["text"]
        for f in one.pushes + two.pushes
    )
    assert set(texts.values()) == {1}


async def test_a_card_callback_is_answered_by_the_acks_data(rig: Rig):
    answers: list[Any] = [{"toast": {"type": "success", "content": "Done"}}]

    async def answer(frame: Frame) -> Frame:
        return frames.ack(frame, 200, elapsed_ms=1, data=answers.pop(0) if answers else None)

    client = rig.answering(await rig.connect(), answer)
    deliverer = _deliverer(rig.hub)
    click = card_action_envelope(
        {"tag": "button", "value": {"cmd": "!ok"}},
        operator_open_id=BOB,
        message_id="om_x",
        chat_id=GROUP_CHAT,
        app_id=APP_ID,
    )
    first = await deliverer.callback(click)
    assert (first.body, first.error_code) == (
        {"toast": {"type": "success", "content": "Done"}},
        None,
    )
    assert (await deliverer.callback(click)).body == {}  # an ack without data
    assert [f.type for f in client.pushes] == ["event", "event"]  # new callbacks are events
    assert deliverer.attempts == []  # a callback is not an event delivery


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (lambda f: frames.ack(f, 500, elapsed_ms=1), CALLBACK_BAD_STATUS),
        (lambda f: None, CALLBACK_TIMEOUT),
        (lambda f: _raw_ack(f, {"code": 200, "data": "%%not base64%%"}), CALLBACK_BAD_BODY),
        (lambda f: _raw_ack(f, {"code": 200, "data": _b64([1, 2])}), CALLBACK_BAD_BODY),
    ],
)
async def test_a_failed_callback_shows_feishus_client_error(
    make_rig, answer: Callable[[Frame], Frame | None], code: int
):
    rig = await make_rig(ack_deadline=0.3)

    async def reply(frame: Frame) -> Frame | None:
        return answer(frame)

    client = rig.answering(await rig.connect(), reply)
    click = card_action_envelope({}, operator_open_id=BOB, message_id="om_x", chat_id=GROUP_CHAT)
    assert (await _deliverer(rig.hub).callback(click)).error_code == code
    assert len(client.pushes) == 1  # callbacks are not retried


async def test_card_frames_option_pushes_callbacks_as_type_card(make_rig):
    rig = await make_rig(card_frames=True)
    client = rig.answering(await rig.connect())
    click = card_action_envelope({}, operator_open_id=BOB, message_id="om_x", chat_id=GROUP_CHAT)
    assert (await _deliverer(rig.hub).callback(click)).body == {}
    await rig.hub.post(_event())
    assert [f.type for f in client.pushes] == ["card", "event"]


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _raw_ack(frame: Frame, body: Any) -> Frame:
    """An ack frame whose payload is ``body`` as it is, right or wrong."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return replace(frames.ack(frame, 200, elapsed_ms=1), payload=raw)


# ----- faults -----------------------------------------------------------------------------------


async def test_a_half_open_connection_answers_nothing_and_gets_no_pushes(rig: Rig):
    deaf = await rig.connect()
    live = rig.answering(await rig.connect())
    assert rig.hub.half_open(rig.id_of(deaf))
    assert [c.state for c in rig.hub.connections] == ["half-open", "open"]
    await deaf.ping()
    await deaf.ws.ping(b"anyone?")
    await deaf.silent()  # no pong of either kind
    assert rig.hub.connections[0].last_ping is None
    for _ in range(10):
        assert await rig.hub.post(_event()) == (200, b"", None)
    assert len(live.pushes) == 10
    assert not rig.hub.half_open("c404")


async def test_a_half_open_connection_does_not_even_answer_a_close_frame(rig: Rig):
    url = await rig.endpoint()
    ws = await rig.session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=0.3))
    await asyncio.sleep(0.05)
    [conn] = rig.hub.connections
    rig.hub.half_open(conn.id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ws.close()  # no close frame comes back: the client gives up and cuts the socket
    assert loop.time() - started >= 0.25
    for _ in range(100):
        if not rig.hub.connections:
            break
        await asyncio.sleep(0.02)
    assert rig.hub.connections == []  # and then the hub notices the socket is gone


async def test_a_push_waiting_on_a_connection_that_turns_half_open_times_out(make_rig):
    rig = await make_rig(ack_deadline=0.3)
    client = await rig.connect()
    push = asyncio.create_task(rig.hub.post(_event()))
    frame = await client.frame()
    rig.hub.half_open(rig.id_of(client))
    await client.ack(frame)  # ignored: the connection is deaf now
    assert await push == (None, None, "timeout")
    assert await rig.hub.post(_event()) == (None, None, "no bot connected")


async def test_a_dropped_connection_ends_without_a_close_frame(rig: Rig):
    client = await rig.connect()
    waiting = asyncio.create_task(rig.hub.post(_event()))
    await client.frame()
    assert rig.hub.drop(rig.id_of(client))
    message = await client.ws.receive(2)
    assert message.type == WSMsgType.CLOSED  # the socket ended; no CLOSE frame came first
    assert await waiting == (None, None, "connection lost")
    assert rig.hub.connections == []
    assert not rig.hub.drop("c1")
    await rig.connect()  # a new discovery reconnects
    assert len(rig.hub.open_connections) == 1


async def test_wait_connected_returns_once_enough_are_open(rig: Rig):
    waiting = asyncio.create_task(rig.hub.wait_connected(2))
    await rig.connect()
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await rig.connect()
    assert len(await asyncio.wait_for(waiting, 2)) == 2


async def test_closing_the_hub_closes_sockets_and_settles_pushes(rig: Rig):
    client = await rig.connect()
    deaf = await rig.connect()
    rig.hub.half_open(rig.id_of(deaf))
    waiting = asyncio.create_task(rig.hub.post(_event()))
    await client.frame()
    closing = asyncio.create_task(rig.hub.close())
    message = await client.ws.receive(2)
    assert (message.type, message.data) == (WSMsgType.CLOSE, WSCloseCode.GOING_AWAY)
    await asyncio.wait_for(closing, 3)
    assert await waiting == (None, None, "the sandbox stopped")
    assert (await deaf.ws.receive(2)).type == WSMsgType.CLOSED  # half-open: cut
    status, body = await rig.discover()
    assert (status, body["code"]) == (200, WS_SYSTEM_BUSY)


async def test_hostile_clients_never_take_the_server_down(rig: Rig):
    hostile = await rig.connect()
    await hostile.ws.send_bytes(b"\xff\xff\xff garbage")
    await hostile.ws.send_bytes(b"")
    await hostile.ws.send_str("a text frame")
    await hostile.send(Frame(method=DATA, headers=(("message_id", "nope"),), payload=b"{}"))
    await hostile.send(Frame(method=DATA, payload=b"[" * 50_000))
    await hostile.send(Frame(method=7, headers=(("type", "ping"),)))
    await hostile.send(Frame(method=CONTROL, headers=(("type", "pong"),)))
    await hostile.ping()  # still served after all that
    assert (await hostile.frame()).type == "pong"
    await hostile.ws.close()

    client = await rig.connect()
    push = asyncio.create_task(rig.hub.post(_event()))
    frame = await client.frame()
    for bad in (b"not json", b'{"code": "200"}', b'{"code": true}', b"[]", b""):
        await client.send(_raw_ack(frame, bad))
    await client.send(replace(frames.ack(frame, 200, elapsed_ms=1), seq_id=frame.seq_id + 99))
    await client.ack(frame)
    assert await push == (200, b"", None)  # only the real ack counted

    await client.ws.send_bytes(b"x" * (2 << 20))  # over the message limit: that socket ends
    message = await client.ws.receive(2)
    assert message.type == WSMsgType.CLOSE
    assert message.data == WSCloseCode.MESSAGE_TOO_BIG
    fresh = await rig.connect()
    await fresh.ping()
    assert (await fresh.frame()).type == "pong"
    assert (await rig.discover())[0] == 200


# ----- in the sandbox ---------------------------------------------------------------------------


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxConfig(port=0, client_config=CONFIG, ack_deadline=0.5))
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


async def test_the_sandbox_defaults_to_the_long_connection(sandbox: Sandbox):
    assert sandbox.hub is not None
    assert sandbox.bot_identity() == {
        "app_id": sandbox.config.app_id,
        "app_secret": sandbox.config.app_secret,
        "domain": sandbox.url,
        "mode": "websocket",
    }
    with pytest.raises(ValueError, match="webhook"):
        SandboxConfig(bot_url="http://127.0.0.1:1/lark/events")
    with pytest.raises(ValueError, match="mode"):
        SandboxConfig(mode="carrier-pigeon")


async def test_the_page_sends_and_clicks_through_the_long_connection(sandbox: Sandbox):
    assert sandbox.hub is not None
    rig = Rig(sandbox.hub, sandbox.url, aiohttp.ClientSession())
    rig_app_id = sandbox.config.app_id, sandbox.config.app_secret
    try:
        status, body = await rig.discover({"AppID": rig_app_id[0], "AppSecret": rig_app_id[1]})
        assert status == 200

        async def answer(frame: Frame) -> Frame:
            event = json.loads(frame.payload or b"")
            if event["header"]["event_type"] == "card.action.trigger":
                return frames.ack(frame, 200, elapsed_ms=1, data={"toast": {"content": "Yes"}})
            return frames.ack(frame, 200, elapsed_ms=1)

        client = rig.answering(await rig.connect(body["data"]["URL"]), answer)
        async with rig.session.get(sandbox.url + "/api/state") as response:
            state = await response.json()
        assert state["mode"] == "websocket"
        [conn] = state["connections"]
        assert conn["state"] == "open"
        assert set(conn) >= {"id", "device_id", "state", "connected_at", "last_ping"}

        text = {"chat_id": GROUP_CHAT, "sender": BOB, "text": "!status"}
        async with rig.session.post(sandbox.url + "/api/send", json=text) as response:
            sent = await response.json()
        stored = sandbox.platform.conversations.get(sent["message_id"])
        assert stored is not None
        for _ in range(100):
            if stored.delivery == "delivered":
                break
            await asyncio.sleep(0.02)
        assert stored.delivery == "delivered"
        card = StoredMessage(
            message_id=sandbox.platform.conversations.new_id(),
            chat_id=GROUP_CHAT,
            msg_type="interactive",
            content={"schema": "2.0", "body": {"elements": []}},
            uuid=None,
            sender_id=sandbox.platform.app_id,
        )
        sandbox.platform.conversations.add(card)
        click = {"message_id": card.message_id, "operator": BOB, "action": {"tag": "button"}}
        async with rig.session.post(sandbox.url + "/api/action", json=click) as response:
            assert (await response.json()) == {"toast": {"type": "info", "content": "Yes"}}
        assert len(client.pushes) == 2
    finally:
        for task in rig.tasks:
            task.cancel()
        await rig.session.close()


async def test_the_pages_api_lists_drops_and_half_opens_connections(sandbox: Sandbox):
    assert sandbox.hub is not None
    config = sandbox.config
    async with aiohttp.ClientSession() as session:
        rig = Rig(sandbox.hub, sandbox.url, session)
        credentials = {"AppID": config.app_id, "AppSecret": config.app_secret}
        first = await rig.connect((await rig.discover(credentials))[1]["data"]["URL"])
        second = await rig.connect((await rig.discover(credentials))[1]["data"]["URL"])
        one, two = rig.id_of(first), rig.id_of(second)
        api = sandbox.url + "/api/connections"
        async with session.post(f"{api}/{two}/half-open", json={}) as response:
            assert response.status == 200
            assert [c["state"] for c in await response.json()] == ["open", "half-open"]
        async with session.post(f"{api}/{one}/drop", data="{}") as response:
            assert response.status == 415  # the page's API wants JSON, like every POST
        async with session.post(f"{api}/{one}/drop", json={}) as response:
            assert [c["id"] for c in await response.json()] == [two]
        assert (await first.ws.receive(2)).type == WSMsgType.CLOSED
        async with session.post(f"{api}/{one}/drop", json={}) as response:
            assert response.status == 404
        async with session.get(api) as response:
            assert [c["state"] for c in await response.json()] == ["half-open"]
