"""The units a card is packed from, each knowing its card component and how to split itself.

A reply can be far larger than one card (logs, 200-row tables). Splitting happens on these
pieces, never on raw text: prose splits between lines, a code block splits between lines with
its fence repeated on every part, a table splits between rows with its header repeated, so each
part stays valid markdown / a valid component (reference/feishu-platform.md §5.4).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol


def wire_size(value: Any) -> int:
    """Bytes ``value`` takes in the send request: card JSON, encoded again as the ``content``
    string (Feishu double-encodes), in UTF-8 — the measure the 30 KB limit applies to."""
    card_json = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(json.dumps(card_json, ensure_ascii=False).encode()) - 2


class Piece(Protocol):
    tables: int

    def element(self) -> dict[str, Any]: ...

    def plain(self) -> str:
        """The words of the piece as plain text (the last-resort fallback when Feishu rejects
        every card form of it)."""
        ...

    def split(self, budget: int) -> list[Piece]:
        """Pieces whose elements each take at most ``budget`` bytes (``wire_size``)."""
        ...


@dataclass(frozen=True)
class MarkdownPiece:
    """Prose: headings, paragraphs, lists, quotes → one ``markdown`` element."""

    content: str
    tables: int = 0  # markdown pipe tables nested in lists or quotes still count (§5.4)

    def element(self) -> dict[str, Any]:
        return {"tag": "markdown", "content": self.content}

    def plain(self) -> str:
        return html.unescape(re.sub(r"</?(?:font|text_tag|at)[^>]*>", "", self.content))

    def merged(self, other: MarkdownPiece) -> MarkdownPiece:
        return MarkdownPiece(f"{self.content}\n\n{other.content}", self.tables + other.tables)

    def split(self, budget: int) -> list[Piece]:
        chunks = _chunk_lines(self.content.split("\n"), budget - _overhead(self.element()))
        return [
            MarkdownPiece(chunk, self.tables if i == 0 else 0) for i, chunk in enumerate(chunks)
        ]


@dataclass(frozen=True)
class CodePiece:
    """A fenced code block; every part is fenced again with the same language."""

    language: str
    code: str
    tables: int = 0

    def element(self) -> dict[str, Any]:
        from lark_cards.render.elements import fenced_code  # one fence rule for all code

        return {"tag": "markdown", "content": fenced_code(self.language, self.code)}

    def plain(self) -> str:
        return self.code

    def split(self, budget: int) -> list[Piece]:
        fence_cost = wire_size(CodePiece(self.language, "").element())
        lines = self.code.rstrip("\n").split("\n")
        return [
            CodePiece(self.language, chunk) for chunk in _chunk_lines(lines, budget - fence_cost)
        ]


@dataclass(frozen=True)
class TablePiece:
    """A pipe table → Feishu's native ``table`` component (§5.5): header → columns, cells as
    markdown, alignment kept, paginated by ``page_size`` rows (at most 10)."""

    columns: tuple[tuple[str, str], ...]  # (display name, alignment)
    rows: tuple[tuple[str, ...], ...]
    page_size: int = 10
    tables: int = 1

    def element(self) -> dict[str, Any]:
        columns = []
        for index, (name, align) in enumerate(self.columns):
            column = {
                "name": f"c{index}",
                "display_name": name or " ",
                "data_type": "markdown",
                "width": "auto",
            }
            if align:
                column["horizontal_align"] = align
            columns.append(column)
        rows = [{f"c{i}": cell for i, cell in enumerate(row)} for row in self.rows]
        return {
            "tag": "table",
            "page_size": max(1, min(self.page_size, 10, len(self.rows) or 1)),
            "row_height": "auto",
            "header_style": {"bold": True, "background_style": "grey"},
            "columns": columns,
            "rows": rows,
        }

    def plain(self) -> str:
        lines = ["\t".join(name for name, _ in self.columns)]
        lines += ["\t".join(html.unescape(cell) for cell in row) for row in self.rows]
        return "\n".join(lines)

    def split(self, budget: int) -> list[Piece]:
        available = budget - wire_size(TablePiece(self.columns, (), self.page_size).element())
        parts: list[Piece] = []
        current: list[tuple[str, ...]] = []
        used = 0
        for row in self.rows:
            row = _fit_row(row, available)
            cost = wire_size({f"c{i}": c for i, c in enumerate(row)}) + 1
            if current and used + cost > available:
                parts.append(TablePiece(self.columns, tuple(current), self.page_size))
                current, used = [], 0
            current.append(row)
            used += cost
        parts.append(TablePiece(self.columns, tuple(current), self.page_size))
        return parts


@dataclass(frozen=True)
class ComponentPiece:
    """Anything that is already a finished component (``hr``, ``img``): never split."""

    component: dict[str, Any]
    tables: int = 0

    def element(self) -> dict[str, Any]:
        return self.component

    def plain(self) -> str:
        alt = self.component.get("alt", {})
        return str(alt.get("content", "")) if isinstance(alt, dict) else ""

    def split(self, budget: int) -> list[Piece]:
        return [self]


def _overhead(element: dict[str, Any]) -> int:
    return wire_size({**element, "content": ""})


def _chunk_lines(lines: list[str], budget: int) -> list[str]:
    """Join lines into chunks of at most ``budget`` bytes. A line too long for one chunk is
    cut (see ``_cut``); its parts are rejoined without a line break inside a chunk."""
    budget = max(budget, 64)
    chunks: list[str] = []
    current = ""
    used = 0
    for line in lines:
        for index, part in enumerate(_cut(line, budget)):
            joiner = "" if index else "\n"
            cost = wire_size(part) + (2 if joiner else 0)  # "\n" is 2 bytes once escaped
            if used and used + cost > budget:
                chunks.append(current)
                current, used, joiner = "", 0, ""
            current += (joiner if used else "") + part
            used += cost
    chunks.append(current)
    return chunks


def _cut(line: str, budget: int) -> list[str]:
    """Cut a line that alone exceeds ``budget``: between words when possible, and never
    inside an ``&#NN;`` entity or an HTML-like tag such as ``<font color='red'>``."""
    parts = []
    while wire_size(line) > budget:
        limit = max(1, budget // 8)  # a character costs at most 8 bytes once double-encoded
        cut = line.rfind(" ", limit // 2, limit) + 1 or limit
        tag = line.rfind("<", 0, cut)
        if tag > 0 and line.rfind(">", 0, cut) < tag:
            cut = tag
        entity = line.rfind("&", max(0, cut - 8), cut)
        if entity > 0 and ";" not in line[entity:cut]:
            cut = entity
        parts.append(line[:cut])
        line = line[cut:]
    return [*parts, line]


def _fit_row(row: tuple[str, ...], available: int) -> tuple[str, ...]:
    """A single row larger than a whole card: shorten its longest cells, visibly (a row of
    more than ~28 KB cannot be shown by Feishu at all)."""
    cells = list(row)
    while wire_size(dict(enumerate(cells))) > available:
        longest = max(range(len(cells)), key=lambda i: len(cells[i]))
        if len(cells[longest]) <= 2:
            break
        cells[longest] = cells[longest][: len(cells[longest]) // 2] + "…"
    return tuple(cells)
