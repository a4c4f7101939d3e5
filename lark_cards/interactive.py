"""Buttons that run Errbot commands: the card JSON builders plugins put on their cards.

A button whose callback value is ``{"cmd": "<command text>"}`` runs that command as the
*clicking* user in the card's chat, with the value's other keys in ``msg.extras``; the click
becomes an ordinary Errbot message, so prefixes, ACLs and ``admin_only`` apply to the clicker
(``lark_cards.inbound.clicks`` turns the click into that message). A value with
``"replace": True`` lets the command's first card answer take the clicked card's place, when
the clicker may run it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["BUTTON_STYLES", "REPLACE_CARD", "ReplaceCard", "button", "buttons_row", "with_buttons"]

# §5.5 button ``type`` values.
BUTTON_STYLES = frozenset(
    {"default", "primary", "danger", "text", "laser"}
    | {"primary_text", "danger_text", "primary_filled", "danger_filled"}
)
MAX_BUTTON_TEXT = 100  # §5.4 (UNCONFIRMED officially): longer texts are cut, not refused


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


# The key under which a click's message carries its ReplaceCard (msg.extras): set by the
# inbound side, read by the delivery of the answer.
REPLACE_CARD = "replace_card"
