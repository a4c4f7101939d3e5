"""The units a card is packed from, each knowing its card component and how to split itself.

A reply can be far larger than one card (logs, 200-row tables). Splitting happens on these
pieces, never on raw text: prose splits between lines, a code block splits between lines with
its fence repeated on every part, a table splits between rows with its header repeated, so each
part stays valid markdown / a valid component (docs/feishu-platform.md §5.4). Prose also
splits between the pipe tables nested in it, at most four to a part (§5.4, 230099).
"""

from __future__ import annotations

import copy
import functools
import html
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CodePiece",
    "ComponentPiece",
    "MarkdownPiece",
    "Piece",
    "TablePiece",
    "has_text_line",
    "wire_size",
]

from lark_cards.render.cardspec import MAX_TABLES_PER_MARKDOWN
from lark_cards.render.lines import chunk_lines, cut_line, wire_size
from lark_cards.render.scan import markdown_tables, pipe_tables
from lark_cards.render.syntax import fenced_code


class Piece(Protocol):
    """What a card is packed from: its component, its words, and how it splits."""

    @property
    def tables(self) -> int:
        """How many tables the piece holds (each counts toward the card's table limit)."""
        ...

    def element(self) -> dict[str, Any]:
        """The card component (``body.elements`` item) the piece becomes: a new object on
        every call, so a card may hold it and whoever sends the card may change it."""
        ...

    def plain(self) -> str:
        """The words of the piece as plain text (the last-resort fallback when Feishu rejects
        every card form of it)."""
        ...

    def split(self, budget: int) -> list[Piece]:
        """Pieces whose elements each take at most ``budget`` bytes (``wire_size``)."""
        ...


@dataclass(frozen=True)
class MarkdownPiece:
    """Prose: headings, paragraphs, lists, quotes → one ``markdown`` element.

    ``content`` is the text as it stands in the whole reply, so pieces cut from one block merge
    back into the same text (``joint`` is what separated the piece from the one before it). A
    piece that continues a list item starts with the item's indentation, which would make it a
    code block in an element of its own, so ``element`` drops it there (``_standalone``).
    """

    content: str
    tables: int = 0  # markdown pipe tables nested in lists or quotes still count (§5.4)
    joint: str = "\n\n"

    @classmethod
    def of(cls, content: str, joint: str = "\n\n") -> MarkdownPiece:
        """A piece with its tables counted the way the validator counts them."""
        return cls(content, markdown_tables(content), joint)

    def element(self) -> dict[str, Any]:
        return {"tag": "markdown", "content": _standalone(self.content)}

    def plain(self) -> str:
        text = _standalone(self.content)
        return html.unescape(re.sub(r"</?(?:font|text_tag|at)[^>]*>", "", text))

    def merged(self, other: MarkdownPiece) -> MarkdownPiece:
        content = f"{self.content}{other.joint}{other.content}"
        return MarkdownPiece(content, self.tables + other.tables, self.joint)

    def split(self, budget: int, max_tables: int = MAX_TABLES_PER_MARKDOWN) -> list[Piece]:
        """Parts of at most ``budget`` bytes and ``max_tables`` pipe tables each — a part with
        that many tables ends after the last, however small it is — with their tables counted
        again (``markdown_tables``). A table cut between rows repeats its header rows."""
        parts: list[Piece] = []
        chunks = _markdown_chunks(self.content, budget - _overhead(self.element()), max_tables)
        for index, (joint, chunk) in enumerate(chunks):
            part = MarkdownPiece.of(chunk, self.joint if index == 0 else joint)
            if part.tables > max_tables and len(chunks) > 1 and len(chunk) < len(self.content):
                # Cut inside a fence, code became prose that holds tables: split again — only
                # what is smaller (a part that repeats its table's header rows may not be), so
                # the splitting ends; a part left with too many tables goes as it is.
                parts += part.split(budget, max_tables)
            else:
                parts.append(part)
        return parts


