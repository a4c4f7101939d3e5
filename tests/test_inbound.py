"""Inbound: the one handler table, the ordered worker, the backlog bound, and a click parsed
once between its in-request answer and the command it runs."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from feishu_payloads import PLAIN, envelope, load, plain_body, with_ids
from inbound_fakes import ALICE, GROUP, P2P, FakeBot, chat_modes, count_click_parses

from lark_cards.identifiers import LarkPerson
from lark_cards.inbound import INBOUND_BACKLOG, Inbound
from lark_cards.interactive import REPLACE_CARD, ReplaceCard
from lark_cards.transport.envelope import (
    CARD_ACTION,
    MEMBER_EVENTS,
    MESSAGE_RECEIVE,
    REACTION_EVENTS,
    Envelope,
)
from lark_cards.transport.webhook import create_app

CARD = "om_card0000000000000000000000000001"


@pytest.fixture
def bot() -> FakeBot:
    return FakeBot(commands=("approve", "deny", "status"))


@pytest.fixture
def inbound(bot: FakeBot) -> Any:
    inbound = Inbound(bot)
    yield inbound
    inbound.close()


# ----- the handler table ----------------------------------------------------------------------

CALLBACKS = {
    "p2p_text": ["callback_message"],
    "group_text_mentions": ["callback_message", "callback_mention"],
    "group_image": ["callback_message"],
    "card_action": ["callback_message"],
    "reaction_created": ["callback_reaction"],
    "reaction_deleted": ["callback_reaction"],
    "bot_added": ["callback_room_joined"],
    "bot_deleted": ["callback_room_left"],
    "user_added": ["callback_room_joined"],
    "user_deleted": ["callback_room_left"],
    "unknown_event": [],
}


def test_the_table_has_one_entry_per_known_event_type(inbound: Inbound) -> None:
    known = {MESSAGE_RECEIVE, CARD_ACTION, *REACTION_EVENTS, *MEMBER_EVENTS}
    assert set(inbound.handlers) == known
    assert {envelope(name).event_type for name in CALLBACKS} >= known  # all tested below
    with pytest.raises(TypeError):
        inbound.handlers["x"] = inbound.handlers[MESSAGE_RECEIVE]  # type: ignore[index]


@pytest.mark.parametrize(("fixture", "callbacks"), CALLBACKS.items())
def test_each_event_type_reaches_its_own_errbot_callbacks(
    inbound: Inbound, bot: FakeBot, fixture: str, callbacks: list[str]
) -> None:
    inbound.handle(envelope(fixture))
    assert bot.names() == callbacks


def test_unknown_event_types_are_ignored_with_a_debug_line(
    inbound: Inbound, bot: FakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="lark_cards.inbound"):
        inbound.dispatch(envelope("unknown_event"))
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        "Ignoring event type im.chat.updated_v1 (f7984f25108f8137722bb63cee927e66)"
    )
    assert not inbound.busy()
    assert bot.calls == []


def test_unreadable_events_are_logged_and_never_queued(
    inbound: Inbound, bot: FakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    broken = load("p2p_text")
    del broken["event"]["message"]["chat_id"]
    unreadable = [
        envelope("p2p_text", message=broken["event"]["message"]),
        envelope("card_action", operator=None),
        envelope("reaction_created", reaction_type={}),
        envelope("user_added", users=[]),
    ]
    with caplog.at_level(logging.INFO, logger="lark_cards.inbound"):
        for event in unreadable:
            inbound.dispatch(event)
    assert [r.getMessage().split()[:2] for r in caplog.records] == [
        ["Unreadable", event.event_type] for event in unreadable
    ]
    assert bot.calls == []


def test_a_failing_handler_is_logged_and_the_next_event_still_handled(
    inbound: Inbound, bot: FakeBot, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    def broken(msg: Any) -> None:
        raise RuntimeError("plugin bug")

    monkeypatch.setattr(bot, "callback_message", broken)
    inbound.handle(envelope("p2p_text"))
    assert "Failed to process event" in caplog.text
    inbound.handle(envelope("reaction_created"))
    assert bot.names() == ["callback_reaction"]


# ----- the worker and the backlog -------------------------------------------------------------


async def test_events_reach_errbot_on_the_worker_in_arrival_order(
    inbound: Inbound, bot: FakeBot, monkeypatch
) -> None:
    threads: list[str] = []
    received = bot.callback_message

    def on_worker(msg: Any) -> None:
        threads.append(threading.current_thread().name)
        received(msg)

    monkeypatch.setattr(bot, "callback_message", on_worker)
    ids = [f"om_{n}" for n in range(20)]
    for n, message_id in enumerate(ids):
        payload = with_ids(load("p2p_text"), message_id=message_id)
        inbound.dispatch(Envelope(f"e{n}", MESSAGE_RECEIVE, None, payload["event"]))
    await inbound.drain(5)
    assert [msg.extras["message_id"] for msg in bot.messages()] == ids
    assert {name.split("_")[0] for name in threads} == {"lark-in"}


async def test_the_backlog_is_bounded_for_the_webhook(bot: FakeBot, monkeypatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(bot, "callback_message", lambda msg: release.wait(5))
    inbound = Inbound(bot, backlog=3)
    assert INBOUND_BACKLOG == 1000
    for _ in range(2):
        inbound.dispatch(envelope("p2p_text"))
    assert not inbound.busy()
    inbound.dispatch(envelope("p2p_text"))
    assert inbound.busy()
    release.set()
    await inbound.drain(5)
    assert not inbound.busy()
    inbound.close()


async def test_drain_is_bounded_and_tolerates_a_closed_worker(
    inbound: Inbound, bot: FakeBot, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    monkeypatch.setattr(bot, "callback_message", lambda msg: release.wait(5))
    inbound.dispatch(envelope("p2p_text"))
    await inbound.drain(0.05)
    assert "1 inbound event(s) had not reached Errbot in time" in caplog.text
    release.set()
    inbound.close()
    await asyncio.wait_for(inbound.drain(5), 1)  # Errbot's !restart closed it already


# ----- what each handler adds -------------------------------------------------------------------


def test_identifiers_use_the_bot_identity_of_the_moment(inbound: Inbound, bot: FakeBot) -> None:
    bot.bot_identifier = LarkPerson("ou_reconnected", name="Bot")
    inbound.handle(envelope("p2p_text"))
    [msg] = bot.messages()
    assert msg.to is bot.bot_identifier


def test_a_chat_type_seen_in_a_message_needs_no_lookup_for_a_click(bot: FakeBot) -> None:
    bot.directory = chat_modes()  # knows no chat: a lookup would read as "group"
    inbound = Inbound(bot)
    payload = load("p2p_text")
    payload["event"]["message"]["chat_id"] = P2P
    inbound.handle(Envelope("m", MESSAGE_RECEIVE, None, payload["event"]))
    inbound.handle(envelope("card_action_p2p"))
    click = bot.messages()[-1]
    assert click.is_direct
    assert bot.directory.asked == []
    inbound.close()


def test_a_permitted_click_asking_for_it_may_replace_its_card(
    inbound: Inbound, bot: FakeBot
) -> None:
    value = {"cmd": "!approve 7f3a", "replace": True}
    inbound.handle(envelope("card_action", action={"value": value}))
    bot.refused.add(ALICE)
    inbound.handle(envelope("card_action", action={"value": value}))
    allowed, refused = bot.messages()
    replace = allowed.extras[REPLACE_CARD]
    assert isinstance(replace, ReplaceCard)
    assert replace.card_message_id == CARD
    assert allowed.extras["replace"] is True  # the value's keys still reach the command
    assert REPLACE_CARD not in refused.extras  # the refusal goes under the card, never over it
    assert refused.to.chat_id == GROUP


# ----- a click, parsed once ---------------------------------------------------------------------


async def test_a_click_is_answered_in_the_request_and_run_from_the_same_parse(
    inbound: Inbound, bot: FakeBot, monkeypatch
) -> None:
    parsed = count_click_parses(monkeypatch)
    app = create_app(PLAIN, inbound.dispatch, respond=inbound.answer, busy=inbound.busy)
    async with TestClient(TestServer(app)) as http:
        for _ in range(3):  # Feishu retries a callback it thinks got lost
            async with http.post(PLAIN.path, data=plain_body(load("card_action"))) as resp:
                assert await resp.json() == {
                    "toast": {"type": "info", "content": "Running !approve 7f3a…"}
                }
        await asyncio.sleep(0)  # the dispatch is scheduled with call_soon
    await inbound.drain(5)
    [msg] = bot.messages()
    assert msg.body == "!approve 7f3a"
    assert msg.extras["action"].event_id == "0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"
    assert len(parsed) == 3  # one parse per delivery: each is answered, the first one runs
