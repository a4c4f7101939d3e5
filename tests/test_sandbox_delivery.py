"""The sandbox delivers to the bot exactly like Feishu: schema 2.0 envelopes, encrypted and
signed (accepted by the project's own webhook checks), retried until acked; card clicks become
``card.action.trigger`` callbacks whose answers update the card (docs/feishu-platform.md
§1.6-1.8, §6.1)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lark_cards.inbound.events import parse_message
from lark_cards.sandbox.delivery import Attempt, Deliverer, message_envelope
from lark_cards.sandbox.runner import Sandbox, SandboxConfig
from lark_cards.sandbox.state import ALICE, BOB, GROUP_CHAT
from lark_cards.settings import Settings
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.webhook import Rejected, authenticate

ENCRYPT_KEY = "sandbox-encrypt-key"
TOKEN = "sandbox-verification-token"


@dataclass
class FakeBot:
    """A bot endpoint that authenticates like lark-cards' webhook and answers as told."""

    settings: Settings
    delays: list[float] = field(default_factory=list)  # per request: seconds before answering
    statuses: list[int] = field(default_factory=list)  # per request: HTTP status
    answer: dict[str, Any] = field(default_factory=dict)
    received: list[Envelope] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            callback = authenticate(self.settings, body, request.headers, now=time.time())
        except Rejected as error:
            self.rejected.append(error.reason)
            return web.json_response({"error": error.reason}, status=error.status)
        assert isinstance(callback, Envelope)
        self.received.append(callback)
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response(self.answer, status=status)


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    settings = Settings(
        app_id="cli_sandbox0000000001",
        app_secret="x",
        encrypt_key=ENCRYPT_KEY,
        verification_token=TOKEN,
    )
    fake = FakeBot(settings)
    app = web.Application()
    app.router.add_post("/lark/events", fake.handle)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("/lark/events"))
    yield fake
    await server.close()


@pytest.fixture
async def sandbox(bot: FakeBot) -> AsyncIterator[Sandbox]:
    config = SandboxConfig(
        port=0,
        mode="webhook",
        bot_url=bot.url,
        encrypt_key=ENCRYPT_KEY,
        verification_token=TOKEN,
        ack_deadline=0.3,
        retry_delays=(0.05, 0.05),
    )
    sandbox = Sandbox(config)
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


