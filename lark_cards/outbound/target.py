"""Where a message goes, decided once: a reply under its question, or a new message.

A reply to a message uses the reply API so it sits under the question (docs/feishu-platform.md
§4.2) — but only when the reply lands in the question's own chat: a private answer to a group
question is a new message to the person. ``chat_key`` names the conversation for per-chat
order and the 5 QPS limit: a person's direct chat is keyed by the person, so text, cards and
files to that chat share one turn whichever identifier they were addressed by.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from errbot.backends.base import Message, Room

from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.interactive import REPLACE_CARD, ReplaceCard

# The key under which a reply carries what caused it (``cause_of`` its question), for replies
# that lose their parent on the way (a private answer to a group question).
CAUSED_BY = "caused_by"


def cause_of(msg: Message) -> str | None:
    """What a message the bot received is, for idempotent answers: the click's event (a
    click's message id is the card's, shared by every click on it) or the message's id."""
    extras: Mapping[str, Any] = msg.extras or {}
    if extras.get("card_message_id") and extras.get("event_id"):
        return f"click:{extras['event_id']}"
    message_id = extras.get("message_id")
    return f"message:{message_id}" if message_id else None


def reply_cause(msg: Message) -> str | None:
    """What ``msg`` (an outgoing message) answers, or None for a message nobody asked for."""
    caused_by = (msg.extras or {}).get(CAUSED_BY)
    if isinstance(caused_by, str) and caused_by:
        return caused_by
    return cause_of(msg.parent) if msg.parent is not None else None


@dataclass(frozen=True)
class Target:
    """Where a message goes: a reply to ``reply_to``, or a new message to ``receive_id``."""

    receive_id: str
    receive_id_type: str  # "chat_id" | "open_id"
    chat_key: str  # what per-chat ordering and rate limits are keyed on
    reply_to: str | None = None
    reply_in_thread: bool = False
    replace: ReplaceCard | None = None  # the clicked card this reply may take the place of
    # What the message's ``uuid``s are derived from: the question and the answer's index in
    # the command's output. Processing the same question again (after a crash, or on another
    # instance) then sends the same uuids, which Feishu turns into the first messages (§4.1).
    uuid_seed: str | None = None


def target_of(msg: Message) -> Target:
    """Where ``msg`` goes: under its parent message when that is in the same conversation."""
    receive_id, id_type = _receiver(msg.to)
    reply_to = _reply_target(msg)
    return Target(
        receive_id=receive_id,
        receive_id_type=id_type,
        chat_key=_chat_key(msg.to, receive_id),
        reply_to=reply_to,
        reply_in_thread=bool(msg.extras.get("reply_in_thread")),
        replace=_replace(msg, reply_to),
    )


def _replace(msg: Message, reply_to: str | None) -> ReplaceCard | None:
    parent = msg.parent
    replace = (parent.extras or {}).get(REPLACE_CARD) if parent is not None else None
    if isinstance(replace, ReplaceCard) and reply_to == replace.card_message_id:
        return replace
    return None


def _reply_target(msg: Message) -> str | None:
    """The message id to reply to, when the reply goes back into the question's chat."""
    parent = msg.parent
    if parent is None:
        return None
    extras: Mapping[str, Any] = parent.extras or {}
    message_id = extras.get("message_id")
    if not message_id:
        return None
    if isinstance(msg.to, Room):
        same_chat = str(msg.to) == extras.get("chat_id")
    else:  # a direct chat: only the person who asked is in it
        asker = getattr(parent.frm, "open_id", None)
        same_chat = (
            extras.get("chat_type") == "p2p"
            and isinstance(msg.to, LarkPerson)
            and not isinstance(msg.to, LarkRoomOccupant)
            and msg.to.open_id == asker
        )
    return str(message_id) if same_chat else None


def _chat_key(to: Any, receive_id: str) -> str:
    """A person's direct chat is keyed by the person, whether the identifier carries the
    ``oc_`` chat id (it came from a message there) or not (``build_identifier("ou_…")``, a
    private answer to a group question): one chat, one turn, one rate window."""
    if isinstance(to, LarkPerson) and not isinstance(to, LarkRoomOccupant):
        return f"p2p:{to.open_id}"
    return receive_id


def _receiver(identifier: Any) -> tuple[str, str]:
    if isinstance(identifier, LarkRoomOccupant):
        return identifier.room.chat_id, "chat_id"
    if isinstance(identifier, LarkRoom):
        return identifier.chat_id, "chat_id"
    if isinstance(identifier, LarkPerson):
        return identifier.open_id, "open_id"
    raise ValueError(f"cannot send to {identifier!r}: not a Feishu identifier")
