"""A click on a card button → the command it names, run as the clicking user.

The contract: a button whose callback value is ``{"cmd": "<command text>"}`` runs that command
as the *clicking* user in the card's chat; the value's other keys reach the command as
``msg.extras``. The click becomes an ordinary Errbot message, so prefixes, ACLs and
``admin_only`` apply to the clicker exactly as if they had typed the command — the card is only
a shortcut for typing, never a way around a permission.

Answering happens in two steps because Feishu waits at most 3 s for the callback's answer
(§6.1): :class:`ClickAnswers` builds the toast inside the request and keeps the action it
parsed for the dispatch that follows; the inbound worker then turns that action into the
command message (:func:`action_message`).
A button whose value also says ``"replace": true`` lets the command's first card answer take
the clicked card's place — only when Errbot would let the clicker run the command
(:func:`replacement`): a refusal must never wipe a card everyone else still needs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from errbot.backends.base import Message

from lark_cards.identifiers import Identities, LarkPerson
from lark_cards.inbound.events import CardAction, parse_card_action
from lark_cards.inbound.messages import addressed
from lark_cards.interactive import REPLACE_CARD, ReplaceCard
from lark_cards.transport.envelope import Envelope, EventError

TOAST_COMMAND_CHARS = 60  # a toast is one short line on a phone


def toast_for(action: CardAction | EventError) -> dict[str, Any]:
    """The 3-second answer to a click (§6.1): what is about to run, or why nothing will."""
    if isinstance(action, EventError):
        return _toast("error", "This click could not be read.")
    cmd = action.command
    if cmd is None:
        return _toast("error", "This button has no command to run.")
    shown = cmd if len(cmd) <= TOAST_COMMAND_CHARS else cmd[: TOAST_COMMAND_CHARS - 1] + "…"
    return _toast("info", f"Running {shown}…")


def _toast(kind: str, content: str) -> dict[str, Any]:
    return {"toast": {"type": kind, "content": content}}


class ClickAnswers:
    """Parses each click once, for both its in-request answer and its dispatch.

    :meth:`answer` (the webhook's ``respond`` hook, on the loop, inside the request) parses
    the callback, keeps the result by event id and returns the toast; :meth:`take` (the
    dispatch that follows the answer) hands that result on, or parses the callback itself when
    no answer was asked for. A retried callback is answered again but not dispatched again, so
    a few results are never taken: the oldest are dropped past ``max_entries``, and a dropped
    one only costs a second parse.
    """

    def __init__(self, *, max_entries: int = 256) -> None:
        self._max_entries = max_entries
        self._parsed: OrderedDict[str, CardAction | EventError] = OrderedDict()
        self._lock = threading.Lock()

    def answer(self, envelope: Envelope) -> dict[str, Any]:
        try:
            parsed: CardAction | EventError = parse_card_action(envelope)
        except EventError as error:
            parsed = error
        with self._lock:
            self._parsed[envelope.event_id] = parsed
            self._parsed.move_to_end(envelope.event_id)
            while len(self._parsed) > self._max_entries:
                self._parsed.popitem(last=False)
        return toast_for(parsed)

    def take(self, envelope: Envelope) -> CardAction:
        """The click's action; EventError when it is unreadable."""
        with self._lock:
            parsed = self._parsed.pop(envelope.event_id, None)
        if parsed is None:
            return parse_card_action(envelope)
        if isinstance(parsed, EventError):
            raise parsed
        return parsed


class ChatTypes:
    """Whether a chat is ``p2p`` or a group, per chat id (Feishu's ``chat_type``).

    A card callback does not say (§6.1), yet Errbot needs it: in a group ``frm`` must be a
    room occupant, and admin commands are refused there unless the ACLs allow them in groups
    (``allowmuc``). Chat types learnt from message events are remembered for free; anything
    else is looked up once through ``lookup`` (``chat_id -> chat profile``, e.g. the backend's
    cached directory). A chat's type never changes, so answers are kept until evicted; a
    failed lookup is not kept, and reads as ``group`` — the stricter side: admin commands stay
    refused, and a reply addressed to the chat id reaches a p2p chat just as well.
    """

    def __init__(
        self, lookup: Callable[[str], Mapping[str, Any]], *, max_entries: int = 10_000
    ) -> None:
        self._lookup = lookup
        self._max_entries = max_entries
        self._types: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, chat_id: str, chat_type: str) -> None:
        """Record a type seen in a message event (``p2p`` / ``group`` / ``topic_group``)."""
        with self._lock:
            self._types[chat_id] = chat_type
            self._types.move_to_end(chat_id)
            while len(self._types) > self._max_entries:
                self._types.popitem(last=False)

    def __call__(self, chat_id: str) -> str:
        with self._lock:
            known = self._types.get(chat_id)
        if known is not None:
            return known
        profile = self._lookup(chat_id) or {}
        # im/v1/chats ``chat_mode``: "p2p" | "group" | "topic".
        mode = profile.get("chat_mode")
        chat_type = {"p2p": "p2p", "group": "group", "topic": "topic_group"}.get(str(mode))
        if chat_type is None:
            return "group"
        self.remember(chat_id, chat_type)
        return chat_type


