"""Issue 12, item 3: a wrong or missing Encrypt Key / Verification Token is said out loud.

The webhook logs the first refusal of each kind at WARNING with what to check (the
BOT_IDENTITY key and the console page), then at most one per interval, and never a secret or
the body. The sandbox keeps the bot's status and answer for each push that was not acked, and
its page API hands them to the page, which shows them instead of a bare "retrying".
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lark_cards.sandbox.delivery import (
    ANSWER_KEPT,
    Attempt,
    Deliverer,
    event_request,
    kept_answer,
    message_envelope,
)
from lark_cards.sandbox.runner import Sandbox, SandboxConfig
from lark_cards.sandbox.state import ALICE, GROUP_CHAT
from lark_cards.settings import Settings
from lark_cards.transport import webhook
from lark_cards.transport.envelope import Envelope

APP_ID = "cli_sandbox0000000001"
KEY = "the-bots-encrypt-key"
TOKEN = "the-bots-verification-token"
PATH = "/lark/events"
CONSOLE = "Events & Callbacks → Encryption Strategy"


def settings(**changes: Any) -> Settings:
    return Settings(app_id=APP_ID, app_secret="x", **changes)


def event(token: str | None = TOKEN) -> dict[str, Any]:
    return message_envelope(
        "!help", chat_id=GROUP_CHAT, sender_open_id=ALICE, token=token, app_id=APP_ID
    )


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """``serve(settings)`` → a test client for lark-cards' real webhook app."""
    clients: list[TestClient] = []

    async def start(config: Settings) -> TestClient:
        dispatched: list[Envelope] = []
        client = TestClient(TestServer(webhook.create_app(config, dispatched.append)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def post(client: TestClient, request: tuple[bytes, dict[str, str]]) -> tuple[int, Any]:
    body, headers = request
    async with client.post(PATH, data=body, headers=headers) as response:
        return response.status, await response.json()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("rejected event")
    ]


@pytest.mark.parametrize(
    ("bot", "feishu_key", "token", "status", "key"),
    [
        # Feishu encrypts, the bot has no key: the 400 that used to be a DEBUG line.
        ({"verification_token": TOKEN}, KEY, TOKEN, 400, "'encrypt_key'"),
        # Another key in the console: the signature does not match.
        ({"encrypt_key": KEY}, "the-consoles-key", TOKEN, 401, "BOT_IDENTITY['encrypt_key']"),
        # The bot has a key, the console none: plain events.
        ({"encrypt_key": KEY}, None, TOKEN, 401, "BOT_IDENTITY['encrypt_key']"),
        # Another Verification Token in the console.
        (
            {"encrypt_key": KEY, "verification_token": TOKEN},
            KEY,
            "the-consoles-token",
            401,
            "BOT_IDENTITY['verification_token']",
        ),
    ],
    ids=["no-key", "other-key", "no-key-in-console", "other-token"],
)
async def test_the_first_refusal_is_a_warning_naming_the_key_and_the_console_page(
    serve: Any,
    caplog: pytest.LogCaptureFixture,
    bot: dict[str, Any],
    feishu_key: str | None,
    token: str,
    status: int,
    key: str,
):
    client = await serve(settings(**bot))
    request = event_request(event(token), encrypt_key=feishu_key)
    with caplog.at_level(logging.DEBUG, logger=webhook.log.name):
        for _ in range(3):  # Feishu retries: one WARNING, not one per try
            assert (await post(client, request))[0] == status
    [line] = warnings(caplog)
    assert key in line
    assert CONSOLE in line
    secrets = [KEY, TOKEN, "the-consoles-key", "the-consoles-token"]
    assert [s for s in secrets if s in caplog.text] == []
    body = request[0].decode()
    assert body[20:60] not in caplog.text  # nor any of the body
    assert caplog.text.count("rejected event from") == 3  # the other two at DEBUG


async def test_a_kind_is_said_again_after_the_interval_with_the_count_held_back(
    serve: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(webhook, "REFUSAL_LOG_INTERVAL", 0.3)
    client = await serve(settings())
    request = event_request(event(), encrypt_key=KEY)
    with caplog.at_level(logging.WARNING, logger=webhook.log.name):
        for _ in range(3):
            await post(client, request)
        await asyncio.sleep(0.35)
        await post(client, request)
    _, again = warnings(caplog)
    assert "(and 2 more like it" in again


async def test_kinds_are_held_back_separately(serve: Any, caplog: pytest.LogCaptureFixture):
    client = await serve(settings(encrypt_key=KEY, verification_token=TOKEN))
    with caplog.at_level(logging.WARNING, logger=webhook.log.name):
        await post(client, event_request(event(), encrypt_key="the-consoles-key"))
        await post(client, event_request(event("the-consoles-token"), encrypt_key=KEY))
        await post(client, event_request(event(), encrypt_key="the-consoles-key"))
    lines = warnings(caplog)
    assert len(lines) == 2
    assert "'encrypt_key'" in lines[0]
    assert "'verification_token'" in lines[1]


async def test_a_url_check_with_another_key_is_a_warning_too(
    serve: Any, caplog: pytest.LogCaptureFixture
):
    """The console's URL challenge is unsigned: the first thing a user with a wrong key sees."""
    client = await serve(settings(encrypt_key=KEY))
    challenge = {"challenge": "c-1", "token": TOKEN, "type": "url_verification"}
    body, headers = event_request(challenge, encrypt_key="the-consoles-key")
    headers = {k: v for k, v in headers.items() if not k.startswith("X-Lark")}
    with caplog.at_level(logging.WARNING, logger=webhook.log.name):
        assert (await post(client, (body, headers)))[0] == 401
    [line] = warnings(caplog)
    assert "BOT_IDENTITY['encrypt_key']" in line


async def test_a_stale_signed_timestamp_names_the_clock(
    serve: Any, caplog: pytest.LogCaptureFixture
):
    client = await serve(settings(encrypt_key=KEY))
    with caplog.at_level(logging.WARNING, logger=webhook.log.name):
        assert (await post(client, event_request(event(), encrypt_key=KEY, timestamp=1)))[0] == 401
    [line] = warnings(caplog)
    assert "clock" in line
    assert "LARK_CARDS['replay_window']" in line


async def test_hostile_noise_stays_below_warning(serve: Any, caplog: pytest.LogCaptureFixture):
    client = await serve(settings(encrypt_key=KEY))
    with caplog.at_level(logging.DEBUG, logger=webhook.log.name):
        assert (await post(client, (b"[1, 2]", {})))[0] == 400
        assert (await post(client, (b'{"encrypt": 5}', {"X-Lark-Signature": "x"})))[0] == 401
    assert warnings(caplog) == []  # bad JSON, a malformed ciphertext: DEBUG only
    assert "not a JSON object" in caplog.text


# ----- the sandbox keeps the bot's answer ------------------------------------------------------


def test_an_answer_is_kept_short_and_on_one_line():
    assert kept_answer(None) is None
    assert kept_answer(b'{"error":\n "signature mismatch"}') == '{"error": "signature mismatch"}'
    long = kept_answer(json.dumps({"error": "x" * 5000}).encode())
    assert long is not None
    assert len(long) == ANSWER_KEPT
    assert long.endswith("…")
    assert kept_answer("错误".encode()[:-1]) == "错\ufffd"  # cut UTF-8 is shown, not raised


def test_an_attempt_says_how_it_went():
    assert Attempt("e", 0, 200).outcome == "acked"
    assert Attempt("e", 0, None, "timeout").outcome == "no answer in time"
    refused = Attempt("e", 1, 401, answer='{"error": "signature mismatch"}')
    assert refused.outcome == 'the bot answered 401: {"error": "signature mismatch"}'
    assert Attempt("e", 1, 503).outcome == "the bot answered 503"


@pytest.fixture
async def keyless_bot() -> AsyncIterator[str]:
    """lark-cards' webhook without an encrypt_key, served on a real port: its event URL."""
    app = webhook.create_app(settings(verification_token=TOKEN), lambda envelope: None)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url(PATH))
    await server.close()


async def test_the_deliverer_keeps_the_bots_status_and_answer(keyless_bot: str):
    deliverer = Deliverer(keyless_bot, encrypt_key=KEY, retry_delays=(0.01,))
    try:
        await deliverer.push(event())
    finally:
        await deliverer.close()
    assert [a.status for a in deliverer.attempts] == [400, 400]
    assert deliverer.attempts[0].answer == (
        '{"error": "encrypted body but no encrypt_key configured"}'
    )


async def test_the_page_api_says_why_a_message_was_not_delivered(keyless_bot: str):
    sandbox = Sandbox(
        SandboxConfig(
            port=0,
            mode="webhook",
            bot_url=keyless_bot,
            encrypt_key=KEY,
            verification_token=TOKEN,
            retry_delays=(0.05,),
        )
    )
    await sandbox.start()
    try:
        async with aiohttp.ClientSession() as session:
            typed = {"chat_id": GROUP_CHAT, "sender": ALICE, "text": "!help"}
            async with session.post(sandbox.url + "/api/send", json=typed) as response:
                message_id = (await response.json())["message_id"]
            shown: dict[str, Any] = {}
            for _ in range(100):
                async with session.get(sandbox.url + "/api/state") as response:
                    state = await response.json()
                shown = next(m for m in state["messages"] if m["message_id"] == message_id)
                if shown["delivery"] == "failed":
                    break
                await asyncio.sleep(0.05)
    finally:
        await sandbox.stop()
    assert shown["delivery"] == "failed"
    assert shown["delivery_detail"] == (
        'the bot answered 400: {"error": "encrypted body but no encrypt_key configured"}'
    )


async def test_a_delivered_message_carries_no_detail(keyless_bot: str):
    ok = web.Application()

    async def ack(request: web.Request) -> web.Response:
        return web.json_response({"msg": "ok"})

    ok.router.add_post(PATH, ack)
    server = TestServer(ok)
    await server.start_server()
    sandbox = Sandbox(
        SandboxConfig(port=0, mode="webhook", bot_url=str(server.make_url(PATH)), encrypt_key=KEY)
    )
    await sandbox.start()
    try:
        async with aiohttp.ClientSession() as session:
            typed = {"chat_id": GROUP_CHAT, "sender": ALICE, "text": "!help"}
            async with session.post(sandbox.url + "/api/send", json=typed) as response:
                assert response.status == 200
            for _ in range(100):
                async with session.get(sandbox.url + "/api/state") as response:
                    [shown] = (await response.json())["messages"]
                if shown["delivery"] == "delivered":
                    break
                await asyncio.sleep(0.05)
    finally:
        await sandbox.stop()
        await server.close()
    assert shown["delivery"] == "delivered"
    assert "delivery_detail" not in shown


# Found in review: a stranger's JSON must not use up the config-mismatch WARNING.


async def test_a_json_object_that_is_no_feishu_event_is_no_config_warning(
    caplog: pytest.LogCaptureFixture,
):
    config = Settings(app_id=APP_ID, app_secret="x", encrypt_key="the-key")
    seen: list[Any] = []
    client = TestClient(TestServer(webhook.create_app(config, seen.append)))
    await client.start_server()
    try:
        with caplog.at_level(logging.DEBUG, logger=webhook.log.name):
            for body in (b"{}", b'{"hello": "world"}', b'{"id": 1, "method": "getinfo"}'):
                async with client.post(PATH, data=body) as response:
                    assert response.status in (400, 401)
    finally:
        await client.close()
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [], warned
