"""Records → what Errbot is handed: messages, mentions, room callbacks and reactions."""

from __future__ import annotations

import pytest
from errbot.backends.base import REACTION_ADDED, REACTION_REMOVED
from feishu_payloads import envelope
from inbound_fakes import ALICE, APP_ID, GROUP, FakeBot, Membership

from lark_cards.identifiers import Identities, LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.inbound.events import Mention, parse_message
from lark_cards.inbound.messages import (
    file_extras,
    member_callbacks,
    resolve_mentions,
    to_message,
    to_reaction,
)
from lark_cards.inbound.room_events import parse_member_change, parse_reaction_change

BOT = "ou_bot00000000000000000000000000000"
IMAGE = "img_v2_041b28e3-5680-48c2-9af2-497ace79333g"
OTHER = "ou_alice000000000000000000000000000"  # the second person mentioned, and added


@pytest.fixture
def bot() -> FakeBot:
    return FakeBot()


def message(bot: FakeBot, fixture: str):
    return to_message(parse_message(envelope(fixture)), bot.bot_identifier, bot.identities)


# ----- messages -------------------------------------------------------------------------------


def test_a_direct_message_is_from_the_person_to_the_bot(bot):
    msg, people = message(bot, "p2p_text")
    assert msg.body == "!echo hi"
    assert msg.is_direct
    assert msg.frm == LarkPerson(ALICE)
    assert not isinstance(msg.frm, LarkRoomOccupant)
    assert msg.frm.client == "oc_5ce6d572455d361153b7xx51da133945"
    assert msg.frm.fullname == f"Full name of {ALICE}"  # the backend's directory answers
    assert msg.to is bot.bot_identifier
    assert msg.extras == {
        "message_id": "om_5ce6d572455d361153b7cb51da133945",
        "chat_id": "oc_5ce6d572455d361153b7xx51da133945",
        "chat_type": "p2p",
        "event_id": envelope("p2p_text").event_id,
        "message_type": "text",
        "root_id": None,
        "thread_id": None,
    }
    assert people == []


def test_a_group_message_is_from_an_occupant_to_the_room_without_the_bots_mention(bot):
    msg, people = message(bot, "group_text_mentions")
    assert msg.body == "!echo hi @Alice"
    assert msg.is_group
    assert msg.frm == LarkRoomOccupant(ALICE, LarkRoom(GROUP))
    assert msg.frm.aclattr == ALICE
    assert msg.to == LarkRoom(GROUP)
    assert msg.to.identities is bot.identities  # room operations reach this backend
    assert msg.frm.room.identities is bot.identities
    assert people[0] is bot.bot_identifier
    assert people[1:] == [LarkPerson(OTHER)]
    assert people[1].nick == "Alice"


def files(fixture: str) -> dict:
    return file_extras(parse_message(envelope(fixture)))


def test_images_and_files_carry_their_keys_for_download_file(bot):
    assert files("group_image") == {
        "image_key": IMAGE,
        "attachments": [{"key": IMAGE, "type": "image", "name": None}],
    }
    extras = files("group_file")
    assert extras["file_key"] == "file_v2_9a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5g"
    assert extras["file_name"] == "deploy-report.pdf"
    assert extras["attachments"][0]["type"] == "file"
    media = files("group_media")
    assert [a["type"] for a in media["attachments"]] == ["file", "image"]
    assert media["duration"] == 2000
    assert files("group_post") == {
        "image_keys": [IMAGE],
        "attachments": [{"key": IMAGE, "type": "image", "name": None}],
    }
    assert files("p2p_text") == {}
    msg, _ = message(bot, "group_file")
    assert msg.extras["attachments"] == extras["attachments"]  # in every message's extras


def test_resolve_mentions_does_not_confuse_user_1_with_user_10():
    mentions = (Mention("@_user_1", BOT, "Bot"), Mention("@_user_10", "ou_x", "Xu"))
    text, others = resolve_mentions("@_user_1 hi @_user_10", mentions, BOT)
    assert text == "hi @Xu"
    assert others == [mentions[1]]


