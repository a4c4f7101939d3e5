"""Feishu events beyond messages reach Errbot's callbacks: reactions, membership, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from errbot.backends.base import REACTION_ADDED, REACTION_REMOVED
from errbot_config import errbot_config

from lark_cards.backend import LarkCardsBackend
from lark_cards.events import parse_callback
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant

FIXTURES = Path(__file__).parent / "fixtures" / "events"


def envelope(name: str):
    return parse_callback(json.loads((FIXTURES / f"{name}.json").read_text()))


@pytest.fixture
def backend(tmp_path: Path) -> LarkCardsBackend:
    bot = LarkCardsBackend(errbot_config(tmp_path))
    bot.bot_identifier = LarkPerson("ou_bot00000000000000000000000000000")
    return bot


def record(backend: LarkCardsBackend, monkeypatch, *names: str) -> list[tuple[str, Any, Any]]:
    calls: list[tuple[str, Any, Any]] = []
    for name in names:
        monkeypatch.setattr(
            backend,
            name,
            lambda *args, _name=name, **kwargs: calls.append((_name, args, kwargs)),
        )
    return calls


@pytest.mark.parametrize(
    ("fixture", "action"),
    [("reaction_created", REACTION_ADDED), ("reaction_deleted", REACTION_REMOVED)],
)
def test_reaction_events_reach_callback_reaction(backend, monkeypatch, fixture, action):
    calls = record(backend, monkeypatch, "callback_reaction")
    backend._handle_envelope(envelope(fixture))
    [(_, (reaction,), _)] = calls
    assert reaction.action == action
    assert isinstance(reaction.reactor, LarkPerson)
    assert reaction.reaction_name
    assert reaction.reacted_to["message_id"].startswith("om_")


def test_bot_added_and_removed_reach_the_room_callbacks(backend, monkeypatch):
    calls = record(backend, monkeypatch, "callback_room_joined", "callback_room_left")
    backend._handle_envelope(envelope("bot_added"))
    backend._handle_envelope(envelope("bot_deleted"))
    assert [name for name, _, _ in calls] == ["callback_room_joined", "callback_room_left"]
    joined_room = calls[0][1][0]
    assert isinstance(joined_room, LarkRoom)
    assert isinstance(calls[0][2]["invited_by"], LarkPerson)


def test_users_added_reach_callback_room_joined_as_occupants(backend, monkeypatch):
    calls = record(backend, monkeypatch, "callback_room_joined")
    backend._handle_envelope(envelope("user_added"))
    [(_, (room, who), _)] = calls
    assert isinstance(who, LarkRoomOccupant)
    assert who.room == room


@pytest.mark.parametrize("fixture", ["group_image", "group_file"])
def test_incoming_files_carry_their_keys_for_download_file(backend, monkeypatch, fixture):
    seen = []
    monkeypatch.setattr(backend, "callback_message", seen.append)
    monkeypatch.setattr(backend, "callback_mention", lambda *_: None)
    backend._handle_envelope(envelope(fixture))
    [msg] = seen
    [attachment] = msg.extras["attachments"]
    assert attachment["key"]
    assert attachment["type"] in ("image", "file")
    assert msg.extras["message_type"] in ("image", "file")
