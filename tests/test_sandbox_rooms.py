"""Errbot's room features and attachment downloads, driven by the bot's own code (room
operations over ``api.chats``, the received-message parser, ``download_resource``) against
the sandbox's Open API — the calls that used to end in the sandbox's text/plain 404."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from errbot.backends.base import RoomError
from sandbox_live import APP_ID, LiveSandbox, delivered_event

from lark_cards.api import chats as api
from lark_cards.api import contacts
from lark_cards.api.client import LarkClient
from lark_cards.api.errors import LarkAPIError
from lark_cards.api.files import download_resource
from lark_cards.directory import CachedDirectory
from lark_cards.identifiers import Identities, LarkPerson
from lark_cards.inbound.events import parse_message
from lark_cards.inbound.messages import to_message
from lark_cards.rooms import LarkRoomOperations
from lark_cards.sandbox.state import ALICE, BOB, BOT_OPEN_ID, GROUP_CHAT

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64


class Wired:
    """Identities and room operations wired as the backend wires them, on the sandbox."""

    def __init__(self, live: LiveSandbox) -> None:
        self.live = live
        self.client: LarkClient = live.client()
        self.directory = CachedDirectory(
            lambda open_id: self.run(lambda c: contacts.user_info(c, open_id)),
            lambda chat_id: self.run(lambda c: api.chat_info(c, chat_id)),
        )
        self.identities = Identities(self.directory)
        # ttl 0: every read asks the sandbox, so the tests see its state, not a cache.
        self.ops = LarkRoomOperations(
            self.run,
            app_id=APP_ID,
            identities=self.identities,
            remember=self.directory.remember,
            ttl=0.0,
        )
        self.identities.rooms = self.ops

    def run(self, request: Any) -> Any:
        return self.live.run(request(self.client))


@pytest.fixture
def wired(loop: asyncio.AbstractEventLoop) -> Iterator[Wired]:
    live = LiveSandbox(loop).start()
    wiring = Wired(live)
    yield wiring
    live.run(wiring.client.close())
    live.stop()


def test_a_chat_the_bot_creates_is_joined_owned_and_shows_its_topic(wired: Wired):
    room = wired.ops.create_chat("Deploys", description="prod only", invite=[ALICE], public=True)
    chat = wired.live.platform.chats[room.chat_id]
    assert (chat["name"], chat["chat_type"], chat["members"]) == ("Deploys", "public", [ALICE])
    assert room.exists
    assert room.joined
    assert room.topic == "prod only"
    assert [o.person for o in room.occupants] == [ALICE]


def test_the_same_uuid_creates_one_chat(wired: Wired):
    first = wired.ops.create_chat("Once", uuid="create-once")
    again = wired.ops.create_chat("Once", uuid="create-once")
    assert first == again
    assert sum(c.get("name") == "Once" for c in wired.live.platform.chats.values()) == 1


def test_set_topic_writes_the_chat_description(wired: Wired):
    room = wired.ops.create_chat("Ops")
    room.topic = "on call: Bob"
    assert wired.live.platform.chats[room.chat_id]["description"] == "on call: Bob"
    assert room.topic == "on call: Bob"


def test_invite_adds_people_and_names_the_ones_feishu_could_not_add(wired: Wired):
    room = wired.ops.create_chat("Team", invite=[ALICE])
    room.invite(LarkPerson(BOB))
    assert wired.live.platform.chats[room.chat_id]["members"] == [ALICE, BOB]
    with pytest.raises(RoomError, match="not_existed_id_list: ou_nobody"):
        room.invite("ou_nobody")


def test_leave_then_join_a_public_chat(wired: Wired):
    room = wired.ops.create_chat("Lobby", public=True)
    room.leave()
    assert not wired.live.platform.chats[room.chat_id]["bot_member"]
    assert not room.joined
    with pytest.raises(LarkAPIError) as refused:  # the bot left: it cannot post there
        wired.live.run(wired.client.send_message(room.chat_id, "text", {"text": "hi"}))
    assert refused.value.code == 230002
    room.join()
    assert room.joined


def test_a_private_chat_cannot_be_joined_by_the_bot(wired: Wired):
    room = wired.identities.room(GROUP_CHAT)
    room.leave()
    with pytest.raises(RoomError, match="232008"):
        room.join()


def test_destroy_disbands_the_chat_and_later_calls_say_232009(wired: Wired):
    room = wired.ops.create_chat("Temp")
    room.destroy()
    assert room.chat_id in wired.live.platform.dissolved
    with pytest.raises(LarkAPIError) as gone:
        wired.live.run(wired.client.send_message(room.chat_id, "text", {"text": "hi"}))
    assert gone.value.code == 232009


def test_only_the_owner_may_disband(wired: Wired):
    with pytest.raises(RoomError, match="232014"):
        wired.ops.destroy(wired.identities.room(GROUP_CHAT))  # Alice owns the group
    assert GROUP_CHAT in wired.live.platform.chats


# ----- attachments ------------------------------------------------------------------------------


def received(wired: Wired, message: Any) -> dict[str, Any]:
    """The extras Errbot's message gets for a user's message the sandbox delivers."""
    envelope = delivered_event(message)
    msg, _ = to_message(parse_message(envelope), LarkPerson(BOT_OPEN_ID), wired.identities)
    return msg.extras


@pytest.mark.parametrize(
    ("data", "name", "kind"), [(PNG, "shot.png", "image"), (b"%PDF-1.7 report", "q3.pdf", "file")]
)
def test_a_users_image_or_file_downloads_through_the_bots_code(
    wired: Wired, data: bytes, name: str, kind: str
):
    sent = wired.live.platform.post_user_file(GROUP_CHAT, ALICE, data, name)
    extras = received(wired, sent)
    [attachment] = extras["attachments"]
    assert attachment["type"] == kind
    downloaded = wired.live.run(
        download_resource(wired.client, extras["message_id"], attachment["key"], kind)
    )
    assert downloaded == data


def test_a_key_that_is_not_in_the_message_is_234003(wired: Wired):
    first = wired.live.platform.post_user_file(GROUP_CHAT, ALICE, PNG, "a.png")
    other = wired.live.platform.post_user_file(GROUP_CHAT, BOB, b"%PDF", "b.pdf")
    with pytest.raises(LarkAPIError) as refused:
        wired.live.run(
            download_resource(wired.client, first.message_id, other.content["file_key"], "file")
        )
    assert refused.value.code == 234003
