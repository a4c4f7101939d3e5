"""Errbot markdown → Feishu card JSON 2.0.

Interim renderer: the whole reply goes into ``markdown`` elements of card JSON 2.0, so Feishu
draws headings, lists, code and links instead of showing raw ``**`` and ``#`` in a ``text``
message. Long replies are cut at line boundaries into cards under the 30 KB body limit
(reference/feishu-platform.md §5.4). The syntax-tree renderer (tables, colours, escaping,
templates) replaces the body of this module behind the same ``render_markdown`` signature.
"""

from __future__ import annotations

import json
from typing import Any

# Feishu rejects a card whose request body exceeds 30 KB (230025); the body also carries the
# double-encoded content and the envelope, so each card's JSON stays well below that.
CARD_BYTE_BUDGET = 24 * 1024


def render_markdown(text: str) -> list[dict[str, Any]]:
    """Return the card JSON 2.0 objects that ``send_message`` sends for ``text``."""
    return [_card(part) for part in _split_lines(text, CARD_BYTE_BUDGET)]


def _card(markdown: str) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "body": {"elements": [{"tag": "markdown", "content": markdown}]},
    }


def _json_size(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def _split_lines(text: str, budget: int) -> list[str]:
    """Cut ``text`` into parts whose JSON-encoded size fits ``budget`` bytes, at line ends."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        for piece in _split_long_line(line, budget):
            piece_size = _json_size(piece)
            if current and size + piece_size > budget:
                parts.append("".join(current))
                current, size = [], 0
            current.append(piece)
            size += piece_size
    if current or not parts:
        parts.append("".join(current))
    return parts


def _split_long_line(line: str, budget: int) -> list[str]:
    pieces = []
    while _json_size(line) > budget:
        cut = budget // 6  # a character is at most 6 bytes once JSON-escaped (\uXXXX)
        pieces.append(line[:cut])
        line = line[cut:]
    return [*pieces, line]