async def _eventually(predicate, patience: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + patience
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status, await response.json()


async def _push(
    bot: FakeBot, on_attempt: Callable[[Attempt], None] | None = None, **options: Any
) -> tuple[Deliverer, dict[str, Any]]:
    """One message event (Alice's, in the group) pushed by ``Deliverer(bot.url, **options)``
    until acked or given up: the closed deliverer and the event."""
    deliverer = Deliverer(bot.url, **options)
    payload = message_envelope(
        "!help", chat_id=GROUP_CHAT, sender_open_id=ALICE, token=TOKEN, app_id=bot.settings.app_id
    )
    try:
        await deliverer.push(payload, on_attempt)
    finally:
        await deliverer.close()
    return deliverer, payload


# ----- events ----------------------------------------------------------------------------------


async def test_a_typed_message_reaches_the_bot_encrypted_signed_and_with_mentions(
    sandbox: Sandbox, bot: FakeBot
):
    status, sent = await _post(
        sandbox.url + "/api/send",
        {"chat_id": GROUP_CHAT, "sender": BOB, "text": "@ChatOps Bot !status"},
    )
    assert status == 200
    await _eventually(lambda: bot.received)
    [envelope] = bot.received
    assert bot.rejected == []  # signature, decryption and token all passed lark-cards' checks
    assert envelope.event_type == "im.message.receive_v1"
    message = parse_message(envelope)
    assert message.message_id == sent["message_id"]
    assert (message.chat_id, message.chat_type, message.sender_open_id) == (
        GROUP_CHAT,
        "group",
        BOB,
    )
    assert message.text == "@_user_1 !status"
    assert message.mentions[0].open_id == sandbox.platform.bot_open_id
    stored = sandbox.platform.conversations.get(sent["message_id"])
    await _eventually(lambda: stored.delivery == "delivered")


async def test_direct_messages_are_p2p_events(sandbox: Sandbox, bot: FakeBot):
    dm = next(c for c, chat in sandbox.platform.chats.items() if chat["chat_mode"] == "p2p")
    await _post(sandbox.url + "/api/send", {"chat_id": dm, "sender": ALICE, "text": "!help"})
    await _eventually(lambda: bot.received)
    assert parse_message(bot.received[0]).chat_type == "p2p"


async def test_a_reply_in_a_thread_reaches_the_bot_with_its_thread_ids(
    sandbox: Sandbox, bot: FakeBot
):
    """The page's replies carry root_id / parent_id / thread_id as Feishu's events do, so the
    bot's thread handling can be tried in the sandbox."""
    _, first = await _post(
        sandbox.url + "/api/send", {"chat_id": GROUP_CHAT, "sender": BOB, "text": "!deploy"}
    )
    status, reply = await _post(
        sandbox.url + "/api/send",
        {
            "chat_id": GROUP_CHAT,
            "sender": ALICE,
            "text": "!status",
            "reply_to": first["message_id"],
            "in_thread": True,
        },
    )
    assert status == 200
    await _eventually(lambda: len(bot.received) == 2)
    event = bot.received[1].event["message"]
    assert event["parent_id"] == event["root_id"] == first["message_id"]
    assert event["thread_id"].startswith("omt_")
    assert event["thread_id"] == reply["thread_id"]
    status, _ = await _post(
        sandbox.url + "/api/send",
        {"chat_id": GROUP_CHAT, "sender": ALICE, "text": "x", "reply_to": "om_nope"},
    )
    assert status == 400


async def test_the_page_refuses_unknown_chats_and_strangers(sandbox: Sandbox):
    status, _ = await _post(
        sandbox.url + "/api/send", {"chat_id": "oc_nope", "sender": ALICE, "text": "hi"}
    )
    assert status == 400
    dm = next(c for c, chat in sandbox.platform.chats.items() if chat["chat_mode"] == "p2p")
    status, _ = await _post(sandbox.url + "/api/send", {"chat_id": dm, "sender": BOB, "text": "x"})
    assert status == 400


async def test_an_event_not_acked_in_time_is_pushed_again_with_the_same_event_id(bot: FakeBot):
    bot.delays = [1.0]  # the first push is answered too late (deadline 0.3 s)
    deliverer, payload = await _push(
        bot, encrypt_key=ENCRYPT_KEY, ack_deadline=0.3, retry_delays=(0.05,)
    )
    assert [(a.number, a.status, a.error) for a in deliverer.attempts] == [
        (0, None, "timeout"),
        (1, 200, None),
    ]
    assert {e.event_id for e in bot.received} == {payload["header"]["event_id"]}
    assert len(bot.received) == 2


async def test_a_failing_bot_gets_every_retry_then_the_event_is_dropped(bot: FakeBot):
    bot.statuses = [500, 503, 500]
    seen: list[Attempt] = []
    await _push(
        bot,
        on_attempt=seen.append,
        encrypt_key=ENCRYPT_KEY,
        ack_deadline=0.3,
        retry_delays=(0.01, 0.01),
    )
    assert [a.status for a in seen] == [500, 503, 500]
    assert not any(a.acked for a in seen)


async def test_a_retry_waits_for_its_delay(bot: FakeBot):
    bot.statuses = [500]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await _push(bot, encrypt_key=ENCRYPT_KEY, retry_delays=(15.0, 300.0), sleep=sleep)
    assert slept == [15.0]  # Feishu's first retry interval (§1.8); acked on the retry
    assert Deliverer(None).retry_delays == (15.0, 300.0, 3600.0, 21600.0)


async def test_without_an_encrypt_key_events_are_plain_json_with_the_token(bot: FakeBot):
    bot.settings = Settings(app_id="cli_x", app_secret="x", verification_token=TOKEN)
    await _push(bot, encrypt_key=None)
    assert bot.rejected == []
    assert bot.received[0].token == TOKEN


async def test_a_wrong_encrypt_key_is_refused_by_the_bot(bot: FakeBot):
    deliverer, _ = await _push(bot, encrypt_key="not-the-key", retry_delays=())
    assert bot.received == []
    assert bot.rejected
    assert deliverer.attempts[0].status is not None
    assert deliverer.attempts[0].status >= 400


# ----- card callbacks (§6.1) -------------------------------------------------------------------


def _card(text: str, *, button: bool = True) -> dict[str, Any]:
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": text}]
    if button:
        elements.append(
            {
                "tag": "button",
                "text": {"tag": "plain_text", "content": "Approve"},
                "type": "primary_filled",
                "behaviors": [{"type": "callback", "value": {"cmd": "!deploy prod"}}],
            }
        )
    return {"schema": "2.0", "config": {"update_multi": True}, "body": {"elements": elements}}


def _bot_card(sandbox: Sandbox, card: dict[str, Any]):
    from lark_cards.sandbox.state import StoredMessage

    message = StoredMessage(
        message_id=sandbox.platform.conversations.new_id(),
        chat_id=GROUP_CHAT,
        msg_type="interactive",
        content=card,
        uuid=None,
        sender_id=sandbox.platform.app_id,
    )
    return sandbox.platform.conversations.add(message)


async def _click(sandbox: Sandbox, message_id: str) -> tuple[int, dict[str, Any]]:
    action = {"tag": "button", "value": {"cmd": "!deploy prod"}}
    return await _post(
        sandbox.url + "/api/action",
        {"message_id": message_id, "operator": BOB, "action": action},
    )


async def test_a_click_sends_card_action_trigger_and_the_answer_replaces_the_card(
    sandbox: Sandbox, bot: FakeBot
):
    message = _bot_card(sandbox, _card("Deploy **prod**?"))
    bot.answer = {
        "toast": {"type": "success", "content": "Running !deploy prod…"},
        "card": {"type": "raw", "data": _card("Approved by Bob", button=False)},
    }
    status, shown = await _click(sandbox, message.message_id)
    assert status == 200
    assert shown == {
        "toast": {"type": "success", "content": "Running !deploy prod…"},
        "updated": True,
    }
    [envelope] = bot.received
    assert bot.rejected == []
    assert envelope.event_type == "card.action.trigger"
    assert envelope.token == TOKEN
    event = envelope.event
    assert event["operator"]["open_id"] == BOB
    assert event["action"] == {"tag": "button", "value": {"cmd": "!deploy prod"}}
    assert event["context"] == {"open_message_id": message.message_id, "open_chat_id": GROUP_CHAT}
    assert event["token"].startswith("c-")
    assert message.content["body"]["elements"][0]["content"] == "Approved by Bob"
    assert message.updates == 1


NOTE_CARD = {"schema": "2.0", "body": {"elements": [{"tag": "note"}]}}  # no note in 2.0


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"card": {"type": "raw", "data": {"elements": []}}}, 200830),  # 2.0 answered with 1.0
        ({"card": {"type": "raw", "data": NOTE_CARD}}, 200673),
        ({"card": {"type": "template", "data": {"template_id": "x"}}}, 200673),
    ],
)
async def test_a_bad_card_in_the_answer_keeps_the_card_and_shows_the_error(
    sandbox: Sandbox, bot: FakeBot, answer: dict[str, Any], code: int
):
    card = _card("Deploy?")
    message = _bot_card(sandbox, card)
    bot.answer = answer
    _, shown = await _click(sandbox, message.message_id)
    assert shown["error_code"] == code
    assert shown["toast"]["type"] == "error"
    assert message.content == card


