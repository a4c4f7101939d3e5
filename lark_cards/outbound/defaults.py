"""The shipped template for cards Feishu refused because of the user's own template.

A user's template (``LARK_CARDS["templates_dir"]``) can give valid JSON that Feishu still
refuses. Card JSON 2.0 rejects a property it does not know (230001, docs/feishu-platform.md
§5.3), and the renderer cannot check a template the way Feishu does. Without this the answer
would be lost. So when Feishu refuses a card made with a user's template because of its
content, the sender makes the same pieces again with the shipped default template and sends
that. The shipped templates are checked against Feishu's rules by the test suite. The sender
logs one line naming the file. When Feishu refuses a card made with the default template, the
card goes through the smaller-cards / text path instead (``render.fallback``): making it again
would give the same card.

Only the renderer's public pieces are used (``wrap``, ``render_template``, ``RenderOptions``):
``templates_dir=None`` means the shipped templates alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lark_cards.api.errors import CARD_REJECTED, INVALID_PARAM
from lark_cards.render import Outgoing, RenderOptions, render_template
from lark_cards.render.outgoing import templates_for, wrap
from lark_cards.render.templates import SUFFIX, TemplateError

__all__ = ["TEMPLATE_REFUSED", "in_default_template", "user_template"]

# Codes that mean "this card's content was refused". 230001 (an invalid parameter) is how
# im/v1 answers a card with a property 2.0 does not know. Rate limits, tokens and
# permissions are not here: the default template would not fare better. A 230001 that is
# about something else (say a bad receive_id) just fails again, with the default card.
TEMPLATE_REFUSED: frozenset[int] = CARD_REJECTED | {INVALID_PARAM}


def user_template(item: Outgoing, options: RenderOptions) -> Path | None:
    """The user's template file ``item`` was made with, or None when no user file shaped it.

    That covers a message that is not a card and a card JSON a plugin built itself (no pieces,
    no context). It also covers a template the user's folder does not override, and a user
    file that makes the same card as the default. A broken file counts as making the same
    card: the renderer already used the default for it (``CardTemplates``).
    """
    if item.msg_type != "interactive" or options.templates_dir is None:
        return None
    if not item.pieces and not item.context:
        return None
    path = Path(options.templates_dir) / f"{item.template}{SUFFIX}"
    if not path.is_file():
        return None
    probe = _context(item)
    try:
        theirs = templates_for(options.templates_dir).render(item.template, probe, report=False)
        ours = templates_for(None).render(item.template, probe)
    except TemplateError:  # no shipped template of that name: nothing to fall back on
        return None
    return path if theirs != ours else None


def in_default_template(
    items: Sequence[Outgoing], options: RenderOptions
) -> tuple[int, list[Outgoing]]:
    """``items[0]`` (refused), and the cards after it made with the same template and
    context, made again with the shipped templates. Returns how many items that replaces and
    the new cards.

    The refused card's followers have the same fault, so they are remade now instead of each
    being refused in turn. One ``wrap`` over all their pieces keeps the part numbers right
    (``1/3``…). A plugin's template card (no pieces) is remade from its own context.
    """
    first, defaults = items[0], dataclasses.replace(options, templates_dir=None)
    if not first.pieces:
        card = render_template(first.template, first.context, defaults)
        return 1, [Outgoing("interactive", card, (), first.template, first.context)]
    count = 1
    while count < len(items) and _same_making(items[count], first):
        count += 1
    pieces = [piece for item in items[:count] for piece in item.pieces]
    return count, wrap(pieces, first.template, first.context, defaults)


def _same_making(item: Outgoing, first: Outgoing) -> bool:
    return (
        item.msg_type == "interactive"
        and bool(item.pieces)
        and item.template == first.template
        and item.context == first.context
    )


def _context(item: Outgoing) -> Mapping[str, Any]:
    """What the template saw for ``item``. The part numbers are left out: two templates
    differ in what they do, not in which part of a long reply this was."""
    if not item.pieces:
        return item.context
    elements = [piece.element() for piece in item.pieces]
    return {**item.context, "elements": elements, "part": 1, "parts": 1}
