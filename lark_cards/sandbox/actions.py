"""A click on a card button in the page → a real ``card.action.trigger`` callback (§6.1).

The callback goes to the bot's event URL exactly like Feishu sends it (schema 2.0, encrypted
and signed, verification token in the header). The bot's answer is applied the way the Feishu
client applies it: a ``toast`` is shown, a ``card`` of type ``raw`` replaces the card in place
(after the same checks as a PATCH), and failures surface as Feishu's client error codes.
"""

from __future__ import annotations

from typing import Any

from lark_cards.api.errors import CALLBACK_BAD_CARD, CARD_SCHEMA_MISMATCH

from .delivery import Deliverer, card_action_envelope
from .openapi import FakeOpenPlatform
from .rules import check_card, check_patch
from .state import StoredMessage


async def click(
    platform: FakeOpenPlatform,
    deliverer: Deliverer,
    *,
    message_id: str,
    operator_open_id: str,
    action: dict[str, Any],
    verification_token: str | None,
) -> dict[str, Any]:
    """Send the callback for a click and apply the answer; returns what the page shows."""
    message = platform.conversations.get(message_id)
    if message is None or message.msg_type != "interactive":
        return _toast("error", "This message is not a card.")
    payload = card_action_envelope(
        action,
        operator_open_id=operator_open_id,
        message_id=message.message_id,
        chat_id=message.chat_id,
        app_id=platform.app_id,
        token=verification_token,
    )
    answer = await deliverer.callback(payload)
    if answer.body is None:
        detail = f"Error {answer.error_code}: the bot's callback failed ({answer.error})."
        return {**_toast("error", detail), "error_code": answer.error_code}
    return apply_answer(platform, message, answer.body)


def apply_answer(
    platform: FakeOpenPlatform, message: StoredMessage, body: dict[str, Any]
) -> dict[str, Any]:
    """Show the answer's toast and apply its card, like the Feishu client does (§6.1)."""
    shown: dict[str, Any] = {}
    toast = body.get("toast")
    if isinstance(toast, dict) and isinstance(toast.get("content"), str):
        shown |= _toast(str(toast.get("type") or "info"), toast["content"])
    card = body.get("card")
    if card is None:
        return shown
    data = card.get("data") if isinstance(card, dict) else None
    if not isinstance(card, dict) or card.get("type") != "raw" or not isinstance(data, dict):
        problem = "the sandbox draws only cards answered as {'type': 'raw', 'data': {…}}"
        text = f"Error {CALLBACK_BAD_CARD}: {problem}"
        return {**shown, **_toast("error", text), "error_code": CALLBACK_BAD_CARD}
    refusal = check_patch(message.content, data) or check_card(data, platform.uploads.images)
    if refusal is not None:
        code = refusal.code if refusal.code == CARD_SCHEMA_MISMATCH else CALLBACK_BAD_CARD
        text = f"Error {code}: the card in the answer was refused ({refusal.msg})"
        return {**shown, **_toast("error", text), "error_code": code}
    platform.update_card(message, data)
    return {**shown, "updated": True}


def _toast(kind: str, content: str) -> dict[str, Any]:
    return {"toast": {"type": kind, "content": content}}
