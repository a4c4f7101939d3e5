"""Plain text from a markdown reply: the chat-list preview (``summary``), the ``auto`` mode test
(``is_plain``) and the words of the last-resort fallback (``plain_text``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from lark_cards.render.inline import plain_tokens
from lark_cards.render.parser import parse
from lark_cards.render.tree import Node

_MARKUP_NODES = {
    "em",
    "strong",
    "s",
    "link",
    "image",
    "code_inline",
    "fence",
    "code_block",
    "heading",
    "bullet_list",
    "ordered_list",
    "blockquote",
    "table",
    "hr",
    "html_block",
    "html_inline",
}


_TEXT_BLOCKS = {
    "paragraph",
    "heading",
    "list_item",
    "fence",
    "code_block",
    "html_block",
    "blockquote",
    "tr",
    "hr",
}


def plain_text(text: str | Node) -> str:
    """The words of a markdown reply without markup: what a text message can still show."""
    joined = "".join(_plain_parts(parse(text) if isinstance(text, str) else text))
    return re.sub(r"\n{3,}", "\n\n", joined).strip("\n")


def _plain_parts(tree: Node) -> Iterator[str]:
    for node in tree.walk():
        if node.type in _TEXT_BLOCKS:
            yield "\n"
        if node.type == "inline":
            yield plain_tokens(node.inline_tokens, "\n")
        elif node.type in ("fence", "code_block"):
            yield html.unescape(node.content)
        elif node.type == "html_block":
            yield html.unescape(node.content)  # as the renderer shows raw HTML
        elif node.type in ("td", "th"):
            yield "\t"


def is_plain(text: str, tree: Node | None = None) -> bool:
    """True when ``text`` has no markdown at all, so a text message shows it faithfully;
    ``tree`` is its parse, when the caller has it already."""
    tree = parse(text) if tree is None else tree
    if any(kind in _MARKUP_NODES for kind in _types(tree)):
        return False
    return plain_text(tree).split() == text.split()


def _types(tree: Node) -> Iterator[str]:
    """The type of every node and inline token of ``tree`` (spans by their opening)."""
    for node in tree.walk():
        yield node.type
        for token in node.inline_tokens:
            yield token.type.removesuffix("_open")


def summary(tree: Node, limit: int = 60) -> str:
    """The chat-list preview of a card: its first line of prose, shortened — what a reader
    of the chat list wants to see first. Tables and code are passed over for prose that
    follows them; a reply of only a table previews its first row (``person: gbin`` rather
    than the column names), one of only code its first line."""
    preview = Preview()
    preview.read(tree)
    return preview.text(limit)


class Preview:
    """``summary`` of a reply parsed a section at a time (``render.sections``): ``read``
    each section's tree in order, then ``text``."""

    def __init__(self) -> None:
        self._prose = ""
        self._first: str | None = None  # the first block's line, if no prose comes

    def read(self, tree: Node) -> None:
        if self._prose:
            return
        blocks = tree.children
        prose = (node for node in blocks if node.type not in _NOT_PROSE)
        self._prose = next((line for node in prose if (line := _first_line(node))), "")
        if self._first is None and blocks and not self._prose:  # else never read
            first = blocks[0]
            self._first = _first_row(first) if first.type == "table" else _first_line(first)

    def text(self, limit: int = 60) -> str:
        first = self._prose or self._first or ""
        return first if len(first) <= limit else first[: limit - 1] + "…"


_NOT_PROSE = frozenset({"table", "fence", "code_block", "hr"})


def _first_line(node: Node, limit: int = 240) -> str:
    """The first line of words of ``node``; reads only as much of it as that line needs."""
    text = ""
    for part in _plain_parts(node):
        text += part
        if "\n" in text.lstrip() or len(text) > limit:
            break
    return next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")


def _first_row(table: Node) -> str:
    """A table's first body row: ``a: b`` for two columns (key and value), else ``a · b``."""
    body = table.children[1].children if len(table.children) > 1 else []
    if not body:  # a header alone
        return _first_line(table)
    cells = [_first_line(cell) for cell in body[0].children]
    return ": ".join(cells) if len(cells) == 2 else " · ".join(cell for cell in cells if cell)
