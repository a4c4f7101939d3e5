"""One golden case per construct: Errbot markdown in, card body elements out.

The cases live in ``fixtures/render/*.md`` in markdown-it's fixture format (title, ``.``,
markdown, ``.``, expected JSON, ``.``) so a reviewer reads input and output side by side.
``LARK_REGEN=1`` rewrites the expected parts after a deliberate change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden import regenerate
from markdown_it.utils import read_fixture_file

from lark_cards.render import RenderOptions, render_markdown
from lark_cards.render.validate import validate_card

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "render").glob("*.md"))
IMAGES = {"https://example.com/chart.png": "img_v3_chart"}


# Constructs as body elements: a leading heading stays one (the header it becomes by default
# is tested in tests/test_render_header.py).
OPTIONS = RenderOptions(heading_as_header=False)


def elements(markdown: str) -> list[dict]:
    cards = render_markdown(markdown, images=IMAGES, options=OPTIONS)
    for card in cards:
        assert validate_card(card) == []
    return [element for card in cards for element in card["body"]["elements"]]


def _with_expected(path: Path, index: int, actual: list[dict]) -> str:
    """The fixture file with case ``index``'s expected part replaced by ``actual``."""
    out = []
    for number, (_, title, markdown, expected) in enumerate(read_fixture_file(path)):
        if number == index:
            expected = json.dumps(actual, ensure_ascii=False, indent=2)
        out.append(f"{title}\n.\n{markdown}.\n{expected.removesuffix(chr(10))}\n.\n")
    return "\n".join(out)


CASES = [
    pytest.param(path, index, markdown, expected, id=f"{path.stem}:{line}:{title}")
    for path in FIXTURES
    for index, (line, title, markdown, expected) in enumerate(read_fixture_file(path))
]


@pytest.mark.parametrize(("path", "index", "markdown", "expected"), CASES)
def test_construct(path: Path, index: int, markdown: str, expected: str):
    actual = elements(markdown)
    regenerate(path, _with_expected(path, index, actual))
    assert actual == json.loads(expected)