@pytest.mark.parametrize(("delays", "statuses", "code"), [([1.0], [], 200341), ([], [500], 200671)])
async def test_a_slow_or_failing_callback_shows_feishus_client_error(
    sandbox: Sandbox, bot: FakeBot, delays: list[float], statuses: list[int], code: int
):
    message = _bot_card(sandbox, _card("Deploy?"))
    bot.delays, bot.statuses = delays, statuses
    _, shown = await _click(sandbox, message.message_id)
    assert shown["error_code"] == code
    assert len(bot.received) == 1  # callbacks are not retried


# ----- the page's other endpoints --------------------------------------------------------------


async def test_updates_long_poll_returns_what_changed(sandbox: Sandbox):
    async with aiohttp.ClientSession() as session:
        async with session.get(sandbox.url + "/api/state") as response:
            seq = (await response.json())["seq"]
        poll = asyncio.ensure_future(session.get(f"{sandbox.url}/api/updates?since={seq}&wait=5"))
        await asyncio.sleep(0.1)
        assert not poll.done()
        message = _bot_card(sandbox, _card("hello"))
        response = await asyncio.wait_for(poll, 2)
        body = await response.json()
        response.release()
    assert [m["message_id"] for m in body["messages"]] == [message.message_id]
    assert body["seq"] > seq


