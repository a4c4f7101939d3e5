"""Where a message goes, decided once: a reply under its question, or a new message.

A reply to a message uses the reply API so it sits under the question (docs/feishu-platform.md
§4.2) — but only when the reply lands in the question's own chat: a private answer to a group
question is a new message to the person. ``chat_key`` names the conversation for per-chat
order and the 5 QPS limit: a person's direct chat is keyed by its ``oc_`` chat id when known,
so text, cards and files to that chat share one turn whichever id they were addressed by.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from errbot.backends.base import Message, Room

from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant


class ReplaceCard:
    """A clicked card that the command's first answer may replace, once.

    Set on the click's message by the inbound side (only when the button asked for it and
    Errbot's filters would let the clicker run the command: a refusal must never wipe a card
    others still need); claimed by the delivery of the first card answer. Later answers to
    the same click go under the card. Thread-safe: answers may be sent from several threads.
    """

    def __init__(self, card_message_id: str) -> None:
        self.card_message_id = card_message_id
        self._claimed = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """True for the first caller only."""
        with self._lock:
            claimed, self._claimed = self._claimed, True
            return not claimed

    def __repr__(self) -> str:
        return f"ReplaceCard({self.card_message_id!r}, claimed={self._claimed})"


# The key under which a click's message carries its ReplaceCard (msg.extras).
REPLACE_CARD = "replace_card"


@dataclass(frozen=True)
class Target:
    """Where a message goes: a reply to ``reply_to``, or a new message to ``receive_id``."""

    receive_id: str
    receive_id_type: str  # "chat_id" | "open_id"
    chat_key: str  # what per-chat ordering and rate limits are keyed on
    reply_to: str | None = None
    reply_in_thread: bool = False
    replace: ReplaceCard | None = None  # the clicked card this reply may take the place of


def target_of(msg: Message) -> Target:
    """Where ``msg`` goes: under its parent message when that is in the same conversation."""
    receive_id, id_type = _receiver(msg.to)
    chat_key = msg.to.client if isinstance(msg.to, LarkPerson) and msg.to.client else receive_id
    reply_to = _reply_target(msg)
    return Target(
        receive_id=receive_id,
        receive_id_type=id_type,
        chat_key=chat_key,
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


def _receiver(identifier: Any) -> tuple[str, str]:
    if isinstance(identifier, LarkRoomOccupant):
        return identifier.room.chat_id, "chat_id"
    if isinstance(identifier, LarkRoom):
        return identifier.chat_id, "chat_id"
    if isinstance(identifier, LarkPerson):
        return identifier.open_id, "open_id"
    raise ValueError(f"cannot send to {identifier!r}: not a Feishu identifier")
