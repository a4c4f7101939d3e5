"""Preview mode: markdown → the cards ``send_message`` would send, with their budget figures.

It calls :func:`lark_cards.render.render_markdown`, the function the backend's ``send_message``
uses, with the user's own templates when the sandbox has them (``--templates-dir``, as
``LARK_CARDS["templates_dir"]``), and judges each card as the sandbox's Open API would
(:func:`.rules.check_card`), so a template author sees here exactly what Feishu would get —
and whether Feishu would take it. A user template that is broken, or whose card Feishu would
refuse, is named with Feishu's answer, and the preview shows what the bot sends instead: the
same reply made with the shipped template.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import errbot

from lark_cards.render import RenderOptions, render_markdown
from lark_cards.render.cardspec import CardLimits
from lark_cards.render.validate import card_size, count_components, count_tables, validate_card

from .rules import check_card

SAMPLES_DIR = Path(__file__).parent / "static" / "samples"
REPLY_TEMPLATE = "reply.json.j2"  # what a reply is wrapped in (render.outgoing)
_TEMPLATE_LOG = logging.getLogger("lark_cards.render.templates")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _template_errors() -> Iterator[list[str]]:
    """The lines the templates log while rendering (a broken user template and its fallback)."""
    handler = _Lines()
    _TEMPLATE_LOG.addHandler(handler)
    try:
        yield handler.lines
    finally:
        _TEMPLATE_LOG.removeHandler(handler)


def preview(
    markdown: str,
    *,
    image_keys: frozenset[str] = frozenset(),
    templates_dir: str | None = None,
) -> dict[str, Any]:
    """The cards for ``markdown`` and, for each, bytes / components / tables and problems.

    With ``templates_dir``, ``template`` says how the user's reply template fared: ``error``
    (Feishu's ``code`` and ``msg``, or the template's own error line with code ``None``) and
    ``fallback`` (the reply went out with the shipped template instead); ``cards`` are then the
    cards the bot really sends, and ``refused`` the ones Feishu would have refused."""
    limits = CardLimits()  # Feishu's per-card limits (§5.4)
    result: dict[str, Any] = {
        "limits": {
            "bytes": limits.max_bytes,
            "components": limits.max_components,
            "tables": limits.max_tables,
        },
    }
    with _template_errors() as broken:
        cards = render_markdown(markdown, options=RenderOptions(templates_dir=templates_dir))
    user_file = Path(templates_dir) / REPLY_TEMPLATE if templates_dir else None
    if user_file is None or not user_file.is_file():
        result["cards"] = [_figures(card, image_keys) for card in cards]
        if templates_dir:
            result["template"] = {"dir": templates_dir, "used": None}
        return result
    template: dict[str, Any] = {"dir": templates_dir, "used": str(user_file), "fallback": False}
    result["template"] = template
    if broken:  # the bot logs it and already used the shipped template
        template.update(error={"code": None, "msg": broken[0]}, fallback=True)
        result["cards"] = [_figures(card, image_keys) for card in cards]
        return result
    refusals = [check_card(card, image_keys) for card in cards]
    refused = next((refusal for refusal in refusals if refusal is not None), None)
    if refused is None:
        result["cards"] = [_figures(card, image_keys) for card in cards]
        return result
    # Feishu refuses the card's content: the bot sends the reply again, made with the shipped
    # templates (outbound.delivery), and logs one line naming the file and Feishu's answer.
    template.update(error={"code": refused.code, "msg": refused.msg}, fallback=True)
    result["refused"] = [_figures(card, image_keys) for card in cards]
    result["cards"] = [_figures(card, image_keys) for card in render_markdown(markdown)]
    return result


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
