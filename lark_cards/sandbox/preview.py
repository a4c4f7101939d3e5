"""Preview mode: markdown → the cards ``send_message`` would send, with their budget figures.

It calls :func:`lark_cards.render.render_markdown`, the function the backend's ``send_message``
uses, and judges each card with the project's validator, so a template author sees here
exactly what Feishu would get — and whether Feishu would take it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import errbot

from lark_cards.render import render_markdown
from lark_cards.render.cardspec import CardLimits
from lark_cards.render.validate import card_size, count_components, count_tables, validate_card

SAMPLES_DIR = Path(__file__).parent / "static" / "samples"


def preview(markdown: str, *, image_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The cards for ``markdown`` and, for each, bytes / components / tables and problems."""
    limits = CardLimits()  # Feishu's per-card limits (§5.4)
    return {
        "cards": [_figures(card, image_keys) for card in render_markdown(markdown)],
        "limits": {
            "bytes": limits.max_bytes,
            "components": limits.max_components,
            "tables": limits.max_tables,
        },
    }


def _figures(card: dict[str, Any], image_keys: frozenset[str]) -> dict[str, Any]:
    problems = validate_card(card, known_image_keys=image_keys)
    return {
        "card": card,
        "bytes": card_size(card),
        "components": count_components(card),
        "tables": count_tables(card),
        "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in problems],
    }


def samples() -> list[dict[str, str]]:
    """Markdown documents to pick from: Errbot's own ``!render test`` and the sandbox's."""
    found = [
        {
            "name": "errbot-render-test",
            "title": "Errbot's !render test",
            "markdown": (Path(errbot.__file__).parent / "core_plugins" / "test.md").read_text(),
        }
    ]
    for path in sorted(SAMPLES_DIR.glob("*.md")):
        text = path.read_text()
        title = text.splitlines()[0].lstrip("# ").strip() if text else path.stem
        found.append({"name": path.stem, "title": title, "markdown": text})
    return found
