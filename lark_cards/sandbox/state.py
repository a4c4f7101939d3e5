"""What the sandbox platform remembers: people, chats, every message and its changes.

One :class:`Conversations` holds the timeline of every chat (messages users typed in the page
and messages the bot sent through the Open API) and a change counter. Each change (a new
message, a PATCH, a reaction) gives the message the next ``seq``, so the browser page asks
"what changed since N" and redraws those messages in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

BOT_OPEN_ID = "ou_bot00000000000000000000000000000"
BOT_NAME = "ChatOps Bot"
ALICE = "ou_alice000000000000000000000000000"
BOB = "ou_bob00000000000000000000000000000"
GROUP_CHAT = "oc_sandboxgroup000000000000000000000"


@dataclass
class Reaction:
    """An emoji reaction on a message (``im/v1/messages/:id/reactions``)."""

    reaction_id: str
    emoji_type: str
    operator_id: str
    operator_type: str  # "app" | "user"
    action_time: int


@dataclass
class StoredMessage:
    """One message as the platform stores it: sent by the bot through the Open API, typed by a
    user in the page, or a system notice (a refusal).

    The first seven fields are the message itself (tests read them); the rest serve the page:
    who sent it (``sender_id`` is the app id / user open_id), when, how often it changed.
    ``reply_to`` is Feishu's ``parent_id`` (the message replied to); ``root_id`` is the root
    of that reply chain and ``thread_id`` the thread (``omt_…``) the message is in, both ""
    when there is none (:mod:`.threads` places a message).
    """

    message_id: str
    chat_id: str
    msg_type: str
    content: dict[str, Any]
    uuid: str | None
    reply_to: str | None = None
    reply_in_thread: bool = False
    sender_id: str = ""
    sender_type: str = "app"  # "app" (the bot) | "user"
    create_time: float = 0.0
    updates: int = 0
    reactions: list[Reaction] = field(default_factory=list)
    delivery: str = ""  # user messages: "pending" | "delivered" | "retrying" | "failed"
    seq: int = 0
    root_id: str = ""
    thread_id: str = ""
    edits: int = 0  # PUT edits of a text/post message (Feishu allows 20)

    def to_json(self) -> dict[str, Any]:
        """The page's view of this message."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "msg_type": self.msg_type,
            "content": self.content,
            "reply_to": self.reply_to,
            "reply_in_thread": self.reply_in_thread,
            "root_id": self.root_id,
            "thread_id": self.thread_id,
            "sender_id": self.sender_id,
            "sender_type": self.sender_type,
            "create_time": int(self.create_time * 1000),
            "updates": self.updates,
            "reactions": [
                {"emoji_type": r.emoji_type, "operator_id": r.operator_id} for r in self.reactions
            ],
            "delivery": self.delivery,
            "seq": self.seq,
        }


def default_users() -> dict[str, dict[str, Any]]:
    """The two simulated people: Alice (direct chat and group) and Bob (group)."""
    return {
        ALICE: _user(ALICE, "Alice", "alice@sandbox.example"),
        BOB: _user(BOB, "Bob", "bob@sandbox.example"),
    }


def default_chats() -> dict[str, dict[str, Any]]:
    """Alice's direct chat with the bot and a group with Alice, Bob and the bot."""
    return {
        p2p_chat_id(ALICE): _chat("Alice", "p2p", [ALICE]),
        GROUP_CHAT: _chat("Sandbox group", "group", [ALICE, BOB]),
    }


def p2p_chat_id(open_id: str) -> str:
    """The direct chat between the bot and ``open_id``."""
    return f"oc_p2p_{open_id}"


def find_user(users: dict[str, dict[str, Any]], id_type: str, value: str) -> dict[str, Any] | None:
    """The user whose ``id_type`` (open_id, user_id, union_id or email) is ``value``."""
    if id_type == "open_id":
        return users.get(value)
    return next((user for user in users.values() if user.get(id_type) == value), None)


def _user(open_id: str, name: str, email: str) -> dict[str, Any]:
    return {
        "open_id": open_id,
        "union_id": "on_" + open_id[3:],
        "user_id": name.lower(),  # a tenant's own employee id, e.g. "alice"
        "name": name,
        "en_name": name,
        "email": email,
        "status": {"is_activated": True},
    }


def _chat(name: str, mode: str, members: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": "",
        "chat_mode": mode,
        "chat_type": "private",
        "owner_id": members[0],
        "owner_id_type": "open_id",
        "user_count": str(len(members)),
        "bot_count": "1",
        "members": members,
        "tenant_key": "sandbox",
    }


class Conversations:
    """Every message of every chat in order, plus a feed of changes for the page."""

    def __init__(self) -> None:
        self.timeline: list[StoredMessage] = []
        self.bot_messages: list[StoredMessage] = []  # what the bot sent, in order
        self.seq = 0
        self._by_id: dict[str, StoredMessage] = {}
        self.thread_roots: dict[str, str] = {}  # thread_id → the thread's root message
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    def new_id(self) -> str:
        return f"om_sbx{next(self._ids):06d}{secrets.token_hex(6)}"

    def add(self, message: StoredMessage) -> StoredMessage:
        self.timeline.append(message)
        self._by_id[message.message_id] = message
        if message.sender_type == "app":
            self.bot_messages.append(message)
        self.touch(message)
        return message

    def get(self, message_id: str) -> StoredMessage | None:
        """Any stored message, the page's system notices included."""
        return self._by_id.get(message_id)

    def find(self, message_id: str) -> StoredMessage | None:
        """A message Feishu has: system notices (refusals the page shows) are no messages to
        reply to, react to, patch or edit, so the Open API finds none there."""
        message = self._by_id.get(message_id)
        return message if message is not None and message.sender_type != "system" else None

    def touch(self, message: StoredMessage) -> None:
        """Record that ``message`` changed and wake everyone waiting for changes."""
        self.seq += 1
        message.seq = self.seq
        self._changed.set()
        self._changed = asyncio.Event()

    def since(self, seq: int) -> list[StoredMessage]:
        return [message for message in self.timeline if message.seq > seq]

    async def wait(self, seq: int, patience: float) -> list[StoredMessage]:
        """Messages changed after ``seq``; waits up to ``patience`` s for the first change."""
        if self.seq <= seq and patience > 0:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(patience):
                    await changed.wait()
        return self.since(seq)

    def wake_all(self) -> None:
        """Release every waiter (on shutdown)."""
        self._changed.set()
