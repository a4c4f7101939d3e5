"""Errbot's sends → Feishu messages: the thread-side door to the one delivery path.

:class:`Outbox` is what the backend and the plugin API call from Errbot's worker threads, one
method per kind of message. Each decides the :class:`~lark_cards.outbound.target.Target` on
the caller's thread (a bad identifier fails there, in the plugin's own call), describes how
to compose the message, and hands both to the loop at once — which is what gives the message
its place in its chat's order (``outbound.delivery``). Nothing here talks to Feishu.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar

from errbot.backends.base import Card, Identifier, Message, Stream

from lark_cards.bridge import LoopBridge
from lark_cards.interactive import with_buttons
from lark_cards.outbound.cards import (
    PROGRESS_RATE,
    AsyncCard,
    AsyncProgress,
    CardExpiredError,
    CardRef,
    Progress,
    render_cards,
)
from lark_cards.outbound.delivery import Compose, Delivery, Sent
from lark_cards.outbound.files import UPLOAD_TIMEOUT, StreamReader, settle
from lark_cards.outbound.target import Target, target_of
from lark_cards.render import Outgoing, parse, render_card, render_reply, render_template

__all__ = ["CardExpiredError", "CardRef", "Delivery", "Outbox", "Progress", "Target", "target_of"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outbox:
    """Every kind of outgoing message, from any thread; ``delivery`` returns the connected
    :class:`Delivery` (raising when not connected) and is only called on the loop."""

    def __init__(
        self,
        bridge: LoopBridge,
        delivery: Callable[[], Delivery],
        *,
        progress_rate: float = PROGRESS_RATE,
        upload_timeout: float = UPLOAD_TIMEOUT,
    ) -> None:
        self._bridge = bridge
        self._delivery = delivery
        self._progress_rate = progress_rate
        self._upload_timeout = upload_timeout
        self._streams = StreamReader()

    # -- fire and forget -------------------------------------------------------------------

    def send_reply(self, msg: Message) -> None:
        """An Errbot reply or ``send``: its markdown rendered as cards (or text in ``auto``)."""
        body, mention = msg.body, msg.extras.get("mention")

        async def compose(delivery: Delivery) -> list[Outgoing]:
            tree = await asyncio.to_thread(parse, body)  # once, for the images and the cards
            images = await delivery.image_keys(tree)
            return await asyncio.to_thread(
                lambda: render_reply(
                    body, images=images, options=delivery.options, mention=mention, tree=tree
                )
            )

        self._send(msg, compose)

    def send_card(self, card: Card) -> None:
        """Errbot's ``send_card`` as a native card (header, fields, image, body)."""
        body = card.body or ""
        urls = [url for url in (card.image, card.thumbnail) if url]

        async def compose(delivery: Delivery) -> list[Outgoing]:
            images = {**await delivery.image_keys(body), **await delivery.url_keys(urls)}
            return await asyncio.to_thread(
                lambda: render_card(
                    body=body,
                    title=card.title or "",
                    summary_text=card.summary or "",
                    link=card.link,
                    image=card.image,
                    thumbnail=card.thumbnail,
                    color=card.color,
                    fields=tuple(card.fields or ()),
                    images=images,
                    options=delivery.options,
                )
            )

        self._send(card, compose)

    def send_template(self, msg: Message, template: str, context: Mapping[str, Any]) -> None:
        """One card from a named template with the plugin's own context (no splitting)."""
        values = dict(context)

        async def compose(delivery: Delivery) -> list[Outgoing]:
            card = render_template(template, values, delivery.options)
            return [Outgoing("interactive", card)]

        self._send(msg, compose)

    # -- sends that hand something back ----------------------------------------------------

    def send_updatable(
        self, to: Identifier, content: str | Mapping[str, Any], in_reply_to: Message | None
    ) -> CardRef:
        """Markdown as cards (the ref updates the last), or one card JSON as it is."""

        async def compose(delivery: Delivery) -> list[Outgoing]:
            if isinstance(content, str):
                return await render_cards(content, delivery.options)
            return [Outgoing("interactive", dict(content))]

        return self._send_card_ref(Message(to=to, parent=in_reply_to), compose)

    def send_buttons(
        self,
        to: Identifier,
        text: str,
        buttons: Sequence[Mapping[str, Any]],
        in_reply_to: Message | None,
    ) -> CardRef:
        """``text`` as cards with ``buttons`` in a row at the end of the last one."""

        async def compose(delivery: Delivery) -> list[Outgoing]:
            *items, last = await render_cards(text, delivery.options)
            content = with_buttons(last.content, buttons)
            return [*items, dataclasses.replace(last, content=content)]

        return self._send_card_ref(Message(to=to, parent=in_reply_to), compose)

    def progress(self, reply: Message, text: str) -> Progress:
        """A progress card where ``reply`` (a ``build_reply`` message) would go."""
        card = AsyncProgress(target_of(reply), text, rate=self._progress_rate)
        return Progress(self.run, card, text)

    def send_stream(
        self,
        to: Identifier,
        fsource: BinaryIO,
        name: str | None = None,
        size: int | None = None,
        stream_type: str | None = None,
        *,
        in_reply_to: Message | None = None,
    ) -> Stream:
        """Errbot's ``send_stream_request``: the ``Stream`` at once, the file in order."""
        target = target_of(Message(to=to, parent=in_reply_to))  # a bad identifier: now
        stream, compose, read = self._streams.open(to, fsource, name, size, stream_type)
        try:
            sent = self._bridge.submit(
                self._deliver(target, compose, time_limit=self._upload_timeout)
            )
        except RuntimeError as error:
            read.cancel()  # not connected: no need to read the file
            stream.error(str(error))
            return stream
        sent.add_done_callback(lambda done: settle(stream, done))
        return stream

    def run(
        self, work: Callable[[Delivery], Coroutine[Any, Any, T]]
    ) -> concurrent.futures.Future[T]:
        """Run ``work(delivery)`` on the loop; a future of its result, returned at once."""

        async def with_delivery() -> T:
            return await work(self._delivery())

        return self._bridge.submit(with_delivery())

    def close(self) -> None:
        self._streams.close()

    # -- helpers ---------------------------------------------------------------------------

    def _send(self, msg: Message | Card, compose: Compose) -> None:
        try:
            target = target_of(msg)
        except ValueError as error:
            log.error("Cannot send to %s: %s", msg.to, error)
            return
        self._bridge.submit_send(self._deliver(target, compose), msg.to)

    def _send_card_ref(self, msg: Message, compose: Compose) -> CardRef:
        target = target_of(msg)

        async def send(delivery: Delivery) -> AsyncCard:
            sent = await delivery.deliver(target, compose)
            return AsyncCard.of(sent[-1], target.chat_key)

        return CardRef(self.run, target.chat_key, self.run(send))

    async def _deliver(
        self, target: Target, compose: Compose, *, time_limit: float | None = None
    ) -> list[Sent]:
        return await self._delivery().deliver(target, compose, time_limit=time_limit)
