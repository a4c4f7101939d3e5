"""The bot adds and removes reactions (aioresponses), and plugins do so through the backend
(a fake Open API); users' reactions are in test_room_events.py and test_inbound_messages.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_fakes import BASE, FakeOpenAPI, calls
from errbot.backends.base import Message

from lark_cards.api.errors import LarkAPIError
from lark_cards.api.reactions import ReactionBook, add_reaction, emoji_type, list_reactions

APP_ID = "cli_9f5343c580712544"
USER = "ou_84aad35d084aa403a838cf73ee18467"
MSG = "om_dc13264520392913993dd051dba21dcf"
REACTIONS = f"/open-apis/im/v1/messages/{MSG}/reactions"
REACTIONS_RE = re.compile(rf"^{re.escape(BASE + REACTIONS)}(\?.*)?$")
OK: dict[str, Any] = {"code": 0, "msg": "success", "data": {}}


def reaction(reaction_id: str, emoji: str, operator_type: str, operator_id: str) -> dict:
    return {
        "reaction_id": reaction_id,
        "operator": {"operator_id": operator_id, "operator_type": operator_type},
        "action_time": "1663054162546",
        "reaction_type": {"emoji_type": emoji},
    }


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"code": 0, "data": {"items": list(items), "has_more": False}}


def deleted(m: Any) -> list[str]:
    return [url.path for (verb, url) in m.requests if verb == "DELETE"]


# ----- the reactions API ----------------------------------------------------------------------


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


async def test_an_add_answered_without_an_id_is_an_error(client, m):
    m.post(REACTIONS_RE, payload=OK)
    with pytest.raises(ValueError, match="reaction_id"):
        await add_reaction(client, MSG, "DONE")


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
    first, second = calls(m, "GET", REACTIONS)
    assert "reaction_type" not in first.kwargs["params"]
    assert second.kwargs["params"]["page_token"] == "p2"


def test_emoji_names_keep_their_case_and_lose_colons():
    assert emoji_type(" :Typing: ") == "Typing"
    with pytest.raises(ValueError, match="empty"):
        emoji_type("::")


# ----- removing by name: the ReactionBook ---------------------------------------------------


async def test_removing_a_reaction_the_bot_added_costs_one_call(client, m):
    m.post(REACTIONS_RE, payload={"code": 0, "data": {"reaction_id": "r-done"}})
    m.delete(f"{BASE}{REACTIONS}/r-done", payload=OK)
    book = ReactionBook(app_id=APP_ID)
    await book.add(client, MSG, "DONE")
    assert await book.remove(client, MSG, ":DONE:") == 1
    assert deleted(m) == [f"{REACTIONS}/r-done"]
    assert calls(m, "GET", REACTIONS) == []


async def test_removing_an_unknown_reaction_lists_and_removes_only_our_own(client, m):
    m.get(
        REACTIONS_RE,
        payload=listing(
            reaction("r-user", "DONE", "user", USER),
            reaction("r-other-app", "DONE", "app", "cli_other"),
            reaction("r-ours", "DONE", "app", APP_ID),
        ),
    )
    m.delete(f"{BASE}{REACTIONS}/r-ours", payload=OK)
    assert await ReactionBook(app_id=APP_ID).remove(client, MSG, "DONE") == 1
    [listed] = calls(m, "GET", REACTIONS)
    assert listed.kwargs["params"]["reaction_type"] == "DONE"
    assert deleted(m) == [f"{REACTIONS}/r-ours"]


async def test_removing_never_deletes_another_emoji_type_the_list_was_not_filtered_to():
    fake = FakeOpenAPI()
    unfiltered = listing(
        reaction("r-smile", "SMILE", "app", APP_ID),  # ours, but another emoji type
        reaction("r-done-lower", "done", "app", APP_ID),  # emoji types are case-sensitive
        reaction("r-done", "DONE", "app", APP_ID),
    )
    fake.on("GET", REACTIONS, lambda _: unfiltered)  # whatever reaction_type was asked for
    fake.on("DELETE", f"{REACTIONS}/*", lambda _: OK)
    assert await ReactionBook(app_id=APP_ID).remove(fake, MSG, "DONE") == 1
    assert [c.path for c in fake.calls if c.method == "DELETE"] == [f"{REACTIONS}/r-done"]
    fake.on("GET", REACTIONS, lambda _: listing(reaction("r-smile", "SMILE", "app", APP_ID)))
    assert await ReactionBook(app_id=APP_ID).remove(fake, MSG, "THUMBSUP") == 0
    assert len([c for c in fake.calls if c.method == "DELETE"]) == 1


async def test_removing_a_reaction_that_is_not_there_is_not_an_error(client, m):
    m.get(REACTIONS_RE, payload=listing())
    assert await ReactionBook(app_id=APP_ID).remove(client, MSG, "SMILE") == 0
    assert deleted(m) == []


async def test_the_book_forgets_oldest_ids_first():
    fake = FakeOpenAPI()
    ids = iter(["r-a", "r-b", "r-c"])
    fake.on("POST", REACTIONS, lambda _: {"code": 0, "data": {"reaction_id": next(ids)}})
    fake.on("GET", REACTIONS, lambda _: listing(reaction("r-a", "A", "app", APP_ID)))
    fake.on("DELETE", f"{REACTIONS}/*", lambda _: OK)
    book = ReactionBook(app_id=APP_ID, max_entries=2)
    for emoji in ("A", "B", "C"):
        await book.add(fake, MSG, emoji)
    for emoji in ("C", "B", "A"):
        assert await book.remove(fake, MSG, emoji) == 1
    removals = [(c.method, c.path.rsplit("/", 1)[-1]) for c in fake.calls if c.method != "POST"]
    # B and C were remembered: one DELETE each; A was forgotten, so it had to be looked up.
    assert removals == [
        ("DELETE", "r-c"),
        ("DELETE", "r-b"),
        ("GET", "reactions"),
        ("DELETE", "r-a"),
    ]


# ----- plugins: self._bot.add_reaction / remove_reaction ------------------------------------


def question() -> Message:
    return Message("!deploy", extras={"message_id": MSG})


def test_plugins_add_and_remove_reactions_through_the_backend(connected):
    fake: FakeOpenAPI = connected.client
    fake.on("POST", REACTIONS, lambda _: {"code": 0, "data": {"reaction_id": "r-eyes"}})
    fake.on("DELETE", f"{REACTIONS}/*", lambda _: OK)
    connected.add_reaction(question(), ":EYES:")  # waits for Feishu's answer
    connected.remove_reaction(question(), "EYES")
    [added, removed] = [c for c in fake.calls if "/reactions" in c.path]
    assert (added.method, added.json) == ("POST", {"reaction_type": {"emoji_type": "EYES"}})
    assert added.thread == removed.thread == "lark-loop"
    assert (removed.method, removed.path) == ("DELETE", f"{REACTIONS}/r-eyes")


def test_plugins_see_reaction_errors_and_refusals(connected):
    fake: FakeOpenAPI = connected.client
    fake.on("POST", REACTIONS, lambda _: (400, {"code": 231001, "msg": "invalid reaction"}))
    with pytest.raises(LarkAPIError, match="231001"):
        connected.add_reaction(question(), "NOPE")
    with pytest.raises(ValueError, match="message_id"):
        connected.add_reaction(Message("typed, not received"), "DONE")
