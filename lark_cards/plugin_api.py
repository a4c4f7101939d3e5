"""What plugins can ask of the Feishu backend beyond plain replies (``self._bot.…``).

A mixin of ``LarkCardsBackend``, kept apart so backend.py stays the Errbot contract and the
loop. Every method here is called from Errbot's worker threads; each crosses into the loop
through the backend's ``_submit_send`` (fire and forget, failures logged) or ``_call``
(waits for the result).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, BinaryIO

from errbot.backends.base import Card, Identifier, Message, Stream

from lark_cards.api import LarkClient
from lark_cards.files import StreamSender, download_resource, send_file
from lark_cards.identifiers import LarkPerson
from lark_cards.outbound import Sender, Target, target_of
from lark_cards.reactions import ReactionBook
from lark_cards.render import Outgoing, render_card, render_template
from lark_cards.settings import Settings
from lark_cards.updates import CardRef, Cards, Progress

log = logging.getLogger(__name__)


class PluginAPI:
    """Native cards, templates, files and reactions for plugins."""

    settings: Settings
    bot_identifier: LarkPerson
    reaction_book: ReactionBook
    streams: StreamSender
    cards: Cards

    # Provided by the backend.
    def _submit_send(self, coro: Coroutine[Any, Any, Any], to: Any) -> None: ...
    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = ...) -> Any: ...
    def _connected_client(self) -> LarkClient: ...
    def _connected_sender(self) -> Sender: ...
    def build_reply(
        self, msg: Message, text: str | None = None, private: bool = False, threaded: bool = False
    ) -> Message: ...

    def send_card(self, card: Card) -> None:
        """Errbot's ``send_card`` as a native Feishu card: the header takes the title, link
        and colour, ``fields`` become a key/value grid, the body is rendered markdown."""
        self._submit_send(self._deliver_card(card), card.to)

    async def _deliver_card(self, card: Card) -> None:
        sender = self._connected_sender()
        image_urls = [url for url in (card.image, card.thumbnail) if url]
        images = {**await sender.image_keys(card.body or ""), **await _keys(sender, image_urls)}
        items = render_card(
            body=card.body or "",
            title=card.title or "",
            summary_text=card.summary or "",
            link=card.link,
            image=card.image,
            thumbnail=card.thumbnail,
            color=card.color,
            fields=tuple(card.fields or ()),
            images=images,
            options=sender.options,
        )
        await sender.send_all(target_of(card), items)

    def send_template(
        self,
        identifier: Identifier,
        template: str,
        context: Mapping[str, Any],
        in_reply_to: Message | None = None,
    ) -> None:
        """Send the card made by one of your own templates (``<template>.json.j2`` in
        ``LARK_CARDS['templates_dir']``) with your own context; for plugins::

            self._bot.send_template(msg.frm, "deploy", {"service": "api"}, in_reply_to=msg)
        """
        msg = Message(frm=self.bot_identifier, to=identifier, parent=in_reply_to)
        self._submit_send(self._deliver_template(msg, template, dict(context)), identifier)

    async def _deliver_template(self, msg: Message, template: str, context: dict[str, Any]) -> None:
        sender = self._connected_sender()
        card = render_template(template, context, sender.options)
        await sender.send_all(target_of(msg), [Outgoing("interactive", card)])

    def send_updatable(
        self,
        identifier: Identifier,
        content: str | Mapping[str, Any],
        in_reply_to: Message | None = None,
    ) -> CardRef:
        """Send markdown (or a card JSON) as a card you can change later: ``ref.update("…")``
        (PATCH, at most 5 a second, for 14 days)."""
        return self.cards.send_updatable(identifier, content, in_reply_to)

    def send_buttons(
        self,
        identifier: Identifier,
        text: str,
        buttons: Sequence[Mapping[str, Any]],
        in_reply_to: Message | None = None,
    ) -> CardRef:
        """A card of ``text`` with a row of ``lark_cards.interactive.button(...)``s: a click
        runs the button's ``cmd`` as the clicking user, through Errbot's ACLs."""
        return self.cards.send_buttons(identifier, text, buttons, in_reply_to)

    def progress(self, msg: Message, text: str, threaded: bool = False) -> Progress:
        """One card showing a command's progress, updated in place (coalesced under Feishu's
        rate limit; the final state always arrives)::

            with self._bot.progress(msg, "Deploying…") as progress:
                progress.update("step 2/5")
        """
        return self.cards.progress(self.build_reply(msg, threaded=threaded), text)

    def send_stream_request(
        self,
        user: Identifier,
        fsource: BinaryIO,
        name: str | None = None,
        size: int | None = None,
        stream_type: str | None = None,
    ) -> Stream:
        """Errbot's file sending: images go as image messages, other files as file messages
        (uploaded to ``im/v1/images`` / ``im/v1/files``); returns the Errbot ``Stream``."""
        return self.streams.send_stream_request(user, fsource, name, size, stream_type)

    async def _send_file(
        self, target: Target, data: bytes, name: str, stream_type: str | None
    ) -> Any:
        return await send_file(self._connected_client(), target, data, name, stream_type)

    def add_reaction(self, msg: Message, reaction: str) -> None:
        """React to ``msg`` with a Feishu emoji type (``"THUMBSUP"``, ``"DONE"``, …)."""
        self._call(self.reaction_book.add(self._connected_client(), _message_id(msg), reaction))

    def remove_reaction(self, msg: Message, reaction: str) -> None:
        self._call(self.reaction_book.remove(self._connected_client(), _message_id(msg), reaction))

    def download_file(self, msg: Message, attachment: Mapping[str, Any] | None = None) -> bytes:
        """The bytes of an incoming image or file (``msg.extras["attachments"]``, first one
        unless ``attachment`` says which)."""
        items = msg.extras.get("attachments") or []
        item = attachment or (items[0] if items else None)
        if item is None:
            raise ValueError("this message has no attachment")
        request = download_resource(
            self._connected_client(),
            _message_id(msg),
            item["key"],
            item["type"],
            base_url=self.settings.base_url,
        )
        return self._call(request, timeout=130)


async def _keys(sender: Sender, urls: list[str]) -> Mapping[str, str]:
    return await sender.images.keys(urls) if sender.images is not None and urls else {}


def _message_id(msg: Message) -> str:
    message_id = msg.extras.get("message_id")
    if not message_id:
        raise ValueError("not a Feishu message (no extras['message_id'])")
    return message_id
