"""The webhook app through aiohttp's test client: the §1 pipeline, status by status."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from feishu_payloads import (
    ENCRYPT_KEY,
    ENCRYPTED,
    EVENTS_PATH,
    NOW,
    PLAIN,
    TOKEN,
    encrypted_body,
    load,
    plain_body,
    signed_headers,
    signed_request,
    with_ids,
)

from lark_cards.settings import Settings
from lark_cards.transport.dedup import MemoryClaims, TTLSet
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.webhook import create_app

PATH = EVENTS_PATH
OK = (200, {"msg": "ok"})
DUP = (200, {"msg": "duplicate"})
CHALLENGE = (200, {"challenge": "ajls384kdjx98XX"})  # the fixture's challenge, echoed


def err(status: int, reason: str) -> tuple[int, dict[str, str]]:
    return status, {"error": reason}


@dataclass
class Bot:
    """One running app plus what it dispatched."""

    client: TestClient
    dispatched: list[Envelope] = field(default_factory=list)

    async def post(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.client.post(PATH, data=body, headers=headers) as resp:
            payload = await resp.json()
            status = resp.status
        await asyncio.sleep(0)  # let the scheduled dispatch run
        return status, payload

    async def send(self, payload: Any, **signing: Any) -> tuple[int, dict[str, Any]]:
        """Post ``payload`` as Feishu would: encrypted and signed (the ENCRYPTED settings)."""
        return await self.post(*signed_request(payload, **signing))


MakeBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def make_bot() -> AsyncIterator[MakeBot]:
    clients: list[TestClient] = []

    async def make(settings: Settings = ENCRYPTED, **kwargs: Any) -> Bot:
        dispatched: list[Envelope] = []
        kwargs.setdefault("clock", lambda: float(NOW))
        app = create_app(settings, kwargs.pop("dispatch", dispatched.append), **kwargs)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Bot(client, dispatched)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def bot(make_bot: MakeBot) -> Bot:
    return await make_bot()


# --- url_verification (§1.1) -----------------------------------------------------------------


async def test_plain_url_verification(make_bot: MakeBot) -> None:
    bot = await make_bot(PLAIN)
    assert await bot.post(plain_body(load("url_verification"))) == CHALLENGE


async def test_encrypted_url_verification(bot: Bot) -> None:
    # Feishu encrypts the challenge when a key is set but does not sign it (§1.1).
    assert await bot.post(encrypted_body(load("url_verification"))) == CHALLENGE
    assert await bot.send(load("url_verification")) == CHALLENGE  # signed works too
    assert bot.dispatched == []


@pytest.mark.parametrize("token", ["wrong", None])
async def test_url_verification_wrong_or_missing_token(
    make_bot: MakeBot, token: str | None
) -> None:
    bot = await make_bot(PLAIN)
    challenge = load("url_verification") | {"token": token}
    assert await bot.post(plain_body(challenge)) == err(401, "verification token mismatch")


# --- events ----------------------------------------------------------------------------------


async def test_signed_event_dispatched_once_of_three_deliveries(bot: Bot) -> None:
    payload = load("p2p_text")
    answers = [await bot.send(payload, nonce=f"n{i}") for i in range(3)]
    assert answers == [OK, DUP, DUP]
    assert len(bot.dispatched) == 1
    envelope = bot.dispatched[0]
    assert envelope.event_id == payload["header"]["event_id"]
    assert envelope.event["message"]["content"] == '{"text":"!echo hi"}'


async def test_same_message_under_new_event_id_is_duplicate(bot: Bot) -> None:
    payload = load("p2p_text")
    assert await bot.send(payload) == OK
    again = with_ids(payload, event_id="another-event-id")
    assert await bot.send(again) == DUP
    assert len(bot.dispatched) == 1
    new_message = with_ids(payload, event_id="third", message_id="om_new")
    assert await bot.send(new_message) == OK
    assert len(bot.dispatched) == 2


@pytest.mark.parametrize("name", ["p2p_text", "group_text_mentions", "group_post"])
async def test_message_fixtures_dispatched(bot: Bot, name: str) -> None:
    assert await bot.send(load(name)) == OK
    assert [e.event_type for e in bot.dispatched] == ["im.message.receive_v1"]


async def test_unknown_event_type_dispatched(bot: Bot) -> None:
    assert await bot.send(load("unknown_event")) == OK
    assert [e.event_type for e in bot.dispatched] == ["im.chat.updated_v1"]


async def test_plain_mode_events(make_bot: MakeBot) -> None:
    # No Encrypt Key: plain bodies, token only (§1.5); schema 1.0 still reaches dispatch.
    bot = await make_bot(PLAIN)
    assert await bot.post(plain_body(load("group_post"))) == OK
    legacy = {"uuid": "u-1", "token": TOKEN, "type": "event_callback", "event": {"type": "message"}}
    assert await bot.post(plain_body(legacy)) == OK
    assert [e.event_type for e in bot.dispatched] == ["im.message.receive_v1", "v1:message"]


# --- authentication failures -----------------------------------------------------------------


async def test_wrong_token_401(bot: Bot) -> None:
    payload = load("p2p_text")
    payload["header"]["token"] = "x" * 32
    assert await bot.send(payload) == err(401, "verification token mismatch")
    del payload["header"]["token"]
    assert await bot.send(payload) == err(401, "verification token mismatch")
    assert bot.dispatched == []


async def test_bad_signature_401(bot: Bot) -> None:
    body, headers = signed_request(load("p2p_text"))
    headers["X-Lark-Signature"] = "0" * 64
    assert await bot.post(body, headers) == err(401, "signature mismatch")
    # A valid signature over other bytes: the body was re-serialised or tampered with.
    assert await bot.post(body + b" ", signed_headers(body)) == err(401, "signature mismatch")
    assert bot.dispatched == []


@pytest.mark.parametrize("skew", [-(8 * 3600 + 1), 8 * 3600 + 1, -(10**9)])
async def test_stale_timestamp_401(bot: Bot, skew: int) -> None:
    answer = await bot.send(load("p2p_text"), timestamp=NOW + skew)
    assert answer == err(401, "timestamp outside the replay window")
    assert bot.dispatched == []


async def test_a_retry_signed_hours_ago_is_still_accepted(bot: Bot) -> None:
    """Feishu's last retry comes about 7.1 h after the first push; whether it is signed anew
    is not documented, so the default window covers the whole retry ladder."""
    answer = await bot.send(load("p2p_text"), timestamp=NOW - int(7.1 * 3600))
    assert answer == (200, {"msg": "ok"})


async def test_replay_window_none_accepts_old_timestamps(make_bot: MakeBot) -> None:
    bot = await make_bot(replace(ENCRYPTED, replay_window=None))
    assert await bot.send(load("p2p_text"), timestamp=1) == OK


async def test_unsigned_encrypted_event_401(bot: Bot) -> None:
    assert await bot.post(encrypted_body(load("p2p_text"))) == err(401, "unsigned request")
    # A challenge under another key gets the same answer (no decryption oracle).
    wrong_key = encrypted_body(load("url_verification"), "another key")
    assert await bot.post(wrong_key) == err(401, "unsigned request")
    assert bot.dispatched == []


@pytest.mark.parametrize("keep", ["X-Lark-Request-Timestamp", "X-Lark-Signature"])
async def test_partial_signature_headers_401(bot: Bot, keep: str) -> None:
    body, headers = signed_request(load("p2p_text"))
    assert await bot.post(body, {keep: headers[keep]}) == err(401, "missing signature headers")


async def test_plain_body_refused_when_encrypt_key_set(bot: Bot) -> None:
    for name in ("p2p_text", "url_verification"):
        body = plain_body(load(name))
        assert await bot.post(body, signed_headers(body)) == err(401, "body must be encrypted")
    assert bot.dispatched == []


async def test_encrypted_body_without_configured_key_400(make_bot: MakeBot) -> None:
    bot = await make_bot(PLAIN)
    status, _ = await bot.post(encrypted_body(load("p2p_text")))
    assert status == 400


# --- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"\xff\xfe\x00", "body is not JSON"),
        (b"[" * 100_000, "body is not JSON"),  # deeper than the parser's recursion limit
        (b'{"n": ' + b"1" * 5000 + b"}", "body is not JSON"),  # over int()'s digit limit
        (b"[1, 2]", "body is not a JSON object"),
        (b'"encrypt"', "body is not a JSON object"),
        (b'{"encrypt": 42}', "encrypt is not a string"),
        (b'{"encrypt": "AAAA"}', "ciphertext length is not IV + whole AES blocks"),
        (b'{"encrypt": "%%%"}', "encrypt is not base64"),
    ],
)
async def test_malformed_signed_body_400(bot: Bot, body: bytes, error: str) -> None:
    # Validly signed, so the sender is Feishu (or holds the key) and the content is malformed.
    assert await bot.post(body, signed_headers(body)) == err(400, error)


async def test_malformed_json_400_in_plain_mode(make_bot: MakeBot) -> None:
    bot = await make_bot(PLAIN)
    assert await bot.post(b"{not json") == err(400, "body is not JSON")
    assert await bot.post(b'{"type": "x"}') == err(400, "not a Feishu callback")


async def test_signed_ciphertext_with_bad_inner_json_400(bot: Bot) -> None:
    from lark_cards.transport.security import encrypt

    for inner, error in [
        (b"not json", "decrypted body is not JSON"),
        (b"[]", "decrypted body is not a JSON object"),
    ]:
        body = plain_body({"encrypt": encrypt(ENCRYPT_KEY, inner)})
        assert await bot.post(body, signed_headers(body)) == err(400, error)


async def test_body_over_limit_413(bot: Bot) -> None:
    limit = ENCRYPTED.max_body_bytes
    assert limit == 1 << 20
    assert await bot.post(b" " * (limit + 1)) == err(413, "request entity too large")
    status, _ = await bot.post(b" " * limit)  # exactly at the limit: read, then refused as JSON
    assert status == 400


# --- other routes ----------------------------------------------------------------------------


async def test_other_routes_answer_json(bot: Bot) -> None:
    async with bot.client.get("/healthz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    async with bot.client.post("/nope", data=b"{}") as resp:
        assert resp.content_type == "application/json"
        assert (resp.status, await resp.json()) == err(404, "not found")
    async with bot.client.get(PATH) as resp:
        assert (resp.status, await resp.json()) == err(405, "method not allowed")
        assert resp.headers["Allow"] == "POST"


# --- card callbacks (§6.1) -------------------------------------------------------------------


def toast(envelope: Envelope) -> dict[str, Any]:
    """A ``respond`` hook: a pure function of the envelope, as create_app asks."""
    return {"toast": {"type": "info", "content": f"clicked {envelope.event_id}"}}


CLICKED = (200, {"toast": {"type": "info", "content": "clicked 0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"}})


async def test_a_callback_is_answered_in_the_request_and_dispatched_after(
    make_bot: MakeBot,
) -> None:
    order: list[str] = []

    def respond(envelope: Envelope) -> dict[str, Any]:
        order.append("respond")
        return toast(envelope)

    bot = await make_bot(PLAIN, respond=respond, dispatch=lambda _: order.append("dispatch"))
    assert await bot.post(plain_body(load("card_action"))) == CLICKED
    assert order == ["respond", "dispatch"]


async def test_a_retried_callback_gets_the_answer_but_is_not_dispatched_again(
    make_bot: MakeBot,
) -> None:
    bot = await make_bot(PLAIN, respond=toast)
    assert await bot.post(plain_body(load("card_action"))) == CLICKED
    assert await bot.post(plain_body(load("card_action"))) == CLICKED
    assert len(bot.dispatched) == 1
    other_click = with_ids(load("card_action"), event_id="another-click")
    assert (await bot.post(plain_body(other_click)))[0] == 200
    assert len(bot.dispatched) == 2  # a second click is a second command; a retry is not


async def test_callbacks_pass_the_same_verification_as_events(make_bot: MakeBot) -> None:
    answered: list[str] = []

    def respond(envelope: Envelope) -> dict[str, Any]:
        answered.append(envelope.event_id)
        return toast(envelope)

    bot = await make_bot(respond=respond)
    assert await bot.send(load("card_action")) == CLICKED
    forged = load("card_action")
    forged["header"]["token"] = "forged"
    assert (await bot.send(forged, nonce="n2"))[0] == 401
    assert (await bot.post(plain_body(load("card_action"))))[0] == 401  # only signed bodies
    assert answered == ["0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"]
    assert len(bot.dispatched) == 1


async def test_respond_failures_and_absence_still_answer_and_dispatch(make_bot: MakeBot) -> None:
    def broken(_: Envelope) -> dict[str, Any]:
        raise RuntimeError("boom")

    for respond in (broken, None, lambda _: None, lambda _: {"toast": object()}):
        bot = await make_bot(PLAIN, respond=respond)
        assert await bot.post(plain_body(load("card_action"))) == (200, {})
        assert await bot.post(plain_body(load("p2p_text"))) == OK  # other events: unchanged
        assert len(bot.dispatched) == 2


# --- dispatch and wiring ---------------------------------------------------------------------


async def test_dispatch_error_does_not_change_ack(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(envelope: Envelope) -> None:
        raise RuntimeError("boom")

    bot = await make_bot(dispatch=broken)
    with caplog.at_level(logging.ERROR, logger="lark_cards.transport.webhook"):
        assert await bot.send(load("p2p_text")) == OK
        await asyncio.sleep(0)
    assert "dispatch failed" in caplog.text
    assert "boom" in caplog.text


async def test_dispatch_runs_after_the_handler_returns(make_bot: MakeBot) -> None:
    calls: list[str] = []

    def dispatch(envelope: Envelope) -> None:
        calls.append("in a task" if asyncio.current_task() else "plain callback")

    bot = await make_bot(dispatch=dispatch)
    await bot.send(load("p2p_text"))
    assert calls == ["plain callback"]  # via loop.call_soon, not inside the request task


async def test_injected_dedup(make_bot: MakeBot) -> None:
    store = TTLSet(60, 10)
    store.seen("event:" + load("p2p_text")["header"]["event_id"])
    bot = await make_bot(dedup=MemoryClaims(store))
    assert await bot.send(load("p2p_text")) == DUP
    assert bot.dispatched == []


async def test_an_event_that_cannot_be_recorded_is_not_acked(make_bot: MakeBot) -> None:
    """The state store is down (and not Redis, which degrades to memory): Feishu must retry."""

    class Broken:
        async def claim(self, envelope: object) -> bool:
            raise OSError("database is locked")

    bot = await make_bot(dedup=Broken())
    assert await bot.send(load("p2p_text")) == (
        503,
        {"error": "cannot record the event now, retry later"},
    )
    assert bot.dispatched == []


async def test_open_config_warns_and_accepts(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        bot = await make_bot(replace(PLAIN, verification_token=None))
    assert "accepts events from anyone" in caplog.text
    payload = load("p2p_text")
    payload["header"]["token"] = "anything"
    assert await bot.post(plain_body(payload)) == OK


async def test_rejections_never_log_secrets(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    payload = load("p2p_text")
    payload["header"]["token"] = "attacker-token-value"
    body, headers = signed_request(payload)
    with caplog.at_level(logging.DEBUG):
        await bot.post(body, headers)
        bad = dict(headers, **{"X-Lark-Signature": "f" * 64})
        await bot.post(body, bad)
        await bot.post(encrypted_body(load("p2p_text")))
    text = caplog.text
    assert "rejected event from 127.0.0.1" in text
    secrets = (TOKEN, ENCRYPT_KEY, "attacker-token-value", "f" * 64, headers["X-Lark-Signature"])
    assert not [secret for secret in secrets if secret in text]
    assert json.loads(body)["encrypt"][:20] not in text


async def test_a_full_backlog_answers_429_without_recording_the_event():
    """Busy is not bad input: 429 (never a 5xx), nothing recorded, so the retry is taken."""
    busy = True
    dispatched: list[Envelope] = []
    app = create_app(PLAIN, dispatched.append, busy=lambda: busy)
    body = plain_body(load("p2p_text"))
    async with TestClient(TestServer(app)) as client:
        async with client.post(PATH, data=body) as refused:
            assert refused.status == 429
            assert (await refused.json())["error"]
        busy = False
        async with client.post(PATH, data=body) as accepted:  # Feishu's retry, same event_id
            assert (accepted.status, await accepted.json()) == OK
        await asyncio.sleep(0)
    assert len(dispatched) == 1
