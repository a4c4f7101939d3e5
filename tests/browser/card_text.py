"""What a Feishu client shows of a card, worked out in Python and independently of the page's
drawing code (static/cards.js, markdown.js): the words outside tables, in reading order, and
each table's headers and rows (all pages). ``tests/browser/test_cards_match_renderer.py``
compares it with what the page draws for every golden case of the Python renderer.

Feishu markdown is read here with markdown-it (CommonMark, tables, strikethrough, no raw HTML):
the markup the renderer writes is the CommonMark subset Feishu reads, plus a few Feishu tags
(``<font>``, ``<text_tag>``, ``<at>``, ``<br>``) that are resolved first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

_PARSER = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_COLOUR_TAG = re.compile(r"</?(?:font|text_tag)(?:\s[^<>]*)?>", re.IGNORECASE)
_AT = re.compile(r"<at\s+(?:id|ids|email)=['\"]?([^'\"\s>]*)['\"]?\s*>[^<]*</at>", re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass
class Table:
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    page_size: int = 5  # Feishu pages a markdown table at 5 rows; a table component says

    def as_dict(self) -> dict[str, Any]:
        pages = max(1, -(-len(self.rows) // self.page_size))
        return {"headers": self.headers, "rows": self.rows, "pages": pages}


@dataclass
class Shown:
    """The words a client shows outside tables, and the tables (in document order)."""

    words: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.words.extend(text.split())


def _words(text: str) -> str:
    return " ".join(text.split())


def _inline_text(token: Token) -> str:
    out = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append(" ")
        elif child.type == "image":
            src = str(child.attrs.get("src", ""))
            if not re.fullmatch(r"img_[A-Za-z0-9_\-]+", src):
                out.append(f" [image {src}] ")
    return "".join(out)


def _prepare(content: str) -> str:
    text = _COLOUR_TAG.sub("", content)
    text = _AT.sub(lambda m: "@" + (m.group(1) or ""), text)
    return _BR.sub(" ", text)


def markdown(content: str, shown: Shown) -> None:
    """Feishu markdown ``content``: its words into ``shown``, its tables as tables."""
    table: Table | None = None
    row: list[str] | None = None
    in_head = False
    for token in _PARSER.parse(_prepare(content)):
        kind = token.type
        if kind == "table_open":
            table = Table()
            shown.tables.append(table)
        elif kind == "table_close":
            table = None
        elif kind == "thead_open":
            in_head = True
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and table is not None and row is not None:
            if in_head:
                table.headers = row
            else:
                table.rows.append(row)
            row = None
        elif kind == "inline":
            text = _inline_text(token)
            if row is not None:
                row.append(_words(text))
            else:
                shown.add(text)
        elif kind in ("fence", "code_block"):
            shown.add(token.content)


def text_object(text: Any, shown: Shown) -> None:
    if not isinstance(text, dict):
        return
    content = str(text.get("content", ""))
    if text.get("tag") in ("lark_md", "markdown"):
        markdown(content, shown)
    else:
        shown.add(content)


def _cell(value: Any, column: dict[str, Any]) -> str:
    kind = column.get("data_type", "text")
    if kind in ("markdown", "lark_md"):
        inner = Shown()
        markdown(str(value if value is not None else ""), inner)
        return " ".join(inner.words)
    if kind == "options":
        options = value if isinstance(value, list) else [value]
        texts = (str(o.get("text", "") if isinstance(o, dict) else o) for o in options)
        return _words(" ".join(texts))
    return _words("" if value is None else str(value))


def _div(item: dict[str, Any], shown: Shown) -> None:
    text_object(item.get("text"), shown)
    for one in item.get("fields") or []:
        text_object(one.get("text") if isinstance(one, dict) else None, shown)


def _table(item: dict[str, Any], shown: Shown) -> None:
    columns = item.get("columns") or []
    headers = [_words(str(c.get("display_name", c.get("name", "")))) for c in columns]
    table = Table(headers, page_size=int(item.get("page_size", 5)))
    for values in item.get("rows") or []:
        table.rows.append([_cell((values or {}).get(c.get("name")), c) for c in columns])
    shown.tables.append(table)


def _panel(item: dict[str, Any], shown: Shown) -> None:
    text_object((item.get("header") or {}).get("title"), shown)
    elements(item.get("elements"), shown)


def _column_set(item: dict[str, Any], shown: Shown) -> None:
    for column in item.get("columns") or []:
        elements(column.get("elements"), shown)


_COMPONENTS = {
    "markdown": lambda item, shown: markdown(str(item.get("content", "")), shown),
    "div": _div,
    "plain_text": text_object,
    "lark_md": text_object,
    "img": lambda item, shown: text_object(item.get("title"), shown),
    "table": _table,
    "button": lambda item, shown: text_object(item.get("text") or {"content": "Button"}, shown),
    "collapsible_panel": _panel,
    "column_set": _column_set,
    "action": lambda item, shown: elements(item.get("actions"), shown),
}


def element(item: Any, shown: Shown) -> None:
    """One card component (§5.5) as a client shows it; containers show their children."""
    if isinstance(item, dict):
        draw = _COMPONENTS.get(str(item.get("tag")))
        if draw is not None:
            draw(item, shown)
        else:
            elements(item.get("elements"), shown)


def elements(items: Any, shown: Shown) -> None:
    for item in items or []:
        element(item, shown)


def card(value: dict[str, Any]) -> Shown:
    """A whole card: its header's title, subtitle and tags, then its body."""
    shown = Shown()
    header = value.get("header") or {}
    text_object(header.get("title"), shown)
    for tag in header.get("text_tag_list") or []:
        text_object(tag.get("text"), shown)
    text_object(header.get("subtitle"), shown)
    body = value.get("body", {}).get("elements") if value.get("schema") == "2.0" else None
    elements(body if body is not None else value.get("elements"), shown)
    return shown
