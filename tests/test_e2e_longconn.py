"""A real errbot in long-connection mode (``BOT_IDENTITY["mode"] = "websocket"``) against the
sandbox's long-connection hub: no port of its own, events pushed as frames, acked in frames.

Covers issue 10's end-to-end list: an echo answered once however often it is pushed, a
fragmented event, a button click answered in the ack and run once as the clicker (refused for
a non-admin), a dropped socket and a half-open one replaced, and Errbot's plugins activated
once for all those connections.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from typing import Any

import pytest
from e2e_bots import ADMIN, GROUP, ROOT, Bot, Bots, message_id, text_of, wait_until

from lark_cards.sandbox.delivery import card_action_envelope

pytestmark = pytest.mark.e2e

BOB = "ou_bob00000000000000000000000000000"  # not a bot admin
APPROVAL = {
    # tests/fixtures/plugins (the harness's) and the sample plugins/approval (Approve / Deny).
    "BOT_EXTRA_PLUGIN_DIR": [str(ROOT / "tests" / "fixtures" / "plugins"), str(ROOT / "plugins")],
    "ACCESS_CONTROLS": {"Approval:approve": {"allowmuc": True}},
}
ANSWER_WAIT = 30.0
REFUSED = "This command requires bot-admin privileges"


@pytest.fixture
async def bot(bots: Bots) -> Bot:
    return await bots.start(mode="websocket", config=APPROVAL)


async def answered(bots: Bots, question: dict[str, Any], count: int = 1) -> list[str]:
    """The answers to ``question`` once there are ``count``, after a second in which a
    duplicate would have arrived."""
    asked = message_id(question)
    await wait_until(lambda: len(bots.answers(asked)) >= count, ANSWER_WAIT, "the answer")
    await asyncio.sleep(1.0)
    return bots.answers(asked)


async def test_echo_is_answered_once_although_feishu_pushes_it_three_times(bots, bot):
    question = bot.message("!echo hi")
    outcomes = [await bots.hub.post(question) for _ in range(3)]
    assert [status for status, _, _ in outcomes] == [200, 200, 200], outcomes
    assert await answered(bots, question) == ["hi"], bot.tail()
    assert bot.runs("!echo") == Counter({"hi": 1})
    assert "Listening for Feishu events" not in bot.log()  # no port in this mode


async def test_a_fragmented_event_is_joined_and_answered(bots, bot):
    text = "部署完成 ✅ " * 40
    question = bot.message(f"!echo {text}")
    status, _, problem = await bots.hub.post(question, fragments=5)
    assert status == 200, problem
    assert await answered(bots, question) == [text.strip()]


async def _deploy_card(bots: Bots, bot: Bot) -> tuple[str, str]:
    """Ask for a deploy; the Approve / Deny card's message id and its Approve command."""
    question = bot.message("!deploy prod")
    assert (await bots.hub.post(question))[0] == 200
    await wait_until(lambda: bots.answers(message_id(question)), ANSWER_WAIT, "the card")
    card = next(m for m in bots.platform.messages if m.reply_to == message_id(question))
    buttons = [
        e for e in json.dumps(card.content).split('"cmd": "')[1:] if e.startswith("!approve")
    ]
    return card.message_id, buttons[0].split('"')[0]


def click(bots: Bots, card_id: str, command: str, clicker: str) -> dict[str, Any]:
    action = {"tag": "button", "value": {"cmd": command}, "name": "Approve"}
    return card_action_envelope(
        action,
        operator_open_id=clicker,
        message_id=card_id,
        chat_id=GROUP,
        app_id=bots.platform.app_id,
    )


def toast_of(answer: bytes | None) -> dict[str, Any]:
    assert answer, "the ack carried no answer"
    return json.loads(answer)["toast"]


