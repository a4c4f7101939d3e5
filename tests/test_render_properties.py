"""Hypothesis: whatever markdown a plugin produces, the renderer never crashes, never breaks a
budget and never loses a word."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from render_checks import check_cards, words

from lark_cards.render import Budget, RenderOptions, render_markdown
from lark_cards.render.cardspec import CardLimits
from lark_cards.render.pieces import wire_size
from lark_cards.render.syntax import LINE_BREAKING
from lark_cards.render.validate import count_components, count_tables, validate_card

WORD = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
# fmt: off
SYNTAX = [
    " ", "\n", "\n\n", "    ", "**", "*", "_", "~~", "`", "```\n", "```python\n",
    "# ", "## ", "- ", "1. ", "7) ", "> ", "---\n", "| a | b |\n|---|:-:|\n| 1 | 2 |\n",
    "[x](https://e.com/p?q=1)", "![i](https://e.com/i.png)", "{:color='red'}",
    "{:color='yellow' bgcolor='cyan'}", "<br/>", "&lt;", "&amp;", "&#39;", "<b>", "\\",
    "[", "]", "(", ")", "<", ">", "|", "#", ":OK:", "&", "中文", "😀", "\t",
    "&#13;", "&#8232;", "  | c |\n  |---|\n  | 3 |\n",
]
# fmt: on
FRAGMENTS = st.one_of(WORD, WORD.map(lambda w: w + " "), st.sampled_from(SYNTAX))
MARKDOWN = st.lists(FRAGMENTS, max_size=80).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN)
def test_markdown_from_errbot_like_fragments(markdown):
    check_cards(markdown, render_markdown(markdown))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_at_all(markdown):
    check_cards(markdown, render_markdown(markdown))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN)
@example("- | a |\n  |---|\n  | 1 &#13; |\n\n  | b |\n  |---|\n  | 2 |\n")  # lost to recursion once
def test_rendered_prose_has_no_line_break_but_newlines(markdown):
    """A CR, LS or PS (an entity in a reply decodes to one) left raw in prose would be a line
    break to the table scanner and the splitter, and not to the renderer."""
    for card in render_markdown(markdown, options=RenderOptions(budget=SMALL)):
        for element in card["body"]["elements"]:
            content = element.get("content", "")
            if element["tag"] == "markdown" and "```" not in content:
                assert not set(content) & set(LINE_BREAKING), content


SMALL = Budget(max_bytes=3 * 1024, margin=256, max_components=6, max_tables=1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS, min_size=20, max_size=300).map("".join))
@example("000000000000000000{:color='red'}<br/>")  # found by hypothesis: attr list before <br>
@example("000000000000000000[x](https://e.com/p?q=1){:color='red'}")  # a coloured link
@example("0000000000\\![i](https://e.com/i.png)00000000")  # "!" + link must not be an image
@example("000000000000000<b>\\| a | b |\n|---|:-:|\n| 1 | 2 |\n00")  # HTML in a column name
def test_every_card_respects_a_tight_budget(markdown):
    cards = render_markdown(markdown, options=RenderOptions(budget=SMALL))
    for card in cards:
        assert wire_size(card) <= SMALL.max_bytes
        assert count_components(card) <= SMALL.max_components
        assert count_tables(card) <= SMALL.max_tables
        assert validate_card(card, CardLimits(SMALL.max_bytes, 200, 5)) == []
    check_cards(markdown, cards)


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.integers(min_value=50, max_value=250))
def test_large_tables_and_logs_split_without_loss(tables, rows):
    table = "| host | state |\n|---|---|\n" + "".join(f"| h{i} | ok{i} |\n" for i in range(rows))
    log = "```\n" + "".join(f"line {i} " + "x" * 80 + "\n" for i in range(rows * 4)) + "```\n"
    markdown = "\n".join([table] * tables + [log])
    check_cards(markdown, render_markdown(markdown))


def test_the_word_check_catches_a_loss():
    with pytest.raises(AssertionError, match="lost"):
        check_cards("hello brave world", render_markdown("hello world"))
    assert words("a*b c_d") == ["a", "b", "c", "d"]
