"""Pushed data frames → the ack Feishu gets (``PushedEvents``), and the pure set-up rules:
discovery answers, refused handshakes, Feishu's timing and the waits between tries."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import pytest
from feishu_payloads import PLAIN, load, plain_body, with_ids

from lark_cards.transport import frames
from lark_cards.transport.dedup import MemoryClaims, TTLSet
from lark_cards.transport.endpoint import (
    Backoff,
    ClientConfig,
    Fatal,
    Forbidden,
    Transient,
    handshake_error,
    read_endpoint,
)
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.pushed import PushedEvents
from lark_cards.transport.reception import Reception

WS_URL = (
    "wss://msg-frontier.feishu.cn/ws/v2?fpid=493&aid=552564&device_id=7d1&access_key=a1"
    "&service_id=33554678&ticket=t-1"
)


class FailingClaims:
    async def claim(self, envelope: Envelope) -> bool:
        raise ConnectionError("redis is down")


class Pushed:
    """A ``PushedEvents`` over an in-memory claim store; records dispatches."""

    def __init__(self, *, claims: Any = None, busy: bool = False) -> None:
        self.dispatched: list[Envelope] = []
        self.answered: list[Envelope] = []
        reception = Reception(
            self.dispatched.append,
            claims or MemoryClaims(TTLSet(3600, 1000)),
            respond=self._respond,
            busy=lambda: busy,
        )
        self.clock = 100.0
        self.events = PushedEvents(PLAIN, reception, clock=lambda: self.clock)

    def _respond(self, envelope: Envelope) -> dict[str, Any]:
        self.answered.append(envelope)
        return {"toast": {"type": "info", "content": "Running !approve…"}}

    async def push(self, payload: Any, *, kind: str = "event", **headers: str) -> Any:
        """Push ``payload`` in one frame; the ack's decoded body (None: no ack)."""
        body = payload if isinstance(payload, bytes) else plain_body(payload)
        return await self.push_frame(frame(body, kind=kind, **headers))

    async def push_frame(self, pushed: frames.Frame) -> Any:
        acked = await self.events.handle(pushed)
        await asyncio.sleep(0)  # the dispatch runs on the next loop iteration
        if acked is None:
            return None
        assert acked.headers[:-1] == pushed.headers
        assert acked.headers[-1][0] == "biz_rt"
        assert (acked.seq_id, acked.log_id, acked.service) == (
            pushed.seq_id,
            pushed.log_id,
            pushed.service,
        )
        return json.loads(acked.payload or b"")


def frame(payload: bytes, *, kind: str = "event", **headers: str) -> frames.Frame:
    names = {"type": kind, "message_id": "push-1", "sum": "1", "seq": "0", "trace_id": "tr"}
    names.update(headers)
    return frames.Frame(
        seq_id=7,
        log_id=99,
        service=33554678,
        method=frames.DATA,
        headers=tuple(names.items()),
        payload=payload,
    )


async def test_an_event_is_acked_200_and_dispatched_once_of_three_pushes():
    pushed = Pushed()
    event = load("p2p_text")
    for _ in range(3):
        assert await pushed.push(event) == {"code": 200}
    assert [e.event_id for e in pushed.dispatched] == [event["header"]["event_id"]]


async def test_the_same_message_under_a_new_event_id_is_not_run_again():
    pushed = Pushed()
    event = load("p2p_text")
    await pushed.push(event)
    await pushed.push(with_ids(event, event_id="another-event-id"))
    assert len(pushed.dispatched) == 1


@pytest.mark.parametrize("kind", ["event", "card"])
async def test_a_card_click_is_answered_in_the_ack_whatever_the_frame_type(kind):
    pushed = Pushed()
    body = await pushed.push(load("card_action"), kind=kind)
    assert body["code"] == 200
    assert json.loads(base64.b64decode(body["data"])) == {
        "toast": {"type": "info", "content": "Running !approve…"}
    }
    assert [e.event_type for e in pushed.dispatched] == ["card.action.trigger"]
    again = await pushed.push(load("card_action"), kind=kind)  # a retry: same answer, no run
    assert again == body
    assert len(pushed.dispatched) == 1


