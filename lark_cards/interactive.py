"""Buttons that run Errbot commands: build them, answer the click, turn the click into a message.

The contract (design.md §3): a button whose callback value is ``{"cmd": "<command text>"}`` runs
that command as the *clicking* user in the card's chat; the value's other keys reach the
command as ``msg.extras``. The click becomes an ordinary Errbot message, so prefixes, ACLs and
``admin_only`` apply to the clicker exactly as if they had typed the command — the card is only
a shortcut for typing, never a way around a permission (issue 5).

Answering happens in two steps because Feishu waits at most 3 s for the callback's answer
(§6.1): :func:`answer_callback` builds the toast inside the request, and the command runs
later through the backend's normal inbound path.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from errbot.backends.base import Message
from errbot.core import ErrBot

from lark_cards.events import CardAction, Envelope, EventError, parse_card_action
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant

__all__ = [
    "BUTTON_STYLES",
    "ChatKinds",
    "action_message",
    "answer_callback",
    "button",
    "buttons_row",
    "toast_for",
    "with_buttons",
]

log = logging.getLogger(__name__)

# §5.5 button ``type`` values.
BUTTON_STYLES = frozenset(
    {"default", "primary", "danger", "text", "laser"}
    | {"primary_text", "danger_text", "primary_filled", "danger_filled"}
)
MAX_BUTTON_TEXT = 100  # §5.4 (UNCONFIRMED officially): longer texts are cut, not refused
TOAST_COMMAND_CHARS = 60  # a toast is one short line on a phone


def button(
    text: str,
    cmd: str | None = None,
    *,
    value: Mapping[str, Any] | None = None,
    style: str = "default",
    url: str | None = None,
    confirm: str | None = None,
) -> dict[str, Any]:
    """A card JSON 2.0 button (§5.5) whose click runs ``cmd`` as the clicker.

    ``value`` adds keys to the callback value (they arrive in the command's ``msg.extras``);
    ``url`` opens a link instead of (or as well as) calling back; ``confirm`` asks the clicker
    this question first — worth it for anything destructive.
    """
    if style not in BUTTON_STYLES:
        raise ValueError(f"button style {style!r} is not one of {sorted(BUTTON_STYLES)}")
    extra = dict(value or {})
    if "cmd" in extra:
        raise ValueError("pass the command as cmd=, not inside value")
    if cmd is None and not extra and url is None:
        raise ValueError("a button needs a cmd, a value or a url")
    if len(text) > MAX_BUTTON_TEXT:
        text = text[: MAX_BUTTON_TEXT - 1] + "…"
    behaviors: list[dict[str, Any]] = []
    if cmd is not None or extra:
        callback = {"cmd": cmd, **extra} if cmd is not None else extra
        behaviors.append({"type": "callback", "value": callback})
    if url is not None:
        behaviors.append({"type": "open_url", "default_url": url})
    element: dict[str, Any] = {
        "tag": "button",
        "text": {"tag": "plain_text", "content": text},
        "type": style,
        "behaviors": behaviors,
    }
    if confirm:
        element["confirm"] = {
            "title": {"tag": "plain_text", "content": text},
            "text": {"tag": "plain_text", "content": confirm},
        }
    return element


def buttons_row(*buttons: Mapping[str, Any]) -> dict[str, Any]:
    """Buttons side by side: a ``column_set`` of auto-width columns, since 2.0 has no
    ``action`` module (§5.5)."""
    columns = [{"tag": "column", "width": "auto", "elements": [dict(item)]} for item in buttons]
    return {"tag": "column_set", "columns": columns}


def with_buttons(card: Mapping[str, Any], buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of ``card`` with ``buttons`` in a row at the end of its body."""
    body = dict(card.get("body") or {})
    body["elements"] = [*body.get("elements", []), buttons_row(*buttons)]
    return {**card, "body": body}


def toast_for(action: CardAction) -> dict[str, Any]:
    """The 3-second answer to a click (§6.1): what is about to run, or why nothing will."""
    cmd = action.command
    if cmd is None:
        return _toast("error", "This button has no command to run.")
    shown = cmd if len(cmd) <= TOAST_COMMAND_CHARS else cmd[: TOAST_COMMAND_CHARS - 1] + "…"
    return _toast("info", f"Running {shown}…")


def answer_callback(envelope: Envelope) -> dict[str, Any]:
    """``create_app(respond=...)``: parse the callback and answer with its toast.

    Pure and fast (no I/O), as the webhook requires: it runs inside the request.
    """
    try:
        return toast_for(parse_card_action(envelope))
    except EventError as error:
        log.info("Unreadable card callback %s: %s", envelope.event_id, error)
        return _toast("error", "This click could not be read.")


def _toast(kind: str, content: str) -> dict[str, Any]:
    return {"toast": {"type": kind, "content": content}}


class ChatKinds:
    """Whether a chat is ``p2p`` or a group, per chat id.

    A card callback does not say (§6.1), yet Errbot needs it: in a group ``frm`` must be a
    room occupant and admin commands are refused unless allowed there (errbot-backends.md
    §1.5). Chat types learnt from message events are remembered for free; anything else is
    looked up once through ``lookup`` (``chat_id -> chat profile``, e.g. the backend's cached
    directory). A chat's type never changes, so answers are kept until evicted; a failed
    lookup is not kept, and reads as ``group`` — the stricter side: admin commands stay
    refused, and a reply addressed to the chat id reaches a p2p chat just as well.
    """

    def __init__(
        self, lookup: Callable[[str], Mapping[str, Any]], *, max_entries: int = 10_000
    ) -> None:
        self._lookup = lookup
        self._max_entries = max_entries
        self._kinds: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, chat_id: str, chat_type: str) -> None:
        """Record a type seen in a message event (``p2p`` / ``group`` / ``topic_group``)."""
        with self._lock:
            self._kinds[chat_id] = chat_type
            self._kinds.move_to_end(chat_id)
            while len(self._kinds) > self._max_entries:
                self._kinds.popitem(last=False)

    def __call__(self, chat_id: str) -> str:
        with self._lock:
            known = self._kinds.get(chat_id)
        if known is not None:
            return known
        profile = self._lookup(chat_id) or {}
        # im/v1/chats ``chat_mode``: "p2p" | "group" | "topic".
        mode = profile.get("chat_mode")
        kind = {"p2p": "p2p", "group": "group", "topic": "topic_group"}.get(str(mode))
        if kind is None:
            return "group"
        self.remember(chat_id, kind)
        return kind


