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
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar

from errbot.backends.base import Card, Identifier, Message, Stream

from lark_cards.bridge import LoopBridge, report_failure
from lark_cards.interactive import buttons_row, with_buttons
from lark_cards.outbound.cards import (
    PROGRESS_RATE,
    AsyncCard,
    AsyncProgress,
    CardExpiredError,
    CardRef,
    OnTicket,
    Progress,
    Work,
    render_cards,
)
from lark_cards.outbound.delivery import Compose, Delivery
from lark_cards.outbound.files import UPLOAD_TIMEOUT, StreamReader, settle
from lark_cards.outbound.target import Target, reply_cause, target_of
from lark_cards.render import (
    Outgoing,
    parse_reply,
    render_card,
    render_reply,
    render_template,
    valid_text,
)
from lark_cards.render.pieces import ComponentPiece

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
        self._answers = KeyedCounter()  # per question: the answers so far (uuid seeds)
        self._tickets = KeyedCounter()  # per chat: the place of each send in its order
        self._order = threading.Lock()

    # -- fire and forget -------------------------------------------------------------------

    def send_reply(self, msg: Message) -> None:
        """An Errbot reply or ``send``: its markdown rendered as cards (or text in ``auto``)."""
        body, mention = valid_text(msg.body), msg.extras.get("mention")

        async def compose(delivery: Delivery) -> list[Outgoing]:
            # once, for the images and the cards (a long reply: a section at a time, twice)
            tree = await asyncio.to_thread(parse_reply, body)
            images = await delivery.image_keys(body if tree is None else tree)
            return await asyncio.to_thread(
                lambda: render_reply(
                    body, images=images, options=delivery.options, mention=mention, tree=tree
                )
            )

        self._send(msg, compose, may_replace=True)

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
            card = await asyncio.to_thread(render_template, template, values, delivery.options)
            # its name and context: a refused user template is remade in the shipped one
            return [Outgoing("interactive", card, (), template, values)]

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
            # the row is a piece too, so a card made again (smaller, or in the shipped
            # template after a refusal) still ends with the buttons
            row = ComponentPiece(buttons_row(*buttons))
            last = dataclasses.replace(last, content=content, pieces=(*last.pieces, row))
            return [*items, last]

        return self._send_card_ref(Message(to=to, parent=in_reply_to), compose)

    def progress(self, reply: Message, text: str) -> Progress:
        """A progress card where ``reply`` (a ``build_reply`` message) would go."""
        card = AsyncProgress(self._target(reply), text, rate=self._progress_rate)
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
        target = self._target(Message(to=to, parent=in_reply_to))  # a bad identifier: now
        stream, compose, read = self._streams.open(to, fsource, name, size, stream_type)
        limit = self._upload_timeout
        try:
            _, sent = self.run(
                target.chat_key, lambda d, _: d.deliver(target, compose, time_limit=limit)
            )
        except RuntimeError as error:
            read.cancel()  # not connected: no need to read the file
            stream.error(str(error))
            return stream
        sent.add_done_callback(lambda done: settle(stream, done))
        return stream

    def run(
        self,
        chat_key: str,
        work: Work[T],
        on_ticket: OnTicket | None = None,
    ) -> tuple[int, concurrent.futures.Future[T]]:
        """Give ``work`` its place in ``chat_key``'s order now and run ``work(delivery,
        ticket)`` on the loop; returns the ticket (one number per message or update to the
        chat, in call order) and a future of the result at once. ``on_ticket`` hears the
        ticket before the work can start. Every send of this Outbox comes through here, under
        one lock, so ticket order is submission order is the chat's order."""
        with self._order:
            ticket = self._tickets.next(chat_key)
            if on_ticket is not None:
                on_ticket(ticket)

            async def with_delivery() -> T:
                return await work(self._delivery(), ticket)

            return ticket, self._bridge.submit(with_delivery())

    def close(self) -> None:
        self._streams.close()

    # -- helpers ---------------------------------------------------------------------------

    def _target(self, msg: Message | Card, *, may_replace: bool = False) -> Target:
        """Where ``msg`` goes, and — for an answer — its uuid seed: the question plus the
        answer's place among that command's answers, counted as the plugin sends them. Only
        a command's reply may take a clicked card's place; cards a plugin sends on purpose
        (progress, updatable, buttons, templates) go under it."""
        target = target_of(msg)
        if not may_replace and target.replace is not None:
            target = dataclasses.replace(target, replace=None)
        cause = reply_cause(msg)
        if cause is None:
            return target
        return dataclasses.replace(target, uuid_seed=f"{cause}#{self._answers.next(cause)}")

    def _send(self, msg: Message | Card, compose: Compose, *, may_replace: bool = False) -> None:
        try:
            target = self._target(msg, may_replace=may_replace)
        except ValueError as error:
            log.error("Cannot send to %s: %s", msg.to, error)
            return
        try:
            _, sent = self.run(
                target.chat_key, lambda delivery, _: delivery.deliver(target, compose)
            )
        except RuntimeError as error:  # not connected
            log.error("Cannot send to %s: %s", describe(msg), error)
            return
        report_failure(sent, describe(msg))

    def _send_card_ref(self, msg: Message, compose: Compose) -> CardRef:
        target = self._target(msg)

        async def send(delivery: Delivery, ticket: int) -> AsyncCard:
            sent = await delivery.deliver(target, compose)
            return AsyncCard.of(sent[-1], target.chat_key)

        _, sent = self.run(target.chat_key, send)
        return CardRef(self.run, target.chat_key, sent)


def describe(msg: Message | Card) -> str:
    """What a message is, for the one ERROR line when it cannot be delivered: the chat and
    the command it answers (never its content)."""
    parent = msg.parent
    if parent is not None and parent.body:
        command = parent.body if len(parent.body) <= 60 else parent.body[:59] + "…"
        return f"{msg.to} (the answer to {command!r})"
    return str(msg.to)


class KeyedCounter:
    """A count per key (a question's answers, a chat's sends); thread-safe and bounded: a key
    idle while 10,000 newer ones were counted restarts at 0, harmless for both uses."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def next(self, key: str) -> int:
        with self._lock:
            count = self._counts.get(key, 0)
            self._counts[key] = count + 1
            self._counts.move_to_end(key)
            while len(self._counts) > self._max_entries:
                self._counts.popitem(last=False)
            return count
