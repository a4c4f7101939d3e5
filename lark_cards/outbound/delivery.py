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
  goes again in smaller cards, then as plain text, so the answer always arrives. A card made
  with a user's template goes again in the shipped template first (``outbound.defaults``).

Pacing, retries, the token and the ``uuid`` each send reuses across its retries belong to
``LarkClient``, the single request path below this.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from lark_cards.api.client import LarkClient
from lark_cards.api.errors import CARD_REJECTED, LarkAPIError
from lark_cards.api.images import ImageUploader
from lark_cards.api.ratelimit import KeyedLock
from lark_cards.outbound.defaults import TEMPLATE_REFUSED, in_default_template, user_template
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
        # (path, item, the options it was made with): paths name each message for its uuid
        queue = [(str(index), item, self.options) for index, item in enumerate(items, len(sent))]
        position = 0
        while position < len(queue):
            path, item, options = queue[position]
            try:
                sent.append(await self._send(target, item, uuid_for(target, path)))
            except LarkAPIError as error:
                rest = [later for _, later, _ in queue[position:]]
                redone = await self._in_default_template(rest, error, options)
                if redone is None:
                    sent += await self._fall_back(target, item, error, path=path, options=options)
                else:  # the refused card and its like, remade: sent from here on instead
                    count, cards, defaults = redone
                    remade = [(f"{path}d{n}", card, defaults) for n, card in enumerate(cards)]
                    queue[position : position + count] = remade
                    continue
            position += 1
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

    async def update_card(self, message_id: str, item: Outgoing) -> None:
        """PATCH ``item`` into card ``message_id`` (the caller holds the turn). If Feishu
        refuses a card made with the user's template, the card is made again with the shipped
        template and PATCHed once more. Only its first card is used: a PATCH replaces one card."""
        try:
            await self.client.update_message(message_id, item.content)
        except LarkAPIError as error:
            redone = await self._in_default_template([item], error, self.options)
            if redone is None:
                raise
            await self.client.update_message(message_id, redone[1][0].content)

    async def _in_default_template(
        self, items: list[Outgoing], error: LarkAPIError, options: RenderOptions
    ) -> tuple[int, list[Outgoing], RenderOptions] | None:
        """The one decision for a refused ``items[0]``, made with ``options``. If Feishu
        refused its content and a user's template made it, return it (and the cards after
        it made the same way) remade with the shipped templates, plus the options they were
        made with. Otherwise return None and the caller's own fallback applies. Remade cards
        have ``templates_dir=None``, so they are never remade twice."""
        if error.code not in TEMPLATE_REFUSED or options.templates_dir is None:
            return None
        path = await asyncio.to_thread(user_template, items[0], options)
        if path is None:
            return None
        count, cards = await asyncio.to_thread(in_default_template, items, options)
        said = f"{error.code} {error.msg}" + (f", log_id {error.log_id}" if error.log_id else "")
        log.warning(
            "Feishu refused a card made with your template %s (%s); sending it with the "
            "shipped %s instead",
            path,
            said,
            path.name,
        )
        return count, cards, dataclasses.replace(options, templates_dir=None)

    async def _send_with_fallback(
        self, target: Target, item: Outgoing, *, path: str, options: RenderOptions
    ) -> list[Sent]:
        """Send ``item``; ``path`` names it among the answer's messages ("2", its fallbacks
        "2.0", "2.1", …) so each gets its own stable uuid."""
        try:
            return [await self._send(target, item, uuid_for(target, path))]
        except LarkAPIError as error:
            return await self._fall_back(target, item, error, path=path, options=options)

    async def _fall_back(
        self,
        target: Target,
        item: Outgoing,
        error: LarkAPIError,
        *,
        path: str,
        options: RenderOptions,
    ) -> list[Sent]:
        """After Feishu refused ``item``'s card for its content: the same content in smaller
        cards (made with ``options``, the templates it was made with), then as text. Any other
        error, or one about a message that is not a card, is raised again."""
        if item.msg_type != "interactive" or error.code not in CARD_REJECTED:
            raise error
        if "." not in path and item.pieces:
            log.warning("Feishu rejected a card (%s); sending it as smaller cards", error)
            retries = await asyncio.to_thread(shrink, item, options)
        else:
            log.warning("Feishu rejected a card (%s); sending its text instead", error)
            retries = await asyncio.to_thread(as_text, item)
        sent: list[Sent] = []
        for number, retry in enumerate(retries):
            sent += await self._send_with_fallback(
                target, retry, path=f"{path}.{number}", options=options
            )
        return sent

    async def _send(self, target: Target, item: Outgoing, uuid: str | None) -> Sent:
        """The one reply-or-send decision: under the question when there is one."""
        client, chat = self.client, target.chat_key
        msg_type, content = item.msg_type, item.content
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