def action_message(
    action: CardAction, bot: LarkPerson, chat_kind: Callable[[str], str]
) -> Message | None:
    """The clicked command as an Errbot message from the clicker, or None without a command.

    Group: ``frm`` is a :class:`LarkRoomOccupant`, ``to`` the room; p2p: ``frm`` is a
    :class:`LarkPerson`, ``to`` the bot (as for typed messages, ``inbound.to_message``).
    ``extras`` hold the value's other keys, then ``card_message_id``, ``chat_id``,
    ``chat_type``, ``event_id``, ``action`` (the :class:`CardAction`) and ``message_id`` —
    the card's id, so ``build_reply`` answers under the card, the way a reply to a typed
    command answers under the question. ``parent`` is the card itself.
    """
    cmd = action.command
    if cmd is None:
        return None
    chat_id = action.open_chat_id
    # Without a chat (a click outside a message) the only place to answer is the clicker.
    kind = chat_kind(chat_id) if chat_id else "p2p"
    ids = {"message_id": action.open_message_id, "chat_id": chat_id, "chat_type": kind}
    extras = {
        **action.arguments,  # first: a card's value cannot overwrite the ids below
        **ids,
        "card_message_id": action.open_message_id,
        "event_id": action.event_id,
        "action": action,
    }
    msg = Message(body=cmd, extras=extras)
    if kind == "p2p" or chat_id is None:
        msg.frm = LarkPerson(action.operator_open_id, chat_id=chat_id)
        msg.to = bot
    else:
        room = LarkRoom(chat_id)
        msg.frm = LarkRoomOccupant(action.operator_open_id, room)
        msg.to = room
    if action.open_message_id:
        msg.parent = Message(frm=bot, to=msg.to, extras=dict(ids))
    return msg


def command_allowed(bot: ErrBot, msg: Message) -> bool:
    """Would Errbot let ``msg``'s sender run its command here? A dry run of Errbot's own
    command filters (the ACLs), used before letting a click's answer replace the card — a
    refusal must never wipe a card everyone else still needs."""
    text = msg.body.strip()
    prefixes = (bot.bot_config.BOT_PREFIX, *bot.bot_config.BOT_ALT_PREFIXES)
    prefix = next((p for p in prefixes if p and text.startswith(p)), None)
    if prefix is None:
        return False
    words = text[len(prefix) :].split()
    for count in range(len(words), 0, -1):  # Errbot's longest-match over "word_word" names
        command = "_".join(words[:count])
        if command in bot.commands:
            args = " ".join(words[count:])
            allowed, _, _ = bot._process_command_filters(msg, command, args, dry_run=True)
            return allowed is not None
    return False
