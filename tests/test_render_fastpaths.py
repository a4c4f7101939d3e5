"""render/fastpaths.py: the replaced core rules make exactly the tokens of markdown-it-py's own.

Every token of every stream compared field by field (``Token.as_dict``, children included) on
all 652 CommonMark examples, the render fixtures, text built from the characters inline rules
start at, and hypothesis strings; once with the footnote rules and once without.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.rules_core import inline as stock_inline
from markdown_it.rules_core import normalize as stock_normalize

from lark_cards.render import fastpaths
from lark_cards.render.parser import build_parser

SPEC = Path(__file__).parent / "fixtures" / "commonmark" / "commonmark-0.31.2.json"
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "render").glob("*.md"))


def stock(footnotes: bool) -> MarkdownIt:
    """Our parser with markdown-it-py's own normalize and inline rules back in place."""
    md = build_parser(footnotes=footnotes)
    md.core.ruler.at("normalize", stock_normalize)
    md.core.ruler.at("inline", stock_inline)
    return md


FAST = {True: build_parser(footnotes=True), False: build_parser(footnotes=False)}
STOCK = {True: stock(True), False: stock(False)}


def tokens(md: MarkdownIt, text: str) -> list[dict[str, object]]:
    return [token.as_dict() for token in md.parse(text)]


def assert_same_tokens(text: str) -> None:
    for footnotes in (True, False):
        assert tokens(FAST[footnotes], text) == tokens(STOCK[footnotes], text), text


def documents() -> list[str]:
    texts = [path.read_text("utf-8") for path in FIXTURES]
    return texts + [example["markdown"] for example in json.loads(SPEC.read_text("utf-8"))]


def test_the_fast_rules_are_in_place():
    for md in FAST.values():
        assert md.core.ruler.getRules("")[0] is fastpaths.normalize
        assert stock_inline not in md.core.ruler.getRules("")


@pytest.mark.parametrize("text", documents())
def test_the_same_tokens_as_the_stock_rules(text):
    assert_same_tokens(text)


# Plain contents (the fast path) and contents with one rule character each (the parser).
CELLS = ["web-042.prod", "up", "12 ms", "a#b c:d=e f+g@h 50% $5 {x}", "飞书 卡片", "", " x "]
RULE_CHARACTERS = ["*", "_", "`", "~", "[", "]", "!", "<", "&", "\\", "^", "\n", ":", "{"]


@pytest.mark.parametrize("special", ["", *RULE_CHARACTERS])
def test_table_cells_and_paragraphs_with_and_without_rule_characters(special):
    rows = "\n".join(f"{cell} | {special}{cell}{special} | {cell}{special}" for cell in CELLS)
    assert_same_tokens(f"h | i | j\n--- | :-: | --:\n{rows}\n")
    assert_same_tokens("\n\n".join(f"{cell}{special}x {special}" for cell in CELLS))
    assert_same_tokens(f"# head{special}ing\n\nline one{special}\r\nline two\r\0three\0")


def test_a_parser_with_a_rule_it_does_not_know_keeps_the_stock_inline_rule():
    md = MarkdownIt("commonmark")
    md.inline.ruler.push("mention", lambda state, silent: False)
    fastpaths.install(md)
    assert stock_inline in md.core.ruler.getRules("")
    linkify = MarkdownIt("commonmark", {"linkify": True})
    fastpaths.install(linkify)
    assert stock_inline in linkify.core.ruler.getRules("")


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from([*"ab -|#:\t\r\n\0{}", *RULE_CHARACTERS, "é"]), max_size=60)
)
def test_hypothesis_text_parses_to_the_same_tokens(text):
    assert_same_tokens(text)
