"""A long reply parsed a section at a time renders exactly as when parsed whole (issue 11's
memory goal), and does so within the memory a render may take."""

from __future__ import annotations

import json
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from test_render_properties import MARKDOWN

from lark_cards.render import (
    RenderOptions,
    _reply_cards,
    parse_reply,
    render_markdown,
    render_reply,
)
from lark_cards.render.parser import parse
from lark_cards.render.plain import Preview, summary
from lark_cards.render.renderers import image_urls, render_pieces
from lark_cards.render.sections import SECTIONED_FROM, split_sections

SPEC = Path(__file__).parent / "fixtures" / "commonmark" / "commonmark-0.31.2.json"
FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.md"))
# What makes cutting hard: fences with blank lines, loose lists, quotes, indented code…
BLOCKS = [
    "# Deploy report",
    "plain words and **bold**",
    "```\ncode\n\nafter a blank line\n```",
    "~~~py\nx = 1\n\n~~~",
    "````\n```\nnot closed by three\n\n````",
    "```a`b\nnot a fence: a backtick in the info string",
    "- one\n\n- two\n\n  more of two",
    "1. first\n\n2) other list\n\n10. ten",
    "> quoted\n\n> another quote",
    "    indented code\n\n    still code",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "text\n===",
    "---",
    "line\u2028with a separator\u2028\u2028inside",
    "trailing spaces   \n\t\ntab-blank above",
]


def elements(parts: list[str]) -> list[dict]:
    return [piece.element() for part in parts for piece in render_pieces(parse(part))]


def preview(parts: list[str]) -> str:
    reading = Preview()
    for part in parts:
        reading.read(parse(part))
    return reading.text()


def check(text: str, size: int) -> None:
    parts = split_sections(text, size, shortest=0)
    assert "".join(parts) == text
    assert elements(parts) == elements([text])
    assert preview(parts) == summary(parse(text))


def documents() -> list[str]:
    texts = [path.read_text("utf-8") for path in FIXTURES]
    return texts + [example["markdown"] for example in json.loads(SPEC.read_text("utf-8"))]


@pytest.mark.parametrize("size", [1, 8, 64])
def test_every_example_and_fixture_renders_the_same_in_sections(size: int) -> None:
    cut = 0
    for text in documents():
        check(text, size)
        cut += len(split_sections(text, size, shortest=0)) > 1
    assert cut > 20 or size > 1  # cuts were really made, not only refused


@pytest.mark.parametrize("seed", range(40))
def test_generated_replies_render_the_same_in_sections(seed: int) -> None:
    rng = random.Random(seed)
    text = "\n\n".join(rng.choice(BLOCKS) for _ in range(rng.randint(5, 60)))
    for size in (1, 20, 200):
        check(text, size)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKDOWN)
def test_any_fragments_render_the_same_in_sections(text: str) -> None:
    check(text, 1)


@pytest.mark.parametrize(
    "text",
    [
        "[link][ref]\n\n" + "words\n\n" * 10 + "[ref]: https://e.com",  # a reference: global
        "note[^1]\n\n" + "words\n\n" * 10 + "[^1]: the note",  # footnotes number globally
        "<pre>\n\n" + "words\n\n" * 10 + "</pre>",  # an HTML block holds blank lines
        "- item\n  ```\n  code\n\n" + "words\n\n" * 10,  # a fence in a list item
    ],
)
def test_what_reaches_across_the_reply_is_not_cut(text: str) -> None:
    assert split_sections(text, 1, shortest=0) == [text]


def big_reply(size: int = 1024 * 1024) -> str:
    """Tables and prose, as a long !status or report would be."""
    blocks, total, n = [], 0, 0
    while total < size:
        rows = "\n".join(f"| web-{n}-{i} | **up** | {i * 7} ms |" for i in range(40))
        block = f"## Region {n}\n\nAll hosts answered in time.\n\n| host | state | p99 |\n"
        block += f"|---|---|--:|\n{rows}"
        blocks.append(block)
        total += len(block) + 2
        n += 1
    return "\n\n".join(blocks)


def test_a_1_mb_reply_renders_in_less_than_20_mb() -> None:
    text = big_reply()
    assert len(split_sections(text)) > 10
    tracemalloc.start()
    try:
        cards = render_markdown(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(cards) > 10
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_long_replies_keep_their_header_summary_and_images() -> None:
    text = "# Nightly report\n\n" + big_reply(SECTIONED_FROM) + "\n\n![chart](https://e.com/c.png)"
    assert parse_reply(text) is None  # not parsed whole, not even for the images
    assert image_urls(text) == ["https://e.com/c.png"]
    [first, *rest] = [sent.content for sent in render_reply(text)]
    assert first["header"]["title"]["content"] == "Nightly report"
    assert first["config"]["summary"]["content"] == "Nightly report"
    assert {card["header"]["title"]["content"] for card in rest} == {"Nightly report"}
    assert len(split_sections(text)) > 1
    assert [first, *rest] == whole(text)  # the same cards as from the whole parse


# Found in review: what a cut must not change.

FILLER = "".join(
    f"Paragraph {n} of the nightly report, all hosts answered.\n\n" for n in range(2000)
)


def whole(text: str) -> list[dict]:
    return [item.content for item in _reply_cards([parse(text)], None, RenderOptions())]


def test_inline_footnotes_are_numbered_across_the_whole_reply() -> None:
    # mdit's footnote plugin (enabled when "^[" appears) numbers inline notes globally and
    # lists them at the end: a reply holding "^[" is not cut (it was, found in review).
    text = "Start^[the first note]\n\n" + FILLER + "End^[the second note]\n"
    assert len(text) > SECTIONED_FROM
    assert render_markdown(text) == whole(text)


def test_a_lone_cr_line_break_before_a_fence_does_not_let_a_cut_into_the_code() -> None:
    # markdown-it reads "\r" as a line break; _FENCE_LINE / _NOT_CUT look only after "\n".
    code = "".join(f"line {n}\n\n" for n in range(9000))
    text = "Output:\r```\n" + code + "```\n\nDone."
    assert len(text) > SECTIONED_FROM
    assert render_markdown(text) == whole(text)


def test_a_lone_cr_before_an_html_block_does_not_let_a_cut_into_it() -> None:
    text = "Output:\r<pre>\n" + FILLER + "\r</pre>\n\nDone."
    assert render_markdown(text) == whole(text)