async def test_a_click_is_answered_in_the_ack_and_runs_once_as_the_clicker(bots, bot):
    card_id, approve = await _deploy_card(bots, bot)

    status, answer, problem = await bots.hub.post(click(bots, card_id, approve, BOB))
    assert status == 200, problem
    assert toast_of(answer) == {"type": "info", "content": f"Running {approve}…"}
    # Bob is no bot admin: Errbot's ACLs refuse the command he clicked, in the chat.
    await wait_until(
        lambda: any(REFUSED in text for text in bots.chat(GROUP)), ANSWER_WAIT, "the refusal"
    )
    assert bot.runs("!approve") == Counter()

    alices = click(bots, card_id, approve, ADMIN)
    status, answer, problem = await bots.hub.post(alices)
    assert status == 200, problem
    assert toast_of(answer)["type"] == "info"
    again = await bots.hub.post(alices)  # Feishu pushes the same click again: same answer
    assert again[1] == answer
    await wait_until(
        lambda: any("Deployed **prod**" in t or "Deployed prod" in t for t in bots.chat(GROUP)),
        ANSWER_WAIT,
        "the deploy's last step",
    )
    assert sum(bot.runs("!approve").values()) == 1
    updated = next(m for m in bots.platform.messages if m.message_id == card_id)
    assert "approved" in text_of(updated)


@pytest.mark.parametrize("fault", ["drop", "half_open"])
async def test_a_lost_socket_is_replaced_and_the_next_message_answered(bots, bot, fault):
    hub = bots.hub
    (first,) = hub.open_connections
    loop = asyncio.get_running_loop()
    started = loop.time()
    getattr(hub, fault)(first.id)
    await wait_until(
        lambda: any(c.id != first.id for c in hub.open_connections), 15, "a new connection"
    )
    took = loop.time() - started
    # A drop is seen at once; a half-open socket after 2 pings of 1 s + a grace of 1 s.
    assert took < (2.0 if fault == "drop" else 6.0), took
    question = bot.message("!echo back")
    assert (await hub.post(question))[0] == 200
    assert await answered(bots, question) == ["back"]
    log = bot.log()
    assert log.count("Activate internal commands") == 1, "plugins were activated again"
    assert "Long connection open again" in log
    assert "Long connection lost" in log


async def test_the_connection_limit_stops_the_bot_with_one_line_instead_of_looping(bots):
    bots.hub.max_connections = 0  # as if 50 old processes still held the app's connections
    with pytest.raises(AssertionError, match="exited early") as stopped:
        await bots.start("over-the-limit", mode="websocket")
    critical = [line for line in str(stopped.value).splitlines() if "CRITICAL" in line]
    assert len(critical) == 1, str(stopped.value)
    assert "50 long connections" in critical[0]
    assert "stop the other bot processes" in critical[0]


async def test_two_instances_share_the_pushes_and_run_each_event_once(bots, redis_server):
    """Feishu's cluster mode: each push goes to one connected client at random, a retry
    perhaps to the other. With one Redis for their state, each event runs once."""
    shared = {"state_url": redis_server.url}
    a = await bots.start("a", mode="websocket", lark_cards=shared)
    b = await bots.start("b", mode="websocket", lark_cards=shared)
    questions = [a.message(f"!echo {n}") for n in range(12)]
    for question in questions:
        for _ in range(3):  # each pushed three times, each time to a random instance
            assert (await bots.hub.post(question))[0] == 200
    asked = [message_id(q) for q in questions]
    await wait_until(lambda: all(bots.answers(q) for q in asked), ANSWER_WAIT, "every answer")
    await asyncio.sleep(1.0)
    assert [bots.answers(q) for q in asked] == [[str(n)] for n in range(12)], bots.logs()
    runs = a.runs("!echo") + b.runs("!echo")
    assert runs == Counter({str(n): 1 for n in range(12)}), bots.logs()
    assert a.runs("!echo"), "cluster mode gave every push to b"
    assert b.runs("!echo"), "cluster mode gave every push to a"


async def test_sigterm_closes_the_connection_and_lets_running_commands_answer(bots, bot):
    questions = [bot.message("!slow 2") for _ in range(3)]
    for question in questions:
        assert (await bots.hub.post(question))[0] == 200
    await wait_until(
        lambda: bot.log().count("slow command started") == 3, 30, "three running !slow commands"
    )
    assert await bot.stop(signal.SIGTERM, 60) == 0, bot.tail()
    assert [bots.answers(message_id(q)) for q in questions] == [["slept 2 s"]] * 3, bot.tail()
    log = bot.log()
    assert "Long connection closed" in log
    assert "Long connection lost" not in log  # a stop is no loss: nothing reconnected
    assert "Traceback" not in log
    assert bots.platform.app_secret not in log
    await wait_until(lambda: not bots.hub.connections, 5, "the hub to see the socket closed")
