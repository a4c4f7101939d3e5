"""Feishu message events → Errbot messages (pure: no I/O, no loop).

p2p: ``frm`` is the sender as a LarkPerson, ``to`` the bot. Group: ``frm`` is a
LarkRoomOccupant, ``to`` the LarkRoom — Errbot's ACLs require exactly this
(errbot-backends.md §1.4). The bot's own @mention is removed so ``@bot !help`` is a command.
"""

from __future__ import annotations

from typing import Any

from errbot.backends.base import Message

from lark_cards.events import MessageReceived, resolve_mentions
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant


def to_message(event: MessageReceived, bot: LarkPerson) -> tuple[Message, list[LarkPerson]]:
    """The Errbot message for ``event`` and everyone it mentions (the bot included)."""
    text, _ = resolve_mentions(event.text, event.mentions, bot.open_id)
    msg = Message(body=text, extras=extras(event))
    if event.is_direct:
        msg.frm = LarkPerson(event.sender_open_id, chat_id=event.chat_id)
        msg.to = bot
    else:
        room = LarkRoom(event.chat_id)
        msg.frm = LarkRoomOccupant(event.sender_open_id, room)
        msg.to = room
    people = [LarkPerson(m.open_id, name=m.name) for m in event.mentions if m.open_id]
    return msg, people


def extras(event: MessageReceived) -> dict[str, Any]:
    """Feishu ids a plugin (or the reply path) may need, in ``msg.extras``."""
    return {
        "message_id": event.message_id,
        "chat_id": event.chat_id,
        "chat_type": event.chat_type,
        "event_id": event.event_id,
        "message_type": event.message_type,
        "root_id": event.root_id,
        "thread_id": event.thread_id,
    }
