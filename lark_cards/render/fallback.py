"""What to send when Feishu rejects a card: the same content in smaller cards (``shrink``), or
as literal rich-text messages (``as_text``), so the user always gets it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

from lark_cards.render.outgoing import Outgoing, RenderOptions, wrap
from lark_cards.render.plain import plain_text

# A text message may carry 150 KB, a post 30 KB (§4.1); parts stay well below that.
TEXT_PART_BYTES = 64 * 1024
POST_BYTES = 16 * 1024


def shrink(rejected: Outgoing, options: RenderOptions) -> list[Outgoing]:
    """The same content in smaller cards, after Feishu rejected ``rejected`` (§5.4 limits
    are partly unconfirmed, so a rejection means our budget was too generous)."""
    smaller = dataclasses.replace(options, budget=options.budget.smaller())
    return wrap(list(rejected.pieces), rejected.template, rejected.context, smaller)


def as_text(rejected: Outgoing) -> list[Outgoing]:
    """The content of a rejected card as plain rich-text (``post``) messages: the user always
    gets it. ``post`` text nodes are literal (§5.2), unlike a ``text`` message, where
    ``<at user_id=all>`` or ``<b>`` in the recovered words would become live again (§5.1)."""
    if rejected.pieces:
        title = str(rejected.context.get("title") or "")
        fields = [f"{key}: {plain_text(str(value))}" for key, value in _fields(rejected.context)]
        body = "\n\n".join(text for piece in rejected.pieces if (text := piece.plain()))
        message = str(rejected.context.get("message") or "")  # the error template's text
        parts = (message, fields and "\n".join(fields), body)
        text = "\n\n".join(part for part in parts if part)
    else:  # a plugin's own template: all we have is the card
        title, text = "", "\n".join(_card_strings(rejected.content))
    return [Outgoing("post", literal_post(part, title)) for part in text_parts(text, POST_BYTES)]


def literal_post(text: str, title: str = "") -> dict[str, Any]:
    """A ``post`` message of literal lines (§5.2: at least one locale; no outer wrapper)."""
    lines = [[{"tag": "text", "text": line}] for line in text.split("\n")]
    return {"zh_cn": {"title": title, "content": lines}}


def _fields(context: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    return [tuple(field) for field in context.get("fields") or () if len(field) == 2]


def _card_strings(value: Any) -> Iterator[str]:
    """Readable strings of a card: titles, markdown, plain text, table cells."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key == "content" or re.fullmatch(r"c\d+", key)):
                yield plain_text(item)
            else:
                yield from _card_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _card_strings(item)


def text_parts(text: str, limit: int = TEXT_PART_BYTES) -> list[str]:
    """``text`` cut at line ends into parts that fit a text message, in order."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        cost = len(line.encode())
        if current and size + cost > limit:
            parts.append("".join(current))
            current, size = [], 0
        while cost > limit:  # one enormous line: cut it (a character is at most 4 bytes)
            cut = max(1, limit // 4)
            parts.append(line[:cut])
            line = line[cut:]
            cost = len(line.encode())
        current.append(line)
        size += cost
    if current or not parts:
        parts.append("".join(current))
    return parts
