"""Membership and reaction events → records."""

import pytest
from feishu_payloads import envelope

from lark_cards.inbound.room_events import (
    MemberChange,
    ReactionChange,
    parse_member_change,
    parse_reaction_change,
)
from lark_cards.transport.envelope import (
    BOT_ADDED,
    BOT_DELETED,
    USER_ADDED,
    USER_DELETED,
    Envelope,
    EventError,
)

GROUP = "oc_a0553eda9014c201e6969b478895c230"
OPERATOR = "ou_84aad35d084aa403a838cf73ee18467"
ALICE = "ou_alice000000000000000000000000000"
MSG = "om_dc13264520392913993dd051dba21dcf"

# ----- membership -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "change"),
    [
        ("bot_added", MemberChange(BOT_ADDED, GROUP, OPERATOR, "ops")),
        ("bot_deleted", MemberChange(BOT_DELETED, GROUP, OPERATOR, "ops")),
        ("user_added", MemberChange(USER_ADDED, GROUP, OPERATOR, "ops", ((ALICE, "Alice"),))),
        ("user_deleted", MemberChange(USER_DELETED, GROUP, ALICE, "ops", ((ALICE, "Alice"),))),
    ],
)
def test_member_events(fixture, change):
    assert parse_member_change(envelope(fixture)) == change


def test_who_joined_or_left_and_whether_it_is_the_bot():
    seen = {
        name: (change.joined, change.about_bot)
        for name in ("bot_added", "bot_deleted", "user_added", "user_deleted")
        for change in [parse_member_change(envelope(name))]
    }
    assert seen == {
        "bot_added": (True, True),
        "bot_deleted": (False, True),
        "user_added": (True, False),
        "user_deleted": (False, False),
    }


def test_malformed_member_events_are_event_errors():
    with pytest.raises(EventError, match="without users"):
        parse_member_change(Envelope("e", USER_ADDED, None, {"chat_id": GROUP, "users": "x"}))
    with pytest.raises(EventError, match="without users"):
        parse_member_change(envelope("user_deleted", users=[{"user_id": {"union_id": "on"}}]))
    with pytest.raises(EventError, match="without chat_id"):
        parse_member_change(Envelope("e", BOT_ADDED, None, {}))


# ----- reactions ------------------------------------------------------------------------------


def test_a_users_reaction():
    assert parse_reaction_change(envelope("reaction_created")) == ReactionChange(
        added=True,
        message_id=MSG,
        emoji_type="THUMBSUP",
        operator_type="user",
        user_open_id=OPERATOR,
        action_time="1627641418803",
    )
    assert not parse_reaction_change(envelope("reaction_deleted")).added


def test_an_apps_reaction_names_the_app_and_no_user():
    change = parse_reaction_change(envelope("reaction_created_by_app"))
    assert (change.operator_type, change.app_id, change.user_open_id) == (
        "app",
        "cli_9f5343c580712544",
        None,
    )
    assert change.emoji_type == "DONE"


def test_a_chat_id_is_kept_when_feishu_sends_one():
    assert parse_reaction_change(envelope("reaction_created", chat_id=GROUP)).chat_id == GROUP


@pytest.mark.parametrize(
    "event",
    [
        {"reaction_type": {}},
        {"reaction_type": "THUMBSUP"},
        {"message_id": ""},
        {"user_id": {"union_id": "on_x"}},
        {"operator_type": None, "user_id": None},
    ],
)
def test_malformed_reaction_events_are_event_errors(event):
    with pytest.raises(EventError):
        parse_reaction_change(envelope("reaction_created", **event))
