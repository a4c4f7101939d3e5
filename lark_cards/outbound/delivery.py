"""The one way a message leaves the bot (loop side): turn, compose, send, fall back.

Every kind of outgoing message — replies, ``send_card``, templates, button cards, updatable
and progress cards, files and images — goes through :meth:`Delivery.deliver`; card updates
(``outbound.cards``) PATCH inside the same :meth:`Delivery.turn`. Decided once, here:

- **order**: the chat's turn is taken before anything else is awaited, so messages to one
  chat leave in the order Errbot's threads handed them over, whatever kind they are and
  however long one takes to upload or render (an ``asyncio.Lock`` grants waiters in arrival
  order, and a task submitted earlier reaches its first ``await`` earlier). The turn is held
  through uploads, rendering, retries and fallbacks;
- **target**: reply under the question, in its thread, or a new message (``Target``);
- **the clicked card**: a command's first card answer may replace the card whose button ran
  it (``Target.replace``); on any failure it goes under the card instead;
- **fallback**: when Feishu refuses a card's content (``CARD_REJECTED``), the same content
  goes again in smaller cards, then as plain text, so the answer always arrives.

Pacing, retries, the token and the ``uuid`` each send reuses across its retries belong to
``LarkClient``, the single request path below this.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from lark_cards.api.client import LarkClient
from lark_cards.api.errors import CARD_REJECTED, LarkAPIError
from lark_cards.api.images import ImageUploader
from lark_cards.api.ratelimit import KeyedLock
from lark_cards.outbound.target import Target
from lark_cards.render import Outgoing, RenderOptions, as_text, image_urls, shrink
from lark_cards.render.tree import Node

log = logging.getLogger(__name__)

# What a message is made of, computed inside its chat's turn (uploads, rendering).
Compose = Callable[["Delivery"], Awaitable[list[Outgoing]]]
Sent = dict[str, Any]  # Feishu's ``data`` for a created message (``message_id``, …)
COMPOSE_TIME = 60.0  # uploads and rendering of one answer, beyond its sends' own deadline


class Delivery:
    """Gets composed messages to Feishu, one chat turn at a time. One per connection."""

    def __init__(
        self,
        client: LarkClient,
        options: RenderOptions,
        *,
        upload_images: bool = True,
        uploader: ImageUploader | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.uploader = uploader or ImageUploader(client)
        self._fetch_images = upload_images
        self._turns = KeyedLock()

    @asynccontextmanager
    async def turn(self, chat_key: str) -> AsyncIterator[None]:
        """Hold ``chat_key``'s turn. Enter it before any other await (see the module doc)."""
        async with self._turns.hold(chat_key):
            yield

    async def deliver(
        self, target: Target, compose: Compose, *, time_limit: float | None = None
    ) -> list[Sent]:
        """In the target chat's turn: compose the messages, then send them in order.

        ``time_limit`` bounds the whole of it once the turn is held (files: a plugin is told
        "failed" and the file must not arrive later); ``TimeoutError`` then. By default the
        client's send deadline and a minute for composing: no chat waits forever.
        """
        if time_limit is None:
            time_limit = self.client.send_deadline + COMPOSE_TIME
        async with self.turn(target.chat_key):
            async with asyncio.timeout(time_limit):
                return await self.send_items(target, await compose(self))

    async def send_items(self, target: Target, items: list[Outgoing]) -> list[Sent]:
        """Send ``items`` in order (the caller holds the turn); Feishu's data for each."""
        sent: list[Sent] = []
        replace = target.replace
        is_card = bool(items) and items[0].msg_type == "interactive"
        # Claimed even when the PATCH fails: later answers go under the card, not over it.
        if replace is not None and is_card and replace.claim():  # noqa: SIM102 - claim first
            if await self._replaced(replace.card_message_id, items[0]):
                sent.append({"message_id": replace.card_message_id})
                items = items[1:]
        for index, item in enumerate(items, start=len(sent)):
            sent += await self._send_with_fallback(target, item, path=str(index))
        return sent

    async def image_keys(self, markdown: str | Node) -> Mapping[str, str]:
        """Upload the images of a markdown text (or its parsed tree); URLs that fail stay
        links. A text without image syntax is not even parsed."""
        if not self._fetch_images or (isinstance(markdown, str) and "![" not in markdown):
            return {}
        urls = await asyncio.to_thread(image_urls, markdown)
        return await self.uploader.keys(urls) if urls else {}

    async def url_keys(self, urls: list[str]) -> Mapping[str, str]:
        """Upload images given by URL (a card's image and thumbnail)."""
        return await self.uploader.keys(urls) if self._fetch_images and urls else {}

    async def close(self) -> None:
        await self.uploader.close()

    async def _replaced(self, card_id: str, item: Outgoing) -> bool:
        try:
            await self.client.update_message(card_id, item.content)
        except LarkAPIError as error:
            log.warning("Cannot replace card %s (%s); replying under it", card_id, error)
            return False
        return True

    async def _send_with_fallback(self, target: Target, item: Outgoing, *, path: str) -> list[Sent]:
        """Send ``item``; ``path`` names it among the answer's messages ("2", its fallbacks
        "2.0", "2.1", …) so each gets its own stable uuid."""
        try:
            return [await self._send(target, item.msg_type, item.content, uuid_for(target, path))]
        except LarkAPIError as error:
            if item.msg_type != "interactive" or error.code not in CARD_REJECTED:
                raise
            if "." not in path and item.pieces:
                log.warning("Feishu rejected a card (%s); sending it as smaller cards", error)
                retries = await asyncio.to_thread(shrink, item, self.options)
            else:
                log.warning("Feishu rejected a card (%s); sending its text instead", error)
                retries = await asyncio.to_thread(as_text, item)
            sent: list[Sent] = []
            for number, retry in enumerate(retries):
                sent += await self._send_with_fallback(target, retry, path=f"{path}.{number}")
            return sent

    async def _send(
        self, target: Target, msg_type: str, content: dict[str, Any], uuid: str | None
    ) -> Sent:
        """The one reply-or-send decision: under the question when there is one."""
        client, chat = self.client, target.chat_key
        if target.reply_to is not None:
            thread = target.reply_in_thread
            return await client.reply_message(
                target.reply_to, msg_type, content, chat_id=chat, reply_in_thread=thread, uuid=uuid
            )
        kind = target.receive_id_type
        return await client.send_message(
            target.receive_id, msg_type, content, receive_id_type=kind, chat_key=chat, uuid=uuid
        )


def uuid_for(target: Target, path: str) -> str | None:
    """The send's ``uuid``: derived from the target's seed, or None (a fresh one per send)
    for a message nobody asked for. 32 hex characters, within Feishu's 50 (§4.1)."""
    if target.uuid_seed is None:
        return None
    return hashlib.sha256(f"{target.uuid_seed}/{path}".encode()).hexdigest()[:32]
