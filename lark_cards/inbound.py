"""Feishu message events → Errbot messages (pure: no I/O, no loop).

p2p: ``frm`` is the sender as a LarkPerson, ``to`` the bot. Group: ``frm`` is a
LarkRoomOccupant, ``to`` the LarkRoom — Errbot's ACLs require exactly this
(errbot-backends.md §1.4). The bot's own @mention is removed so ``@bot !help`` is a command.
"""

from __future__ import annotations

from typing import Any

from errbot.backends.base import Message
from errbot.core import ErrBot

from lark_cards.events import MessageReceived, resolve_mentions
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.members import MemberChange
from lark_cards.rooms import LarkRoomOperations


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


def member_callbacks(bot: ErrBot, change: MemberChange, room_ops: LarkRoomOperations) -> None:
    """Errbot's room callbacks for a Feishu membership event (bot or users added/removed)."""
    room = LarkRoom(change.chat_id, name=change.chat_name)
    operator = LarkPerson(change.operator_open_id) if change.operator_open_id else None
    if change.about_bot:
        room_ops.note_joined(change.chat_id, change.joined)
        if change.joined:
            bot.callback_room_joined(room, invited_by=operator)
        else:
            bot.callback_room_left(room, kicked_by=operator)
        return
    room_ops.forget(change.chat_id)
    for open_id, name in change.users:
        who = LarkRoomOccupant(open_id, room, name=name)
        if change.joined:
            bot.callback_room_joined(room, who, invited_by=operator)
        else:
            kicker = operator if operator is not None and operator.open_id != open_id else None
            bot.callback_room_left(room, who, kicked_by=kicker)
