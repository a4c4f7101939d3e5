"""What plugins can ask of the Feishu backend beyond plain replies (``self._bot.…``).

A mixin of ``LarkCardsBackend``, kept apart so backend.py stays the Errbot contract and the
loop. Every method is a typed forwarder called from Errbot's worker threads: sends go to the
``Outbox`` (the one delivery path), look-ups and reactions cross into the loop through the
backend's ``bridge`` and wait for their answer. What the mixin needs from its host is declared
for the type checker only, so nothing here can stand in for a missing backend method at run
time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from errbot.backends.base import Card, Identifier, Message, Stream

from lark_cards.api.files import DOWNLOAD_DEADLINE, TRANSFER_TIMEOUT, download_resource
from lark_cards.outbound import CardRef, Progress

if TYPE_CHECKING:
    from lark_cards.api.client import LarkClient
    from lark_cards.api.reactions import ReactionBook
    from lark_cards.bridge import LoopBridge
    from lark_cards.identifiers import LarkPerson
    from lark_cards.inbound.intake import Intake
    from lark_cards.outbound import Outbox

# Downloads may be 100 MB and are retried: the wait covers their whole retry budget.
DOWNLOAD_WAIT = DOWNLOAD_DEADLINE + TRANSFER_TIMEOUT + 15.0


class PluginAPI:
    """Native cards, templates, buttons, progress, files and reactions for plugins."""

    if TYPE_CHECKING:
        bot_identifier: LarkPerson
        bridge: LoopBridge
        intake: Intake | None
        outbox: Outbox
        reaction_book: ReactionBook

        def connected_client(self) -> LarkClient: ...

        def build_reply(
            self,
            msg: Message,
            text: str | None = None,
            private: bool = False,
            threaded: bool = False,
        ) -> Message: ...

    def send_card(self, card: Card) -> None:
        """Errbot's ``send_card`` as a native Feishu card: the header takes the title, link
        and colour, ``fields`` become a key/value grid, the body is rendered markdown."""
        self.outbox.send_card(card)

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
        self.outbox.send_template(msg, template, context)

    def send_updatable(
        self,
        identifier: Identifier,
        content: str | Mapping[str, Any],
        in_reply_to: Message | None = None,
    ) -> CardRef:
        """Send markdown (or a card JSON) as a card you can change later: ``ref.update("…")``
        (PATCH, at most 5 a second, for 14 days)."""
        return self.outbox.send_updatable(identifier, content, in_reply_to)

    def send_buttons(
        self,
        identifier: Identifier,
        text: str,
        buttons: Sequence[Mapping[str, Any]],
        in_reply_to: Message | None = None,
    ) -> CardRef:
        """A card of ``text`` with a row of ``lark_cards.interactive.button(...)``s: a click
        runs the button's ``cmd`` as the clicking user, through Errbot's ACLs."""
        return self.outbox.send_buttons(identifier, text, buttons, in_reply_to)

    def progress(self, msg: Message, text: str, threaded: bool = False) -> Progress:
        """One card showing a command's progress, updated in place (coalesced under Feishu's
        rate limit; the final state always arrives)::

            with self._bot.progress(msg, "Deploying…") as progress:
                progress.update("step 2/5")
        """
        return self.outbox.progress(self.build_reply(msg, threaded=threaded), text)

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
        return self.outbox.send_stream(user, fsource, name, size, stream_type)

    def is_leader(self) -> bool:
        """Whether this instance should run plugins' background work (pollers, schedules)
        when several share one app and one ``state_url``: check it each time the work
        fires, and skip it when False. One instance alone is always the leader."""
        intake = self.intake
        return intake is not None and intake.leadership.is_leader()

    def add_reaction(self, msg: Message, reaction: str) -> None:
        """React to ``msg`` with a Feishu emoji type (``"THUMBSUP"``, ``"DONE"``, …)."""
        client = self.connected_client()
        self.bridge.call(self.reaction_book.add(client, _message_id(msg), reaction))

    def remove_reaction(self, msg: Message, reaction: str) -> None:
        """Remove the bot's own ``reaction`` from ``msg`` (none there: not an error)."""
        client = self.connected_client()
        self.bridge.call(self.reaction_book.remove(client, _message_id(msg), reaction))

    def download_file(self, msg: Message, attachment: Mapping[str, Any] | None = None) -> bytes:
        """The bytes of an incoming image or file (``msg.extras["attachments"]``, first one
        unless ``attachment`` says which)."""
        items = msg.extras.get("attachments") or []
        item = attachment or (items[0] if items else None)
        if item is None:
            raise ValueError("this message has no attachment")
        request = download_resource(
            self.connected_client(), _message_id(msg), item["key"], item["type"]
        )
        return self.bridge.call(request, timeout=DOWNLOAD_WAIT)


def _message_id(msg: Message) -> str:
    message_id = msg.extras.get("message_id")
    if not message_id:
        raise ValueError("not a Feishu message (no extras['message_id'])")
    return str(message_id)
