"""All 652 CommonMark spec examples render to valid cards that keep their words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from render_checks import check_cards

from lark_cards.render import render_markdown

SPEC = json.loads(
    (Path(__file__).parent / "fixtures" / "commonmark" / "commonmark-0.31.2.json").read_text()
)


def test_the_whole_spec_is_here():
    assert len(SPEC) == 652


@pytest.mark.parametrize("example", SPEC, ids=lambda e: f"{e['example']}-{e['section']}")
def test_commonmark_example(example):
    markdown = example["markdown"]
    check_cards(markdown, render_markdown(markdown))
