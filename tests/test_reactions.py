"""Reactions both ways: the bot adds/removes them (aioresponses), events become Reactions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from api_fakes import BASE, calls
from errbot.backends.base import REACTION_ADDED, REACTION_REMOVED

from lark_cards.api import LarkAPIError
from lark_cards.events import Envelope, EventError, parse_callback
from lark_cards.identifiers import LarkPerson
from lark_cards.reactions import (
    ReactionBook,
    add_reaction,
    emoji_type,
    list_reactions,
    reaction_from_event,
)

APP_ID = "cli_9f5343c580712544"
BOT = "ou_bot00000000000000000000000000000"
USER = "ou_84aad35d084aa403a838cf73ee18467"
MSG = "om_dc13264520392913993dd051dba21dcf"
REACTIONS = f"/open-apis/im/v1/messages/{MSG}/reactions"
REACTIONS_RE = re.compile(rf"^{re.escape(BASE + REACTIONS)}(\?.*)?$")
FIXTURES = Path(__file__).parent / "fixtures" / "events"
OK: dict[str, Any] = {"code": 0, "msg": "success", "data": {}}


def reaction(reaction_id: str, emoji: str, operator_type: str, operator_id: str) -> dict:
    return {
        "reaction_id": reaction_id,
        "operator": {"operator_id": operator_id, "operator_type": operator_type},
        "action_time": "1663054162546",
        "reaction_type": {"emoji_type": emoji},
    }


# ----- outgoing -------------------------------------------------------------------------------


async def test_add_reaction_posts_the_emoji_type_and_returns_the_id(client, m):
    m.post(
        REACTIONS_RE,
        payload={"code": 0, "data": reaction("ZCaCIjUBVVWSrm5L", "THUMBSUP", "app", APP_ID)},
    )
    assert await add_reaction(client, MSG, ":THUMBSUP:") == "ZCaCIjUBVVWSrm5L"
    [call] = calls(m, "POST", REACTIONS)
    assert call.kwargs["json"] == {"reaction_type": {"emoji_type": "THUMBSUP"}}


async def test_add_reaction_errors_surface(client, m):
    m.post(REACTIONS_RE, status=400, payload={"code": 231001, "msg": "reaction type is invalid"})
    with pytest.raises(LarkAPIError, match="231001"):
        await add_reaction(client, MSG, "NOPE")


async def test_removing_a_reaction_the_bot_added_costs_one_call(client, m):
    m.post(REACTIONS_RE, payload={"code": 0, "data": {"reaction_id": "r-done"}})
    m.delete(f"{BASE}{REACTIONS}/r-done", payload=OK)
    book = ReactionBook(app_id=APP_ID)
    await book.add(client, MSG, "DONE")
    assert await book.remove(client, MSG, ":DONE:") == 1
    assert len(calls(m, "DELETE", f"{REACTIONS}/r-done")) == 1
    assert calls(m, "GET", REACTIONS) == []


async def test_removing_an_unknown_reaction_lists_and_removes_only_our_own(client, m):
    m.get(
        REACTIONS_RE,
        payload={
            "code": 0,
            "data": {
                "items": [
                    reaction("r-user", "DONE", "user", USER),
                    reaction("r-other-app", "DONE", "app", "cli_other"),
                    reaction("r-ours", "DONE", "app", APP_ID),
                ],
                "has_more": False,
            },
        },
    )
    m.delete(f"{BASE}{REACTIONS}/r-ours", payload=OK)
    assert await ReactionBook(app_id=APP_ID).remove(client, MSG, "DONE") == 1
    [listing] = calls(m, "GET", REACTIONS)
    assert listing.kwargs["params"]["reaction_type"] == "DONE"
    deleted = [url.path for (verb, url) in m.requests if verb == "DELETE"]
    assert deleted == [f"{REACTIONS}/r-ours"]


async def test_removing_a_reaction_that_is_not_there_is_not_an_error(client, m):
    m.get(REACTIONS_RE, payload={"code": 0, "data": {"items": [], "has_more": False}})
    assert await ReactionBook(app_id=APP_ID).remove(client, MSG, "SMILE") == 0


async def test_list_reactions_follows_pages(client, m):
    m.get(
        REACTIONS_RE,
        payload={
            "code": 0,
            "data": {"items": [reaction("r1", "OK", "user", USER)], "has_more": True,
                     "page_token": "p2"},
        },
    )  # fmt: skip
    m.get(
        REACTIONS_RE,
        payload={"code": 0, "data": {"items": [reaction("r2", "OK", "user", USER)]}},
    )
    items = await list_reactions(client, MSG)
    assert [i["reaction_id"] for i in items] == ["r1", "r2"]
    assert calls(m, "GET", REACTIONS)[1].kwargs["params"]["page_token"] == "p2"


async def test_the_book_forgets_oldest_ids_first(client, m):
    m.post(REACTIONS_RE, payload={"code": 0, "data": {"reaction_id": "r"}}, repeat=True)
    book = ReactionBook(max_entries=2)
    for emoji in ("A", "B", "C"):
        await book.add(client, MSG, emoji)
    assert list(book._ids) == [(MSG, "B"), (MSG, "C")]


def test_emoji_names_keep_their_case_and_lose_colons():
    assert emoji_type(" :Typing: ") == "Typing"
    with pytest.raises(ValueError, match="empty"):
        emoji_type("::")


# ----- incoming -------------------------------------------------------------------------------


def envelope(name: str) -> Envelope:
    parsed = parse_callback(json.loads((FIXTURES / f"{name}.json").read_text()))
    assert isinstance(parsed, Envelope)
    return parsed


def test_a_user_reaction_event_becomes_an_errbot_reaction():
    got = reaction_from_event(envelope("reaction_created"), BOT, bot_app_id=APP_ID)
    assert got is not None
    assert got.reactor == LarkPerson(USER)
    assert got.action == REACTION_ADDED
    assert got.reaction_name == "THUMBSUP"
    assert got.timestamp == "1627641418803"
    assert got.reacted_to == {"message_id": MSG, "operator_type": "user"}
    assert got.reacted_to_owner is None
    assert "THUMBSUP" in str(got)


def test_a_deleted_reaction_is_removed():
    got = reaction_from_event(envelope("reaction_deleted"), BOT, bot_app_id=APP_ID)
    assert got is not None
    assert got.action == REACTION_REMOVED


def test_the_bots_own_reaction_has_the_bot_as_reactor_and_other_apps_are_skipped():
    ours = reaction_from_event(envelope("reaction_created_by_app"), BOT, bot_app_id=APP_ID)
    assert ours is not None
    assert ours.reactor == LarkPerson(BOT)
    assert ours.reaction_name == "DONE"
    assert reaction_from_event(envelope("reaction_created_by_app"), BOT, bot_app_id="cli_x") is None
    assert reaction_from_event(envelope("reaction_created_by_app"), BOT) is None


def test_malformed_reaction_events_are_event_errors():
    good = envelope("reaction_created")
    no_emoji = {**good.event, "reaction_type": {}}
    no_user = {**good.event, "user_id": {"union_id": "on_x"}}
    for event in (no_emoji, no_user):
        with pytest.raises(EventError):
            reaction_from_event(Envelope("e", good.event_type, None, event), BOT)
    with pytest.raises(EventError, match="not a reaction"):
        reaction_from_event(envelope("p2p_text"), BOT)