def test_resolve_mentions_keeps_unknown_placeholders_and_reads_at_all():
    text, others = resolve_mentions("@_user_9 @_all ping", (), BOT)
    assert text == "@_user_9 @all ping"
    assert others == []


# ----- membership -----------------------------------------------------------------------------


def members(bot: FakeBot, fixture: str) -> Membership:
    membership = Membership()
    member_callbacks(bot, parse_member_change(envelope(fixture)), bot.identities, membership)
    return membership


def test_the_bot_added_and_removed(bot):
    assert members(bot, "bot_added").calls == [("note_joined", (GROUP, True))]
    assert members(bot, "bot_deleted").calls == [("note_joined", (GROUP, False))]
    [(joined, (room, who), kw_joined), (left, (_, _), kw_left)] = bot.calls
    assert (joined, left) == ("callback_room_joined", "callback_room_left")
    assert who is None  # Errbot reads "no one" as the bot itself
    assert room == LarkRoom(GROUP)
    assert room.name == "ops"  # from the event, no look-up
    assert room.identities is bot.identities
    assert kw_joined == {"invited_by": LarkPerson(ALICE)}
    assert kw_left == {"kicked_by": LarkPerson(ALICE)}


def test_users_added_are_occupants_of_the_named_room(bot):
    assert members(bot, "user_added").calls == [("forget", GROUP)]
    [(_, (room, who), kwargs)] = bot.calls
    assert isinstance(who, LarkRoomOccupant)
    assert (who.open_id, who.nick) == (OTHER, "Alice")
    assert who.room is room
    assert kwargs == {"invited_by": LarkPerson(ALICE)}


def test_a_user_who_left_by_herself_was_not_kicked(bot):
    members(bot, "user_deleted")
    [(name, (_, who), kwargs)] = bot.calls
    assert (name, who.open_id) == ("callback_room_left", OTHER)
    assert kwargs == {"kicked_by": None}


# ----- reactions ------------------------------------------------------------------------------


def reaction(bot: FakeBot, fixture: str, app_id: str | None = APP_ID):
    change = parse_reaction_change(envelope(fixture))
    return to_reaction(change, bot.bot_identifier, bot.identities, app_id=app_id)


def test_a_user_reaction_becomes_an_errbot_reaction(bot):
    got = reaction(bot, "reaction_created")
    assert got is not None
    assert got.reactor == LarkPerson(ALICE)
    assert got.reactor.fullname == f"Full name of {ALICE}"
    assert got.action == REACTION_ADDED
    assert got.reaction_name == "THUMBSUP"
    assert got.timestamp == "1627641418803"
    assert got.reacted_to == {
        "message_id": "om_dc13264520392913993dd051dba21dcf",
        "operator_type": "user",
    }
    assert got.reacted_to_owner is None
    assert "THUMBSUP" in str(got)
    removed = reaction(bot, "reaction_deleted")
    assert removed is not None
    assert removed.action == REACTION_REMOVED


def test_the_bots_own_reaction_has_the_bot_as_reactor_and_other_apps_are_skipped(bot):
    ours = reaction(bot, "reaction_created_by_app")
    assert ours is not None
    assert ours.reactor is bot.bot_identifier
    assert ours.reaction_name == "DONE"
    assert reaction(bot, "reaction_created_by_app", app_id="cli_x") is None
    assert reaction(bot, "reaction_created_by_app", app_id=None) is None


def test_a_reaction_keeps_its_chat_when_feishu_sends_one():
    change = parse_reaction_change(envelope("reaction_created", chat_id=GROUP))
    got = to_reaction(change, LarkPerson(BOT), Identities(), app_id=None)
    assert got is not None
    assert got.reacted_to["chat_id"] == GROUP