@pytest.mark.parametrize(
    ("pushed", "why"),
    [
        (Pushed(claims=FailingClaims()), "the state store failed"),
        (Pushed(busy=True), "the backlog is full"),
    ],
)
async def test_an_event_that_cannot_be_recorded_is_acked_500_for_a_redelivery(pushed, why):
    assert await pushed.push(load("p2p_text")) == {"code": 500}, why
    assert pushed.dispatched == []


@pytest.mark.parametrize(
    ("payload", "kind", "code"),
    [
        (b"not json", "event", 400),
        (b"[1, 2]", "event", 400),
        (plain_body({"schema": "2.0"}), "event", 400),
        (plain_body(load("url_verification")), "event", 400),
        (plain_body(load("p2p_text")), "mystery", 400),
        (
            plain_body(
                {
                    **load("p2p_text"),
                    "header": {**load("p2p_text")["header"], "app_id": "cli_other"},
                }
            ),
            "event",
            403,
        ),
    ],
)
async def test_a_refused_push_gets_the_webhooks_4xx_and_nothing_runs(payload, kind, code):
    pushed = Pushed()
    assert await pushed.push(payload, kind=kind) == {"code": code}
    assert pushed.dispatched == []


async def test_a_fragmented_event_is_acked_once_all_parts_are_in():
    pushed = Pushed()
    event = load("group_text_mentions")
    event["event"]["message"]["content"] = json.dumps(
        {"text": "部署 ✅ " * 300}, ensure_ascii=False
    )
    body = plain_body(event)
    cut = [0, 7, len(body) // 2, len(body)]
    parts = [body[a:b] for a, b in itertools.pairwise(cut)]
    heads = {"message_id": "push-frag", "sum": "3"}
    assert await pushed.push(parts[1], seq="1", **heads) is None
    assert await pushed.push(parts[0], seq="0", **heads) is None
    assert pushed.dispatched == []
    assert await pushed.push(parts[2], seq="2", **heads) == {"code": 200}
    assert pushed.dispatched[0].event["message"]["content"] == event["event"]["message"]["content"]


@pytest.mark.parametrize(("total", "seq"), [("x", "0"), ("2", "-1"), ("2", "5"), ("99999", "0")])
async def test_bad_fragment_headers_are_refused(total, seq):
    assert await Pushed().push(b"{}", sum=total, seq=seq) == {"code": 400}


async def test_an_answer_that_cannot_be_encoded_is_replaced_by_an_empty_one():
    reception = Reception(
        lambda e: None,
        MemoryClaims(TTLSet(60, 10)),
        respond=lambda e: {"toast": {"type": "info", "content": "\ud800"}},
    )
    events = PushedEvents(PLAIN, reception)
    acked = await events.handle(frame(plain_body(load("card_action"))))
    assert acked is not None
    body = json.loads(acked.payload or b"")
    assert body["code"] == 200
    assert json.loads(base64.b64decode(body["data"])) == {}


@pytest.mark.parametrize("value", ["³", "9" * 5000, "1.5", " 1"])
async def test_fragment_numbers_that_are_not_plain_digits_are_refused(value):
    assert await Pushed().push(b"{}", sum=value, seq="0") == {"code": 400}


class SlowClaims:
    """Claims that take 250 ms of their own clock."""

    def __init__(self) -> None:
        self.clock = 0.0

    async def claim(self, envelope: Envelope) -> bool:
        self.clock += 0.25
        return True


async def test_biz_rt_is_the_handling_time_in_milliseconds():
    claims = SlowClaims()
    slow = PushedEvents(PLAIN, Reception(lambda e: None, claims), clock=lambda: claims.clock)
    acked = await slow.handle(frame(plain_body(load("p2p_text"))))
    assert acked is not None
    assert acked.header("biz_rt") == "250"


# ----- discovery, handshakes, timing ----------------------------------------------------------


def discovery(code: int = 0, **data: Any) -> bytes:
    body = {"code": code, "msg": "" if code == 0 else "some reason", "data": data}
    return json.dumps(body).encode()


def test_discovery_gives_the_url_exactly_and_feishus_timing():
    config = {
        "ReconnectCount": -1,
        "ReconnectInterval": 60,
        "ReconnectNonce": 10,
        "PingInterval": 90,
    }
    endpoint = read_endpoint(200, discovery(URL=WS_URL, ClientConfig=config), ClientConfig())
    assert endpoint.url == WS_URL
    assert (endpoint.device_id, endpoint.service_id) == ("7d1", 33554678)
    assert endpoint.config == ClientConfig(90.0, -1, 60.0, 10.0)
    assert endpoint.config.liveness == 2 * 90 + 5


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (200, discovery(10014), Fatal, "app_secret"),
        (200, discovery(403), Fatal, "app_secret"),
        (404, b"404 page not found", Fatal, "domain"),
        (200, discovery(1), Transient, "busy"),
        (200, discovery(1000040343), Transient, "busy"),
        (503, b"", Transient, "503"),
        (429, b"", Transient, "429"),
        (200, b"<html>", Transient, "JSON"),
        (200, discovery(URL="https://x/ws"), Transient, "WebSocket URL"),
        (200, discovery(URL="wss://x/ws?device_id=1"), Transient, "service_id"),
        (200, json.dumps({"code": 0}).encode(), Transient, "data"),
        (200, discovery(URL="ws://[::1/ws?service_id=1&ticket=secret"), Transient, "URL"),
        (200, discovery(URL="wss://x/ws?service_id=--5"), Transient, "service_id"),
        (200, discovery(URL="wss://x/ws?service_id=³"), Transient, "service_id"),
    ],
)
def test_discovery_failures_are_fatal_only_when_a_retry_cannot_help(status, body, error, says):
    with pytest.raises(error, match=says) as raised:
        read_endpoint(status, body, ClientConfig())
    assert "\n" not in str(raised.value)