@dataclass(frozen=True)
class CodePiece:
    """A fenced code block; every part is fenced again with the same language."""

    language: str
    code: str
    tables: int = 0

    def element(self) -> dict[str, Any]:
        return {"tag": "markdown", "content": self._fenced}

    @functools.cached_property
    def _fenced(self) -> str:
        return fenced_code(self.language, self.code)  # a scan of the whole code: once

    def plain(self) -> str:
        return self.code

    def split(self, budget: int) -> list[Piece]:
        fence_cost = wire_size(CodePiece(self.language, "").element())
        lines = self.code.rstrip("\n").split("\n")
        return [
            CodePiece(self.language, chunk) for chunk in chunk_lines(lines, budget - fence_cost)
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
        spare = self.__dict__.pop("_spare", None)  # built to be measured, held by nobody
        return spare if spare is not None else self._element()

    def measured(self) -> int:
        """``wire_size(self.element())``; that element is kept for the next ``element()``
        call (the card's), so a table is built once to be measured and sent."""
        element = self._element()
        self.__dict__["_spare"] = element
        return wire_size(element)

    def _element(self) -> dict[str, Any]:
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
        names = [column["name"] for column in columns]  # one key string per column, not per cell
        rows = [dict(zip(names, row, strict=False)) for row in self.rows]
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
        return _copied(self.component)  # a new one per call, as every piece's element

    def plain(self) -> str:
        alt = self.component.get("alt", {})
        return str(alt.get("content", "")) if isinstance(alt, dict) else ""

    def split(self, budget: int) -> list[Piece]:
        return [self]


def _copied(value: Any) -> Any:
    """A deep copy of a component: its dicts, lists and scalars without ``copy.deepcopy``'s
    memo and dispatch (3-4× faster on an ``img``); anything else (a plugin's button may hold
    its own types) through ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: _copied(item) for key, item in value.items()}
    if kind is list:
        return [_copied(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _overhead(element: dict[str, Any]) -> int:
    return wire_size({**element, "content": ""})


_LINE_BREAK = re.compile(r"\r\n|[\n\r]")


def _markdown_chunks(content: str, budget: int, max_tables: int) -> list[tuple[str, str]]:
    """``content`` cut between lines into ``(joint, chunk)`` pairs of at most ``budget`` bytes
    and ``max_tables`` pipe tables each. A table's header and delimiter rows stay together, and
    a chunk that starts among a table's rows starts with a copy of them (and its joint is a
    blank line); apart from those, the joints and chunks concatenated give back ``content``."""
    budget, max_tables = max(budget, 64), max(max_tables, 1)
    lines = content.splitlines(keepends=True)
    tables = pipe_tables(content)  # the validator's own scan: the counts cannot disagree
    headers = {header for header, _, _ in tables}
    rows = {row: (h, d) for h, d, end in tables for row in range(d + 1, end)}
    # A chunk with enough tables ends where its last table does: what follows, up to the next
    # table, most likely introduces that one.
    ends = {end for (_, _, end), (header, _, _) in itertools.pairwise(tables) if end <= header}
    chunks: list[list[str]] = [[]]
    used = count = 0
    for number, part, at_line_start in _units(lines, headers, budget):
        cost = wire_size(part) + 2
        starts_table = at_line_start and number in headers
        full = at_line_start and (starts_table or number in ends) and count >= max_tables
        if chunks[-1] and (used + cost > budget or full):
            chunks.append([])
            used = count = 0
            header, delimiter = rows.get(number, (None, None)) if at_line_start else (None, None)
            if header is not None and delimiter is not None:
                repeated = lines[header] + lines[delimiter]
                if wire_size(repeated) <= budget // 2:
                    # Merged again, the parts stay two tables: a blank line (in the quote) first.
                    quotes = lines[header][: -len(lines[header].lstrip(" \t>"))].count(">")
                    chunks[-2].append(">" * quotes + "\n")
                    chunks[-1].append(repeated)
                    used, count = wire_size(repeated) + 2, 1
        chunks[-1].append(part)
        used += cost
        count += starts_table
    return _joints(["".join(chunk) for chunk in chunks])


def _units(lines: list[str], headers: set[int], budget: int) -> Iterator[tuple[int, str, bool]]:
    """``(line number, text, whether it starts the line)``: a table's header row with its
    delimiter row, any other line, or the parts of a line too long for one chunk."""
    number = 0
    while number < len(lines):
        line = lines[number]
        if number in headers and wire_size(pair := line + lines[number + 1]) + 2 <= budget:
            yield number, pair, True
            number += 2
            continue
        body = _LINE_BREAK.split(line, maxsplit=1)[0]
        parts = cut_line(body, budget) if wire_size(line) + 2 > budget else [body]
        parts[-1] += line[len(body) :]
        for index, part in enumerate(parts):
            yield number, part, index == 0
        number += 1


def _joints(chunks: list[str]) -> list[tuple[str, str]]:
    """Pair every chunk with the text that joins it to the chunk before: the line break, and
    any blank lines, at the cut. A chunk left with nothing but blank lines joins the joint."""
    pairs: list[tuple[str, str]] = []
    joint = ""
    for index, chunk in enumerate(chunks):
        lines = chunk.splitlines(keepends=True)
        first, last = 0, len(lines)
        while index and first < last and _blank(lines[first]):
            first += 1
        cut_after = index < len(chunks) - 1
        while cut_after and last > first and _blank(lines[last - 1]):
            last -= 1
        head, body = "".join(lines[:first]), "".join(lines[first:last])
        if cut_after:
            body = body.removesuffix("\n").removesuffix("\r")
        tail = chunk[len(head) + len(body) :]
        if body:
            pairs.append((joint + head, body))
            joint = tail
        else:
            joint += chunk
    return pairs or [("", "".join(chunks))]


def _blank(line: str) -> bool:
    """A blank line, or in a quote one with nothing but its markers."""
    return not line.strip(" \t>\r\n")


# A list item's continuation lines are indented four spaces (``renderers._list_item``), quote
# lines start with "> "; a line's container prefix is a run of those tokens.
_CONTAINER_TOKEN = re.compile(r"    |> ")
_CONTAINER_START = frozenset(" \t>\r\n")  # a first character that leaves a prefix possible
_FIRST_TEXT_LINE = re.compile(r"^[ \t>]*[^ \t>\r\n].*", re.MULTILINE)


def _tokens(line: str) -> list[str]:
    tokens: list[str] = []
    at = 0
    while match := _CONTAINER_TOKEN.match(line, at):
        tokens.append(match.group())
        at = match.end()
    return tokens


def has_text_line(content: str) -> bool:
    """Whether ``content`` holds the line ``_standalone`` reads a prefix from (its first line
    with text): then text appended to it cannot change what ``_standalone`` does."""
    return _FIRST_TEXT_LINE.search(content) is not None


def _standalone(content: str) -> str:
    """``content`` without the list indentation its first line has, so that a piece cut from a
    list item shows as what it is (a table, a paragraph), not as an indented code block.

    The first non-blank line's container prefix loses its indentation and keeps its quote
    markers; the lines after it lose the same for as long as they stay inside those containers
    (a line outside one, such as the next list item, means no later line is inside it).
    """
    if content[:1] not in _CONTAINER_START:
        return content  # text from the first character on: no container prefix (most pieces)
    first = _FIRST_TEXT_LINE.search(content)
    prefix = _tokens(first.group()) if first else []
    if "    " not in prefix:
        return content
    out = []
    depth = len(prefix)  # how many of the prefix's containers the lines are still inside
    for line in content.splitlines(keepends=True):
        if _blank(line):  # only its quote markers matter
            out.append(line.lstrip(" \t"))
            continue
        matched = at = 0
        while matched < depth and line.startswith(prefix[matched], at):
            at += len(prefix[matched])
            matched += 1
        depth = matched
        out.append("".join(t for t in prefix[:matched] if t != "    ") + line[at:])
    return "".join(out)


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
