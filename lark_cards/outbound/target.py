"""Delivery of rendered replies: where each message goes and what happens when Feishu says no.

Runs on the backend's loop. A reply to a message uses the reply API so it sits under the
question (§4.2); anything else is sent to the chat or person. When Feishu rejects a card's
content (``CARD_REJECTED`` codes), the same content is sent again in smaller cards, then as
plain text — the user always gets the answer, and the log says what happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from errbot.backends.base import Message, Room

from lark_cards.api import CARD_REJECTED, KeyedLock, LarkAPIError, LarkClient
from lark_cards.api.images import ImageUploader
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.render import Outgoing, RenderOptions, as_text, image_urls, shrink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a message goes: a reply to ``reply_to``, or a new message to ``receive_id``."""

    receive_id: str
    receive_id_type: str  # "chat_id" | "open_id"
    chat_key: str  # what per-chat ordering and rate limits are keyed on
    reply_to: str | None = None
    reply_in_thread: bool = False


def target_of(msg: Message) -> Target:
    """Where ``msg`` goes: under its parent message when that is in the same conversation."""
    receive_id, id_type = _receiver(msg.to)
    chat_key = msg.to.client if isinstance(msg.to, LarkPerson) and msg.to.client else receive_id
    return Target(
        receive_id=receive_id,
        receive_id_type=id_type,
        chat_key=chat_key,
        reply_to=_reply_target(msg),
        reply_in_thread=bool(msg.extras.get("reply_in_thread")),
    )


def card_to_replace(msg: Message, target: Target) -> str | None:
    """The card a reply should replace: set when the clicked button's value had
    ``"replace": true`` (the click's message carries it in its extras)."""
    parent = msg.parent
    extras: Mapping[str, Any] = (parent.extras or {}) if parent is not None else {}
    card_id = extras.get("card_message_id")
    if extras.get("replace") and card_id and target.reply_to == card_id:
        return str(card_id)
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
    return message_id if same_chat else None


def _receiver(identifier: Any) -> tuple[str, str]:
    if isinstance(identifier, LarkRoomOccupant):
        return identifier.room.chat_id, "chat_id"
    if isinstance(identifier, LarkRoom):
        return identifier.chat_id, "chat_id"
    if isinstance(identifier, LarkPerson):
        return identifier.open_id, "open_id"
    raise ValueError(f"cannot send to {identifier!r}: not a Feishu identifier")


class Sender:
    """Renders nothing itself: takes ``Outgoing`` messages and gets them to Feishu."""

    def __init__(
        self, client: LarkClient, options: RenderOptions, *, upload_images: bool = True
    ) -> None:
        self.client = client
        self.options = options
        self.images = ImageUploader(client) if upload_images else None
        self._order = KeyedLock()

    def in_order(self, target: Target) -> AbstractAsyncContextManager[None]:
        """Hold the target chat's turn: enter it before any other await so replies leave in
        the order Errbot sent them, even when one takes longer to render than the next."""
        return self._order.hold(target.chat_key)

    async def image_keys(self, *markdown: str) -> Mapping[str, str]:
        """Upload the images of ``markdown`` texts; URLs that fail stay links."""
        if self.images is None:
            return {}
        urls = await asyncio.to_thread(lambda: [u for text in markdown for u in image_urls(text)])
        return await self.images.keys(urls) if urls else {}

    async def send_all(self, target: Target, items: list[Outgoing]) -> list[dict[str, Any]]:
        """Send ``items`` in order; return Feishu's ``data`` for every message sent."""
        sent: list[dict[str, Any]] = []
        for item in items:
            sent += await self._send_with_fallback(target, item, attempt=0)
        return sent

    async def _send_with_fallback(
        self, target: Target, item: Outgoing, *, attempt: int
    ) -> list[dict[str, Any]]:
        try:
            return [await self.send(target, item.msg_type, item.content)]
        except LarkAPIError as error:
            if item.msg_type != "interactive" or error.code not in CARD_REJECTED:
                raise
            if attempt == 0 and item.pieces:
                log.warning("Feishu rejected a card (%s); sending it as smaller cards", error)
                retries = shrink(item, self.options)
            else:
                log.warning("Feishu rejected a card (%s); sending its text instead", error)
                retries = as_text(item)
            sent: list[dict[str, Any]] = []
            for retry in retries:
                sent += await self._send_with_fallback(target, retry, attempt=attempt + 1)
            return sent

    async def send(self, target: Target, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        if target.reply_to is not None:
            return await self.client.reply_message(
                target.reply_to,
                msg_type,
                content,
                chat_id=target.chat_key,
                reply_in_thread=target.reply_in_thread,
            )
        return await self.client.send_message(
            target.receive_id,
            msg_type,
            content,
            receive_id_type=target.receive_id_type,
            chat_key=target.chat_key,
        )

    async def close(self) -> None:
        if self.images is not None:
            await self.images.close()
