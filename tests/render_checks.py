"""Invariants every rendered reply must satisfy, shared by the corpus and property tests."""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt

from lark_cards.render import plain_text
from lark_cards.render.pieces import wire_size
from lark_cards.render.tree import build_tree
from lark_cards.render.validate import validate_card

FEISHU_CARD_BYTES = 30 * 1024
# Feishu reads card markdown as CommonMark (+ tables, strike); it knows no {:attr} lists.
_FEISHU_READER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_FEISHU_TAGS = re.compile(r"</?(?:font|text_tag)\b[^>]*>")
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def card_text(cards: list[dict[str, Any]]) -> str:
    """What a reader sees in the cards: markdown (elements and table cells) read the way a
    CommonMark reader shows it — entities decoded, link targets hidden, code kept."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and (key == "content" or re.fullmatch(r"c\d+", key)):
            shown = _FEISHU_TAGS.sub("", value)  # Feishu draws these tags, it does not print them
            found.append(plain_text(build_tree(_FEISHU_READER.parse(shown))))
        elif isinstance(value, str) and key not in ("tag", "name", "data_type", "width"):
            found.append(value)

    for card in cards:
        title = card.get("header", {}).get("title", {}).get("content")
        if title:  # plain text: shown as it is (a reply's leading heading)
            found.append(title)
        walk(card.get("body", {}))
    return "\n".join(found)


def check_cards(markdown: str, cards: list[dict[str, Any]]) -> None:
    """Valid JSON 2.0 within every budget, and no word of the input lost."""
    assert cards, "a reply must produce at least one card"
    for card in cards:
        assert validate_card(card) == [], validate_card(card)
        assert wire_size(card) <= FEISHU_CARD_BYTES
    # Markup between words disappears on both sides, so compare streams of word characters:
    # every word of the input must appear in the output, in the input's order.
    shown = "".join(words(card_text(cards)))
    position = 0
    for word in words(plain_text(markdown)):
        found = shown.find(word, position)
        assert found >= 0, f"lost or reordered word {word!r}"
        position = found + len(word)
