"""One golden case per construct: Errbot markdown in, card body elements out.

The cases live in ``fixtures/render/*.md`` in markdown-it's fixture format (title, ``.``,
markdown, ``.``, expected JSON, ``.``) so a reviewer reads input and output side by side.
``LARK_REGEN=1`` rewrites the expected parts after a deliberate change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from markdown_it.utils import read_fixture_file

from lark_cards.render import render_markdown
from lark_cards.render.validate import validate_card

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "render").glob("*.md"))
IMAGES = {"https://example.com/chart.png": "img_v3_chart"}


def elements(markdown: str) -> list[dict]:
    cards = render_markdown(markdown, images=IMAGES)
    for card in cards:
        assert validate_card(card) == []
    return [element for card in cards for element in card["body"]["elements"]]


def _regenerate(path: Path) -> None:
    out = []
    for _, title, markdown, _ in read_fixture_file(path):
        expected = json.dumps(elements(markdown), ensure_ascii=False, indent=2)
        out.append(f"{title}\n.\n{markdown}.\n{expected}\n.\n")
    path.write_text("\n".join(out), encoding="utf-8")


if os.environ.get("LARK_REGEN"):
    for fixture in FIXTURES:
        _regenerate(fixture)

CASES = [
    pytest.param(markdown, expected, id=f"{path.stem}:{line}:{title}")
    for path in FIXTURES
    for line, title, markdown, expected in read_fixture_file(path)
]


@pytest.mark.parametrize(("markdown", "expected"), CASES)
def test_construct(markdown: str, expected: str):
    if os.environ.get("LARK_REGEN"):
        pytest.skip("fixture files regenerated: review the diff; nothing was compared")
    assert elements(markdown) == json.loads(expected)
