"""A click → the command it names, run as the clicker: the toast, the parse kept for the
dispatch, the click as an Errbot message, chat types, and the ACL dry run (with Errbot's real
ACLs core plugin and the sample Approval plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from errbot_config import errbot_config, offline_backend
from feishu_payloads import envelope
from inbound_fakes import (
    ALICE,
    GROUP,
    P2P,
    FakeBot,
    backend_with_acls,
    chat_modes,
    count_click_parses,
)

from lark_cards.backend import LarkCardsBackend
from lark_cards.identifiers import Identities, LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.inbound.clicks import (
    ChatTypes,
    ClickAnswers,
    action_message,
    command_allowed,
    replacement,
    toast_for,
)
from lark_cards.inbound.events import CardAction, parse_card_action
from lark_cards.interactive import REPLACE_CARD, ReplaceCard
from lark_cards.outbound import target_of
from lark_cards.transport.envelope import EventError

BOT = LarkPerson("ou_bot00000000000000000000000000000", name="ChatOps Bot")
ADMIN = "ou_admin"  # errbot_config's BOT_ADMINS
CARD = "om_card0000000000000000000000000001"


def types(**known: str) -> ChatTypes:
    return ChatTypes(chat_modes(**known).chat)


def clicked(action: CardAction, **chat: str) -> Any:
    chat_types = types(**chat) if chat else types(**{GROUP: "group", P2P: "p2p"})
    return action_message(action, BOT, Identities(), chat_types)


# ----- the 3-second answer --------------------------------------------------------------------


def test_toasts_say_what_runs_or_why_nothing_does() -> None:
    action = parse_card_action(envelope("card_action"))
    assert toast_for(action) == {"toast": {"type": "info", "content": "Running !approve 7f3a…"}}
    long = CardAction("e", ALICE, {"cmd": "!say " + "x" * 200})
    assert len(toast_for(long)["toast"]["content"]) <= len("Running …") + 60
    assert toast_for(parse_card_action(envelope("card_action_form")))["toast"]["type"] == "error"
    assert toast_for(EventError("no operator")) == {
        "toast": {"type": "error", "content": "This click could not be read."}
    }


def test_the_action_parsed_for_the_answer_is_the_one_dispatched() -> None:
    answers = ClickAnswers()
    click = envelope("card_action")
    assert answers.answer(click)["toast"]["type"] == "info"
    first = answers.take(click)
    assert first.command == "!approve 7f3a"
    again = answers.take(click)  # not answered this time: parsed now
    assert again == first
    assert again is not first


def test_an_unreadable_click_is_answered_and_its_error_handed_on() -> None:
    answers = ClickAnswers()
    broken = envelope("card_action", operator=None)
    assert answers.answer(broken)["toast"]["type"] == "error"
    with pytest.raises(EventError, match="operator"):
        answers.take(broken)


def test_answers_never_taken_are_forgotten_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = count_click_parses(monkeypatch)
    answers = ClickAnswers(max_entries=2)
    retried = [replace(envelope("card_action"), event_id=f"click-{n}") for n in range(3)]
    for click in retried:  # answered, then (as retries) never dispatched
        answers.answer(click)
    assert [answers.take(click).event_id for click in retried] == ["click-0", "click-1", "click-2"]
    assert parsed == ["click-0", "click-1", "click-2", "click-0"]  # only the dropped one again


# ----- the click as an Errbot message ---------------------------------------------------------


def test_a_group_click_is_a_message_from_the_clicker_in_the_room(tmp_path: Path) -> None:
    action = parse_card_action(envelope("card_action"))
    identities = Identities()
    msg = action_message(action, BOT, identities, types(**{GROUP: "group"}))
    assert msg is not None
    assert msg.body == "!approve 7f3a"
    assert msg.frm == LarkRoomOccupant(ALICE, LarkRoom(GROUP))
    assert msg.frm.aclattr == ALICE
    assert msg.to == LarkRoom(GROUP)
    assert msg.to.identities is identities
    assert msg.is_group
    assert msg.extras["request"] == "7f3a"
    assert msg.extras["card_message_id"] == CARD
    assert (msg.extras["chat_id"], msg.extras["chat_type"]) == (GROUP, "group")
    assert msg.extras["action"] is action
    assert REPLACE_CARD not in msg.extras
    assert msg.parent is not None
    assert msg.parent.extras == {"message_id": CARD, "chat_id": GROUP, "chat_type": "group"}
    # Errbot's replies (ACL refusals, the command's output) go under the card.
    reply = offline_backend(errbot_config(tmp_path)).build_reply(msg, "done")
    assert (target_of(reply).reply_to, target_of(reply).receive_id) == (CARD, GROUP)


def test_a_p2p_click_is_a_direct_message_to_the_bot(tmp_path: Path) -> None:
    msg = clicked(parse_card_action(envelope("card_action_p2p")))
    assert msg is not None
    assert msg.is_direct
    assert msg.frm == LarkPerson(ALICE)
    assert not isinstance(msg.frm, LarkRoomOccupant)
    assert msg.frm.client == P2P
    assert msg.to is BOT
    reply = offline_backend(errbot_config(tmp_path)).build_reply(msg, "ok")
    assert target_of(reply).reply_to == "om_card0000000000000000000000000002"


def test_a_click_outside_a_chat_answers_the_clicker() -> None:
    msg = clicked(parse_card_action(envelope("card_action", context={})))
    assert msg is not None
    assert (msg.frm, msg.to, msg.parent) == (LarkPerson(ALICE), BOT, None)
    assert msg.extras["chat_type"] == "p2p"


def test_a_card_value_cannot_spoof_the_chat_the_card_or_a_replacement() -> None:
    spoofed = {"chat_id": "oc_evil", "card_message_id": "om_evil", REPLACE_CARD: "om_evil"}
    action = parse_card_action(envelope("card_action", action={"value": spoofed | {"cmd": "!x"}}))
    msg = clicked(action)
    assert msg is not None
    assert (msg.extras["chat_id"], msg.extras["card_message_id"]) == (GROUP, CARD)
    assert REPLACE_CARD not in msg.extras


def test_no_command_means_no_message() -> None:
    assert clicked(parse_card_action(envelope("card_action_form"))) is None


def test_chat_types_remember_and_look_up_once() -> None:
    directory = chat_modes(oc_a="p2p", oc_t="topic")
    chat_types = ChatTypes(directory.chat, max_entries=2)
    chat_types.remember("oc_m", "group")
    assert [chat_types("oc_m"), chat_types("oc_a"), chat_types("oc_a")] == ["group", "p2p", "p2p"]
    assert chat_types("oc_t") == "topic_group"
    # Unknown: the stricter "group", and not remembered (asked again next time).
    assert [chat_types("oc_gone"), chat_types("oc_gone")] == ["group", "group"]
    assert directory.asked == ["oc_a", "oc_t", "oc_gone", "oc_gone"]
    assert chat_types("oc_m") == "group"  # evicted (max 2), then looked up: unknown → group


# ----- replacing the clicked card: decided once -----------------------------------------------


def replace_click(**value: Any) -> CardAction:
    return parse_card_action(
        envelope("card_action", action={"value": {"cmd": "!approve 7f3a", **value}})
    )


def test_a_button_asking_for_it_replaces_the_card_when_the_clicker_may_run_the_command() -> None:
    bot = FakeBot(commands=("approve",))
    action = replace_click(replace=True)
    card = replacement(bot, action, clicked(action))
    assert isinstance(card, ReplaceCard)
    assert card.card_message_id == CARD
    assert bot.calls == [("filters", ("approve", "7f3a"), {})]


def test_no_replacement_unless_asked_allowed_and_on_a_card() -> None:
    bot = FakeBot(commands=("approve",))
    assert replacement(bot, replace_click(), clicked(replace_click())) is None
    assert bot.calls == []  # not asked: no dry run either
    bot.refused.add(ALICE)
    asked = replace_click(replace=True)
    assert replacement(bot, asked, clicked(asked)) is None
    bot.refused.clear()
    off_card = parse_card_action(
        envelope("card_action", context={}, action={"value": {"cmd": "!approve", "replace": True}})
    )
    assert replacement(bot, off_card, clicked(off_card)) is None


# ----- the ACL dry run, against Errbot's real ACLs ----------------------------------------------


@pytest.fixture
def errbot(tmp_path: Path) -> Iterator[LarkCardsBackend]:
    bot = backend_with_acls(tmp_path, BOT)
    yield bot
    bot.shutdown()


def allowed(bot: LarkCardsBackend, cmd: str, operator: str, chat: str = GROUP) -> bool:
    action = CardAction("e", operator, {"cmd": cmd}, open_message_id=CARD, open_chat_id=chat)
    msg = clicked(action)
    return command_allowed(bot, msg)


def test_the_dry_run_applies_the_acls_to_the_clicker(errbot: LarkCardsBackend) -> None:
    assert not allowed(errbot, "!approve 7f3a", ALICE)  # admin only
    assert allowed(errbot, "!approve 7f3a", ADMIN)  # allowmuc for approve
    assert allowed(errbot, "!deny 7f3a", ALICE)
    assert allowed(errbot, "!approve 7f3a", ADMIN, chat=P2P)
    errbot.bot_config.ACCESS_CONTROLS = {}
    assert not allowed(errbot, "!approve 7f3a", ADMIN)  # admin commands in groups need allowmuc
    assert allowed(errbot, "!approve 7f3a", ADMIN, chat=P2P)


def test_the_dry_run_refuses_what_errbot_would_not_run(errbot: LarkCardsBackend) -> None:
    assert not allowed(errbot, "approve 7f3a", ADMIN)  # no prefix
    assert not allowed(errbot, "!nosuchcommand", ADMIN)
    assert not allowed(errbot, "!", ADMIN)