def action_message(
    action: CardAction,
    bot: LarkPerson,
    identities: Identities,
    chat_type: Callable[[str], str],
) -> Message | None:
    """The clicked command as an Errbot message from the clicker, or None without a command.

    Group: ``frm`` is a room occupant, ``to`` the room; p2p: ``frm`` is a person, ``to`` the
    bot (as for typed messages). ``extras`` hold the value's other keys, then
    ``card_message_id``, ``chat_id``, ``chat_type``, ``event_id``, ``action`` (the
    :class:`CardAction`) and ``message_id`` — the card's id, so ``build_reply`` answers under
    the card, the way a reply to a typed command answers under the question. ``parent`` is
    the card itself.
    """
    cmd = action.command
    if cmd is None:
        return None
    chat_id = action.open_chat_id
    # Without a chat (a click outside a message) the only place to answer is the clicker.
    kind = chat_type(chat_id) if chat_id else "p2p"
    ids = {"message_id": action.open_message_id, "chat_id": chat_id, "chat_type": kind}
    arguments = {key: item for key, item in action.arguments.items() if key != REPLACE_CARD}
    extras = {
        **arguments,  # first: a card's value cannot overwrite the ids below
        **ids,
        "card_message_id": action.open_message_id,
        "event_id": action.event_id,
        "action": action,
    }
    msg = Message(body=cmd, extras=extras)
    msg.frm, msg.to = addressed(
        identities, bot, action.operator_open_id, chat_id, direct=kind == "p2p"
    )
    if action.open_message_id:
        msg.parent = Message(frm=bot, to=msg.to, extras=dict(ids))
    return msg


class CommandFilters(Protocol):
    """The parts of Errbot's core a dry run of its command resolution reads."""

    @property
    def bot_config(self) -> Any: ...

    @property
    def commands(self) -> Mapping[str, Any]: ...

    def _process_command_filters(
        self, msg: Message, cmd: str, args: str, dry_run: bool = False
    ) -> tuple[Message | None, str | None, Any]: ...


def command_allowed(bot: CommandFilters, msg: Message) -> bool:
    """Would Errbot let ``msg``'s sender run its command here? A dry run of Errbot's own
    command filters (the ACLs) over the command Errbot would pick: the longest prefix match
    of ``word_word`` command names after the bot's prefix."""
    text = msg.body.strip()
    prefixes = (bot.bot_config.BOT_PREFIX, *bot.bot_config.BOT_ALT_PREFIXES)
    prefix = next((p for p in prefixes if p and text.startswith(p)), None)
    if prefix is None:
        return False
    words = text[len(prefix) :].split()
    for count in range(len(words), 0, -1):
        command = "_".join(words[:count])
        if command in bot.commands:
            args = " ".join(words[count:])
            allowed, _, _ = bot._process_command_filters(msg, command, args, dry_run=True)
            return allowed is not None
    return False


def replacement(bot: CommandFilters, action: CardAction, msg: Message) -> ReplaceCard | None:
    """The clicked card the command's first answer may replace: only when the button's value
    asks for it (``"replace": true``) and Errbot would let the clicker run the command."""
    card = action.open_message_id
    if card is None or not action.value.get("replace") or not command_allowed(bot, msg):
        return None
    return ReplaceCard(card)