async def test_preview_returns_the_cards_send_message_sends_with_budgets(sandbox: Sandbox):
    from lark_cards.render import render_markdown

    text = "# Status\n\nHost | State\n--- | ---\nweb-01 | `up`{:color='green'}\n"
    status, body = await _post(sandbox.url + "/api/preview", {"markdown": text})
    assert status == 200
    assert [c["card"] for c in body["cards"]] == render_markdown(text)
    [figures] = body["cards"]
    assert figures["tables"] == 1
    assert 0 < figures["bytes"] < body["limits"]["bytes"]
    assert figures["components"] >= 2
    assert figures["problems"] == []
    assert body["limits"] == {"bytes": 30 * 1024, "components": 200, "tables": 5}


async def test_samples_include_errbots_render_test(sandbox: Sandbox):
    async with aiohttp.ClientSession() as session, session.get(sandbox.url + "/api/samples") as r:
        samples = await r.json()
    assert samples[0]["name"] == "errbot-render-test"
    assert "Markdown extra (table)" in samples[0]["markdown"]
    assert len(samples) >= 3


async def test_the_page_and_its_scripts_are_served(sandbox: Sandbox):
    async with aiohttp.ClientSession() as session:
        scripts = ("app.js", "cards.js", "markdown.js", "preview.js", "style.css")
        for path in ("/", *(f"/static/{name}" for name in scripts)):
            async with session.get(sandbox.url + path) as response:
                assert response.status == 200, path
        async with session.get(sandbox.url + "/static/../openapi.py") as response:
            assert response.status in (403, 404)
    assert json.dumps(sandbox.bot_identity(port=8080))  # the config block is plain data


async def test_other_web_pages_cannot_drive_the_simulated_users(sandbox: Sandbox, bot: FakeBot):
    """The page's API acts as BOT_ADMINS in the demo: no cross-site posts, no rebound names."""
    text = json.dumps({"chat_id": GROUP_CHAT, "sender": ALICE, "text": "!restart"})
    async with aiohttp.ClientSession() as session:
        async with session.post(
            sandbox.url + "/api/send", data=text, headers={"Content-Type": "text/plain"}
        ) as response:
            assert response.status == 415  # a "simple" cross-site form post
        async with session.post(
            sandbox.url + "/api/send",
            data=text,
            headers={"Content-Type": "application/json", "Origin": "https://evil.example"},
        ) as response:
            assert response.status == 403
        async with session.get(
            sandbox.url + "/api/state", headers={"Host": "evil.example:9000"}
        ) as response:
            assert response.status == 403  # DNS rebinding
        same_origin = {"Content-Type": "application/json", "Origin": sandbox.url}
        async with session.post(
            sandbox.url + "/api/send", data=text, headers=same_origin
        ) as response:
            assert response.status == 200
    await _eventually(lambda: bot.received)
    assert len(bot.received) == 1
