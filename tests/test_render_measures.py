"""The renderer's arithmetic shortcuts agree with the slow, obvious measures they replace
(issue 11): sizes without JSON encoding, component counts without walking, the shipped reply
card without jinja2."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_render_properties import MARKDOWN

from lark_cards.render import RenderOptions, render_markdown
from lark_cards.render.budget import _measures, _one_card, _placed
from lark_cards.render.builtin import reply_card
from lark_cards.render.lines import chunk_lines, wire_size
from lark_cards.render.pieces import CodePiece, MarkdownPiece, TablePiece
from lark_cards.render.renderers import RenderContext, render_pieces
from lark_cards.render.templates import CardTemplates
from lark_cards.render.validate import count_components


def encoded_size(value: Any) -> int:
    """The definition: compact JSON, encoded again as the inside of a JSON string (the
    request's ``"content": "…"``), in UTF-8 bytes."""
    card_json = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(json.dumps(card_json, ensure_ascii=False).encode()) - 2


# Every character JSON escapes one way or another, and some it leaves alone.
SPECIAL = st.sampled_from(list('"\\\n\t\r\b\f\x00\x1b\x1f\x7f\u2028 a中🎉'))
TEXT = st.lists(st.one_of(SPECIAL, st.characters(exclude_categories=("Cs",))), max_size=60)


@settings(max_examples=500)
@given(TEXT.map("".join))
def test_string_sizes_are_the_double_encoding(text: str) -> None:
    assert wire_size(text) == encoded_size(text)
    assert wire_size({"tag": "markdown", "content": text}) == encoded_size(
        {"tag": "markdown", "content": text}
    )


@settings(max_examples=200)
@given(st.lists(TEXT.map("".join).map(lambda s: s.replace("\n", " ")), max_size=40))
def test_log_lines_chunk_within_the_budget(lines: list[str]) -> None:
    for chunk in chunk_lines(lines, 200):
        assert encoded_size(chunk) <= 200
    assert "\n".join(chunk_lines(lines, 10**6)) == "\n".join(lines)


CELLS = st.lists(st.text(max_size=8), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN, st.lists(CELLS, max_size=6), TEXT.map("".join))
def test_piece_measures_are_the_validators(markdown: str, rows: list[list[str]], code: str) -> None:
    pieces = [
        *render_pieces(markdown, RenderContext()),
        TablePiece(tuple((f"h{i}", "") for i in range(4)), tuple(tuple(r) for r in rows)),
        CodePiece("python", code),
        MarkdownPiece.of(markdown),
    ]
    for piece in pieces:
        element = piece.element()
        card = {"body": {"elements": [element]}}
        assert _measures(piece) == (encoded_size(element) + 1, count_components(card))


def elements(cards: list[list[Any]]) -> list[list[dict[str, Any]]]:
    return [[piece.element() for piece in card] for card in cards]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(MARKDOWN, TEXT.map("".join), TEXT.map("".join).map(lambda c: f"```\n{c}\n```")),
        max_size=8,
    ),
    st.integers(40, 2048),
    st.integers(1, 12),
    st.integers(1, 6),
)
def test_one_card_by_bounds_is_the_card_placing_one_by_one_makes(
    texts: list[str], available: int, max_components: int, max_tables: int
) -> None:
    """``pack`` skips measuring when bounds show a reply fits one card; what it then makes
    must be what measuring and placing every piece makes, and fit."""
    pieces = [piece for text in texts for piece in render_pieces(text, RenderContext())]
    quick = _one_card(pieces, available, max_components, max_tables)
    if quick is None:
        return
    assert elements([quick]) == elements(_placed(pieces, available, max_components, max_tables))
    assert sum(encoded_size(element) + 1 for element in elements([quick])[0]) <= available


LINES = st.lists(
    st.sampled_from(["a", "    w", "    \r    a", "> q", "    > - x", "", "   ", "\t", "中"]),
    min_size=1,
    max_size=4,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(LINES, st.sampled_from(["\n\n", "\n", "\n>\n", ""])), max_size=12),
    st.integers(64, 600),
)
def test_kept_measures_are_the_measures_of_the_pieces_sent(
    texts: list[tuple[str, str]], available: int
) -> None:
    """Prose merged by arithmetic keeps its size on the piece; it must be what measuring the
    piece gives — also when a leading list indentation (``_standalone``) is in play."""
    pieces: list[Any] = [MarkdownPiece(text, 0, joint) for text, joint in texts]
    for card in _placed(pieces, available, 200, 5):
        for piece in card:
            fresh = MarkdownPiece(piece.content, piece.tables, piece.joint)
            assert _measures(piece) == _measures(fresh)


def test_one_card_by_bounds_is_taken_for_a_short_reply_and_not_for_a_long_one() -> None:
    short = render_pieces("# a\n\nb **c**\n\n| x |\n|---|\n| 1 |\n\nd", RenderContext())
    assert _one_card(short, 28_000, 200, 5) is not None
    long = render_pieces("word " * 1000, RenderContext())
    assert _one_card(long, 4_000, 200, 5) is None
    assert _one_card(short, 28_000, 2, 5) is None  # more components than a card may hold


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN, st.text(max_size=40), st.integers(1, 12), st.integers(1, 12))
def test_the_builtin_reply_card_is_the_shipped_template(
    markdown: str, summary: str, part: int, parts: int
) -> None:
    elements = [piece.element() for piece in render_pieces(markdown, RenderContext())]
    context = {"elements": elements, "summary": summary, "part": part, "parts": parts}
    jinja = CardTemplates().render("reply", context)
    assert reply_card(elements, summary, part, parts) == jinja


def test_a_user_reply_template_still_goes_through_jinja(tmp_path: Any) -> None:
    (tmp_path / "reply.json.j2").write_text(
        '{"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": "Bot"}},'
        ' "body": {"elements": {{ elements }}}}'
    )
    assert CardTemplates().shipped("reply")
    assert not CardTemplates(tmp_path).shipped("reply")
    assert CardTemplates(tmp_path).shipped("card")  # only the file that exists overrides
    [card] = render_markdown("**hi**", options=RenderOptions(templates_dir=str(tmp_path)))
    assert card["header"]["title"]["content"] == "Bot"
    assert card["body"]["elements"] == [{"tag": "markdown", "content": "**hi**"}]


def test_every_element_is_a_new_object() -> None:
    """The builtin card holds the pieces' elements themselves (no JSON round trip copies
    them), so a sender editing one card must not edit another or the piece kept for a retry."""
    text = "a\n\n---\n\n![i](https://e.com/i.png)\n\n| a |\n|---|\n| 1 |\n\n```\nx\n```"
    pieces = render_pieces(text, RenderContext(images={"https://e.com/i.png": "img_1"}))
    assert len(pieces) == 5
    for piece in pieces:
        assert piece.element() is not piece.element()
        assert piece.element() == piece.element()
