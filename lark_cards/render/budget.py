"""Pack pieces into cards within Feishu's per-card budgets (docs/feishu-platform.md §5.4).

Limits per card: the request body ≤ 30 KB in UTF-8 bytes (230025), ≤ 200 components (300305;
counted as the validator counts them, nested objects included), ≤ 5 tables (230099; reports
differ, so every number is configurable). Pieces are placed in order; adjacent prose merges
into one ``markdown`` element to save components; a piece too large for any card is split
first; a new card starts whenever the next piece would break a budget. The template's own bytes
and components are reserved up front. A reply that bounds alone show to fit one card (most of
them) is made into it without measuring its prose (``_one_card``): the same card, less work.
"""

from __future__ import annotations

from dataclasses import dataclass

from lark_cards.render.cardspec import MAX_TABLES_PER_MARKDOWN
from lark_cards.render.pieces import (
    CodePiece,
    MarkdownPiece,
    Piece,
    TablePiece,
    has_text_line,
    wire_size,
)
from lark_cards.render.validate import count_components


@dataclass(frozen=True)
class Budget:
    """Per-card limits; ``margin`` keeps a safety distance from the byte limit."""

    max_bytes: int = 30 * 1024
    margin: int = 2 * 1024
    max_components: int = 200
    max_tables: int = 5

    def smaller(self) -> Budget:
        """The budget for a retry after Feishu rejected a card built within this one."""
        return Budget(
            max_bytes=self.max_bytes // 2,
            margin=self.margin,
            max_components=max(10, self.max_components // 4),
            max_tables=max(1, self.max_tables // 2),
        )


@dataclass
class _Card:
    pieces: list[Piece]
    size: int = 0
    tables: int = 0
    components: int = 0
    # Prose merged into ``pieces[-1]`` and not yet joined: its pieces, tables and size. A run
    # of paragraphs is joined once, when it ends, instead of one new piece per paragraph
    # (``!help`` and CJK replies are hundreds of them).
    prose: list[MarkdownPiece] | None = None
    prose_tables: int = 0
    prose_size: int = 0

    def settle(self) -> None:
        """Make the prose run merged so far the last piece: one join, measures kept."""
        if self.prose is not None and len(self.prose) > 1:
            merged = _joined(self.prose, self.prose_tables)
            merged.__dict__["_measures"] = (self.prose_size, 1)
            self.pieces[-1] = merged
        self.prose = None


def pack(
    pieces: list[Piece],
    budget: Budget,
    *,
    reserved_bytes: int = 0,
    reserved_components: int = 0,
) -> list[list[Piece]]:
    """Group ``pieces`` into cards, each within ``budget`` (pieces too big are split)."""
    available = max(1024, budget.max_bytes - budget.margin - reserved_bytes)
    max_components = max(1, budget.max_components - reserved_components)
    one_card = _one_card(pieces, available, max_components, budget.max_tables)
    if one_card is not None:
        return [one_card]
    return _placed(pieces, available, max_components, budget.max_tables)


def _placed(
    pieces: list[Piece], available: int, max_components: int, max_tables: int
) -> list[list[Piece]]:
    """The cards of ``pieces`` placed one by one, each measured, split when too big."""
    cards = [_Card([])]
    for piece in pieces:
        for part in _fitting(piece, available, max_tables):
            _place(cards, part, available, max_components, max_tables)
    cards[-1].settle()
    return [card.pieces for card in cards]


def _one_card(
    pieces: list[Piece], available: int, max_components: int, max_tables: int
) -> list[Piece] | None:
    """``pieces`` as the one card ``pack`` would make, when bounds alone show that they all
    fit (most replies): nothing is split, every run of prose is merged — and no prose or code
    is measured. On the wire a character takes at most 7 bytes (a control character,
    ``\\u001b`` escaped again), so ``_MARKDOWN_ELEMENT`` + 7 × its characters + 5 (the
    quotes, the comma) bounds a markdown element; tables and components are measured. None
    when the bounds cannot tell: ``pack`` then places the pieces one by one."""
    card: list[Piece] = []
    run: list[MarkdownPiece] = []  # consecutive prose, joined when the run ends
    bound = components = tables = run_tables = 0
    for piece in [*pieces, None]:
        if type(piece) is MarkdownPiece:
            if run:
                bound += 7 * (len(piece.joint) + len(piece.content))
                run_tables += piece.tables
            else:
                bound += _MARKDOWN_ELEMENT + 7 * len(piece.content) + 5
                components, run_tables = components + 1, piece.tables
            run.append(piece)
            if run_tables > MAX_TABLES_PER_MARKDOWN:
                return None
        else:
            if run:
                card.append(_joined(run, run_tables))
                run = []
            if piece is None:
                break
            if type(piece) is CodePiece:
                bound += _MARKDOWN_ELEMENT + 7 * len(piece.element()["content"]) + 5
                components += 1
            else:
                size, count = _measures(piece)
                bound, components = bound + size, components + count
            card.append(piece)
        tables += piece.tables
        if bound > available or components > max_components or tables > max_tables:
            return None
    return card


def _joined(run: list[MarkdownPiece], tables: int) -> MarkdownPiece:
    """A run of prose pieces as one (what merging them one by one gives)."""
    if len(run) == 1:
        return run[0]
    texts = [run[0].content]
    for piece in run[1:]:
        texts += (piece.joint, piece.content)
    return MarkdownPiece("".join(texts), tables, run[0].joint)


def _fitting(piece: Piece, available: int, max_tables: int) -> list[Piece]:
    """``piece`` as parts that each fit a card: split by bytes, and prose holding more tables
    than a card may (a retry after 230099 asks for fewer) split between its tables."""
    if isinstance(piece, MarkdownPiece) and piece.tables > max_tables:
        return piece.split(available, max_tables=max(1, min(max_tables, MAX_TABLES_PER_MARKDOWN)))
    return piece.split(available) if _too_big(piece, available) else [piece]


def _too_big(piece: Piece, available: int) -> bool:
    """Whether ``piece`` alone exceeds ``available``, measured only when bounds cannot tell:
    on the wire every character takes at least 1 byte and at most 7 (a control character,
    ``\\u001b`` escaped again), so a 1 MB log is too big and a line of prose fits unmeasured."""
    if isinstance(piece, CodePiece) and len(piece.code) > available:
        return True
    if isinstance(piece, MarkdownPiece) and 7 * len(piece.content) + _MARKDOWN_ELEMENT < available:
        return False  # its element's content is at most its content (``_standalone``)
    return _size(piece) > available


def _place(
    cards: list[_Card], piece: Piece, available: int, max_components: int, max_tables: int
) -> None:
    card = cards[-1]
    if card.prose is not None and isinstance(piece, MarkdownPiece):
        added = _JOINTS.get(piece.joint) or _text_size(piece.joint)
        added += _text_size(piece.content)  # appended to the run's text: its bytes, escaped
        if (
            card.size + added <= available
            and card.tables + piece.tables <= max_tables
            and card.prose_tables + piece.tables <= MAX_TABLES_PER_MARKDOWN
        ):
            card.prose.append(piece)
            card.prose_tables += piece.tables
            card.prose_size += added
            card.size, card.tables = card.size + added, card.tables + piece.tables
            return
    card.settle()
    last = card.pieces[-1] if card.pieces else None
    if isinstance(last, MarkdownPiece) and isinstance(piece, MarkdownPiece):
        merged, size_of_merged = _merged(last, piece)
        merged_size = card.size - _size(last) + size_of_merged
        if (
            merged_size <= available
            and card.tables + piece.tables <= max_tables
            and merged.tables <= MAX_TABLES_PER_MARKDOWN
        ):
            card.pieces[-1] = merged
            card.size, card.tables = merged_size, card.tables + piece.tables
            return
    size, components = _measures(piece)  # placed apart: measured (a merge needs no measure)
    fits = (
        card.size + size <= available
        and card.components + components <= max_components
        and card.tables + piece.tables <= max_tables
    )
    if card.pieces and not fits:
        card = _Card([])
        cards.append(card)
    card.pieces.append(piece)
    card.size += size
    card.tables += piece.tables
    card.components += components
    if isinstance(piece, MarkdownPiece) and _appendable(piece):
        card.prose, card.prose_tables, card.prose_size = [piece], piece.tables, size


def _appendable(piece: MarkdownPiece) -> bool:
    """Whether text appended to ``piece`` adds just its own escaped bytes to the element: its
    content is the element's as it is (``_standalone`` rewrites a leading list indentation,
    found on the first line with text — which must then be in ``piece`` itself)."""
    return piece.element()["content"] is piece.content and has_text_line(piece.content)


def _text_size(text: str) -> int:
    """The bytes ``text`` adds inside a JSON string on the wire (``wire_size`` less the
    quotes': the measure is additive)."""
    return wire_size(text) - _EMPTY_STRING


def _size(piece: Piece) -> int:
    return _measures(piece)[0]


def _components(piece: Piece) -> int:
    return _measures(piece)[1]


def _measures(piece: Piece) -> tuple[int, int]:
    """``(bytes, components)`` of the piece's element — its wire size + 1 (the comma between
    elements) and its components as the validator counts them — measured on one element,
    once: pieces are immutable, so the measures are kept on them (``pack`` asks again for
    every piece it merges or places; a table's element is costly to build)."""
    kept = getattr(piece, "__dict__", None)
    if kept is not None and "_measures" in kept:
        measures: tuple[int, int] = kept["_measures"]
        return measures
    if isinstance(piece, TablePiece):  # no tagged object inside: columns, rows, styles
        measures = (piece.measured() + 1, 1)
    else:
        element = piece.element()
        content = element.get("content")
        if len(element) == 2 and element.get("tag") == "markdown" and type(content) is str:
            # prose and code, most pieces: the content's size plus the rest's, one component
            measures = (_MARKDOWN_ELEMENT + wire_size(content) + 1, 1)
        else:
            components = count_components({"body": {"elements": [element]}})
            measures = (wire_size(element) + 1, components)
    if kept is not None:
        kept["_measures"] = measures
    return measures


def _merged(last: MarkdownPiece, piece: MarkdownPiece) -> tuple[MarkdownPiece, int]:
    """``last`` and ``piece`` as one prose piece, and its size. Appending text to a JSON
    string adds exactly that text's escaped bytes, so the size is arithmetic unless the
    merged element's content is not the merged text (``MarkdownPiece.element`` rewrites a
    leading list indentation, which may reach into ``piece``)."""
    merged = last.merged(piece)
    if merged.element()["content"] is merged.content:  # nothing rewritten: the text as is
        added = wire_size(piece.joint + piece.content) - _EMPTY_STRING
        merged.__dict__["_measures"] = (_size(last) + added, 1)
    return merged, _size(merged)


_EMPTY_STRING = wire_size("")  # the two quotes, escaped
_JOINTS = {joint: _text_size(joint) for joint in ("\n\n", "\n", "\n>\n")}  # the usual ones
_MARKDOWN_ELEMENT = wire_size({"tag": "markdown", "content": ""}) - _EMPTY_STRING
