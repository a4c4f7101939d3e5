"""render/tree.py builds the tree markdown-it-py's SyntaxTreeNode would, in one pass, down to
the ``inline`` nodes, whose content stays markdown-it's flat token list (``inline_tokens``).

Compared node by node on all 652 CommonMark examples and the render fixtures: the same types,
the same children in the same order, the same token behind every node; below an ``inline``
node, the very token list markdown-it made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it.tree import SyntaxTreeNode

from lark_cards.render.parser import build_parser
from lark_cards.render.tree import Node, build_tree

SPEC = Path(__file__).parent / "fixtures" / "commonmark" / "commonmark-0.31.2.json"
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "render").glob("*.md"))
PARSER = build_parser()


def shape(node: Any, *, ours: bool) -> tuple[Any, ...]:
    if ours:
        token = None if node.type == "root" else node.token  # the root's token is a blank
    else:
        token = node.token or (node.nester_tokens.opening if node.nester_tokens else None)
    if node.type == "inline":  # ours: the token list itself; theirs: a node per token
        below = node.inline_tokens if ours else token.children
        assert not ours or not node.children
        return (node.type, id(token), tuple(id(child) for child in below))
    children = tuple(shape(child, ours=ours) for child in node.children)
    return (node.type, id(token) if token is not None else None, children)


def documents() -> list[str]:
    texts = [path.read_text("utf-8") for path in FIXTURES]
    return texts + [example["markdown"] for example in json.loads(SPEC.read_text("utf-8"))]


def test_there_is_something_to_compare():
    assert len(documents()) == len(FIXTURES) + 652


@pytest.mark.parametrize("text", documents())
def test_the_same_tree_as_markdown_its_own(text):
    tokens = PARSER.parse(text)
    assert shape(build_tree(tokens), ours=True) == shape(SyntaxTreeNode(tokens), ours=False)


def test_walk_is_depth_first_in_document_order():
    tree = build_tree(PARSER.parse("# Title\n\n- a **b**\n- c\n"))
    assert [n.type for n in tree.walk()][:6] == [
        "root",
        "heading",
        "inline",
        "bullet_list",
        "list_item",
        "paragraph",
    ]
    assert [t.type for t in tree.children[0].children[0].inline_tokens] == ["text"]
    assert tree.children[0].inline_tokens == []  # only inline nodes have inline tokens
    assert isinstance(tree, Node)
    assert (tree.content, tree.children[0].content) == ("", "")  # the root's token is blank


def stream(tokens: Any) -> list[Any]:
    return [
        (t.type, t.tag, t.nesting, t.content, t.attrs, t.map, t.info, t.meta, stream(t.children))
        for t in tokens or []
    ]


PLAIN = build_parser(footnotes=False)
FOOTNOTE_SYNTAX = ("[^", "^[")


def test_without_footnote_syntax_the_plain_parser_gives_the_same_tokens():
    """parse() leaves the footnote rules out for texts without ``[^`` or ``^[``."""
    compared = 0
    for text in documents():
        if not any(mark in text for mark in FOOTNOTE_SYNTAX):
            assert stream(PLAIN.parse(text)) == stream(PARSER.parse(text)), text
            compared += 1
    assert compared > 600


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="[]^*_`#>-|:!\n ab1.", max_size=120))
def test_the_plain_parser_on_generated_text(text):
    if not any(mark in text for mark in FOOTNOTE_SYNTAX):
        assert stream(PLAIN.parse(text)) == stream(PARSER.parse(text))


@pytest.mark.parametrize(
    "text", [*documents()[:80], "- a\n\n  | x |\n  |---|\n  | 1 |\n", "> | y |\n> |---|\n"]
)
def test_holds_table_marks_exactly_the_ancestors_of_tables(text):
    for node in build_tree(PARSER.parse(text)).walk():
        below = any(n.type == "table" for n in node.walk() if n is not node)
        assert node.holds_table == below, (node, text)