def test_no_ticket_reaches_an_error_message():
    with pytest.raises(Transient) as raised:
        read_endpoint(200, discovery(URL="ws://[::1/ws?ticket=t-secret"), ClientConfig())
    assert "t-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("headers", "error", "says"),
    [
        (
            {
                "handshake-status": "514",
                "handshake-autherrcode": "1000040350",
                "handshake-msg": "exceed",
            },
            Fatal,
            "50 long connections",
        ),
        ({"handshake-status": "403", "handshake-msg": "forbidden"}, Forbidden, "self-built"),
        ({"handshake-status": "514", "handshake-autherrcode": "1"}, Transient, "514"),
        ({}, Transient, "HTTP 502"),
    ],
)
def test_a_refused_handshake_is_read_from_its_headers(headers, error, says):
    problem = handshake_error(502 if not headers else 403, headers)
    assert isinstance(problem, error)
    assert says in str(problem)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"PingInterval": 30}, ClientConfig(ping_interval=30.0)),
        ({"PingInterval": 0}, ClientConfig()),  # nonsense keeps ours
        ({"PingInterval": "30"}, ClientConfig()),
        ({"PingInterval": True}, ClientConfig()),
        ({"PingInterval": float("nan")}, ClientConfig()),
        (
            {"ReconnectNonce": 0, "ReconnectCount": 3},
            ClientConfig(reconnect_nonce=0.0, reconnect_count=3),
        ),
        ({"ReconnectCount": float("inf")}, ClientConfig()),
        ({"ReconnectCount": 10**400}, ClientConfig()),
        ({"PingInterval": 10**400}, ClientConfig()),
        ({"ReconnectInterval": 0}, ClientConfig()),  # a zero wait would be a hot loop
        ([1], ClientConfig()),
        (None, ClientConfig()),
    ],
)
def test_feishus_timing_replaces_ours_only_with_sensible_values(raw, expected):
    assert ClientConfig().updated(raw) == expected


def test_backoff_is_jittered_exponential_and_bounded_by_feishus_interval():
    config = ClientConfig(reconnect_interval=20.0, reconnect_nonce=30.0)
    high = Backoff(rand=lambda: 1.0)
    assert [high.after_failure(n, config) for n in range(1, 8)] == [1, 2, 4, 8, 16, 20, 20]
    assert high.after_failure(10_000, config) == 20  # no overflow however long it fails
    low = Backoff(rand=lambda: 0.0)
    assert [low.after_failure(n, config) for n in (1, 3, 9)] == [0.5, 2, 10]  # half, at least
    tiny = ClientConfig(reconnect_interval=1.0, reconnect_nonce=0.0)
    assert low.after_failure(1, tiny) == 0.5  # never a busy loop, whatever Feishu says
    assert Backoff(rand=lambda: 0.5).after_drop(config) == 15.0  # a share of ReconnectNonce
    assert Backoff(rand=lambda: 0.5).after_drop(ClientConfig(reconnect_nonce=0)) == 0
