"""Inbound records → what Errbot is handed: Messages, mentions, room and reaction callbacks.

Pure apart from the callbacks it is given. p2p: ``frm`` is the sender as a LarkPerson, ``to``
the bot. Group: ``frm`` is a LarkRoomOccupant, ``to`` the LarkRoom — Errbot's ACLs take
``msg.is_group`` from ``to`` being a Room and then read the room from ``frm.room``, so a group
message shaped any other way is either refused or judged as a private one. The bot's own
@mention is removed so ``@bot !help`` is a command. Every identifier comes from the backend's
``Identities`` (so names and room operations reach that backend), except the bot, which is the
backend's ``bot_identifier``.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from errbot.backends.base import REACTION_ADDED, REACTION_REMOVED, Identifier, Message, Reaction

from lark_cards.identifiers import Identities, LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.inbound.events import Mention, MessageReceived
from lark_cards.inbound.room_events import MemberChange, ReactionChange


class RoomCallbacks(Protocol):
    """Errbot's room callbacks (``ErrBot.callback_room_joined`` / ``callback_room_left``)."""

    def callback_room_joined(
        self,
        room: LarkRoom,
        identifier: Identifier | None = None,
        invited_by: Identifier | None = None,
    ) -> None: ...

    def callback_room_left(
        self,
        room: LarkRoom,
        identifier: Identifier | None = None,
        kicked_by: Identifier | None = None,
    ) -> None: ...


class Membership(Protocol):
    """The membership cache that member events keep fresh (``rooms.LarkRoomOperations``)."""

    def note_joined(self, chat_id: str, joined: bool) -> None: ...

    def forget(self, chat_id: str) -> None: ...


def addressed(
    identities: Identities, bot: LarkPerson, open_id: str, chat_id: str | None, *, direct: bool
) -> tuple[LarkPerson, LarkPerson | LarkRoom]:
    """``(frm, to)`` of a message from ``open_id``: to the bot when direct, else to the room."""
    if direct or chat_id is None:
        return identities.person(open_id, chat_id=chat_id), bot
    room = identities.room(chat_id)
    return LarkRoomOccupant(open_id, room), room


def to_message(
    event: MessageReceived, bot: LarkPerson, identities: Identities
) -> tuple[Message, list[LarkPerson]]:
    """The Errbot message for ``event`` and everyone it mentions (the bot included)."""
    text, _ = resolve_mentions(event.text, event.mentions, bot.open_id)
    msg = Message(body=text, extras=extras(event))
    msg.frm, msg.to = addressed(
        identities, bot, event.sender_open_id, event.chat_id, direct=event.is_direct
    )
    people = [
        bot if m.open_id == bot.open_id else identities.person(m.open_id, name=m.name)
        for m in event.mentions
        if m.open_id
    ]
    return msg, people


def extras(event: MessageReceived) -> dict[str, Any]:
    """Feishu ids a plugin (or the reply path) may need, in ``msg.extras``, plus the keys of
    the message's images and files (for ``download_file``)."""
    return {
        "message_id": event.message_id,
        "chat_id": event.chat_id,
        "chat_type": event.chat_type,
        "event_id": event.event_id,
        "message_type": event.message_type,
        "root_id": event.root_id,
        "thread_id": event.thread_id,
        **file_extras(event),
    }


def file_extras(event: MessageReceived) -> dict[str, Any]:
    """``attachments``: ``[{"key", "type" ("image" | "file", the download type), "name"}]``;
    for a post also ``image_keys``, for an image or file message the flat ``image_key``,
    ``file_key``, ``file_name`` and ``duration``. ``{}`` when the message carries none."""
    if not event.attachments:
        return {}
    listed = [{"key": a.key, "type": a.kind, "name": a.name} for a in event.attachments]
    if event.message_type == "post":
        return {"image_keys": [a.key for a in event.attachments], "attachments": listed}
    flat: dict[str, Any] = {}
    for attachment in event.attachments:
        if attachment.kind == "image":
            flat["image_key"] = attachment.key
            continue
        flat["file_key"] = attachment.key
        if attachment.name is not None:
            flat["file_name"] = attachment.name
        if attachment.duration is not None:
            flat["duration"] = attachment.duration
    return {**flat, "attachments": listed}


_PLACEHOLDER = re.compile(r"@_user_\d+|@_all")


def resolve_mentions(
    text: str, mentions: tuple[Mention, ...], bot_open_id: str | None
) -> tuple[str, list[Mention]]:
    """Replace ``@_user_N`` placeholders for Errbot.

    The bot's own mention is removed (so ``@bot !help`` reads as ``!help`` in a group), every
    other mention reads as ``@Name``. Returns the new text and the mentions other than the bot.
    """
    bot_keys = [m.key for m in mentions if bot_open_id is not None and m.open_id == bot_open_id]
    if bot_keys:
        own = "|".join(re.escape(key) for key in bot_keys)
        text = re.sub(rf"(?:{own})(?!\d)[ \t]*", "", text)
    by_key = {mention.key: mention for mention in mentions}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "@_all":
            return "@all"
        mention = by_key.get(match.group(0))
        if mention is None:
            return match.group(0)
        return f"@{mention.name or mention.open_id or 'someone'}"

    others = [m for m in mentions if m.key not in bot_keys]
    return _PLACEHOLDER.sub(replace, text).strip(), others


def member_callbacks(
    bot: RoomCallbacks, change: MemberChange, identities: Identities, membership: Membership
) -> None:
    """Errbot's room callbacks for a Feishu membership event (bot or users added/removed)."""
    room = identities.room(change.chat_id, name=change.chat_name)
    operator = identities.person(change.operator_open_id) if change.operator_open_id else None
    if change.about_bot:
        membership.note_joined(change.chat_id, change.joined)
        if change.joined:
            bot.callback_room_joined(room, invited_by=operator)
        else:
            bot.callback_room_left(room, kicked_by=operator)
        return
    membership.forget(change.chat_id)
    for open_id, name in change.users:
        who = LarkRoomOccupant(open_id, room, name=name)  # shares the named room
        if change.joined:
            bot.callback_room_joined(room, who, invited_by=operator)
        else:
            kicker = operator if operator is not None and operator.open_id != open_id else None
            bot.callback_room_left(room, who, kicked_by=kicker)


def to_reaction(
    change: ReactionChange, bot: LarkPerson, identities: Identities, *, app_id: str | None
) -> Reaction | None:
    """The Errbot ``Reaction`` for a reaction event, or None for another app's reaction.

    ``reactor`` is a person (the event has no chat id, so no occupant); the bot's own
    reactions (an app reaction with our ``app_id``) get the bot as reactor so plugins can
    ignore them. ``reacted_to`` = ``{"message_id", "chat_id" (when present),
    "operator_type"}``; ``reacted_to_owner`` is None (Feishu does not say).
    """
    if change.user_open_id is not None:
        reactor = identities.person(change.user_open_id)
    elif app_id is not None and change.app_id == app_id:
        reactor = bot
    else:
        return None
    reacted_to: dict[str, Any] = {
        "message_id": change.message_id,
        "operator_type": change.operator_type,
    }
    if change.chat_id is not None:
        reacted_to["chat_id"] = change.chat_id
    return Reaction(
        reactor=reactor,
        reacted_to_owner=None,
        action=REACTION_ADDED if change.added else REACTION_REMOVED,
        timestamp=change.action_time,
        reaction_name=change.emoji_type,
        reacted_to=reacted_to,
    )
