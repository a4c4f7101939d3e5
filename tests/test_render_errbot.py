"""Errbot's own outputs, rendered: ``!render test`` and the core plugins' replies.

The fixtures in ``tests/fixtures/errbot/`` are raw markdown bodies captured from Errbot's
``TestBot`` by ``tests/fixtures/errbot/capture.py`` (see its docstring to re-capture); the
``!render test`` document is read from the installed Errbot. Each must render to cards Feishu
accepts, within the 30 KB request limit, and match its golden file. The live test renders what
the installed Errbot answers to ``!help`` and ``!status`` now, so an Errbot upgrade that
changes its templates is caught even before the fixtures are re-captured.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import errbot
import pytest
from golden import check_golden

from lark_cards.render import render_markdown
from lark_cards.render.pieces import wire_size
from lark_cards.render.validate import validate_card

FIXTURES = Path(__file__).parent / "fixtures" / "errbot"
RENDER_TEST = Path(errbot.__file__).parent / "core_plugins" / "test.md"
MAX_WIRE_BYTES = 30 * 1024


def _load_capture() -> ModuleType:
    spec = importlib.util.spec_from_file_location("errbot_capture", FIXTURES / "capture.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documents() -> dict[str, Path]:
    documents = {"render_test": RENDER_TEST}
    documents.update({path.stem: path for path in sorted(FIXTURES.glob("*.md"))})
    return documents


DOCUMENTS = _documents()


def assert_sendable(cards: list[dict]) -> None:
    assert cards, "no card at all"
    for number, card in enumerate(cards, start=1):
        assert validate_card(card) == [], f"card {number} of {len(cards)}"
        assert wire_size(card) <= MAX_WIRE_BYTES, f"card {number} of {len(cards)}"


def test_fixtures_are_captured() -> None:
    capture = _load_capture()
    assert set(capture.COMMANDS) <= set(DOCUMENTS), "run tests/fixtures/errbot/capture.py"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_errbot_output_renders(name: str) -> None:
    text = DOCUMENTS[name].read_text(encoding="utf-8")
    cards = render_markdown(text)
    assert_sendable(cards)
    check_golden(f"errbot_{name}", cards)


def test_installed_errbot_help_and_status_render(tmp_path: Path) -> None:
    capture = _load_capture()
    commands = {"help": "!help", "status": "!status"}
    replies = capture.run_commands(commands, tmp_path)
    for name, command in commands.items():
        parts = replies[name]
        assert parts, f"{command}: Errbot sent nothing"
        for body in parts:
            assert body.strip(), f"{command}: empty reply"
            assert_sendable(render_markdown(body))
