"""What the renderer hands the sender: :class:`Outgoing` messages, the :class:`RenderOptions`
they were made with, and :func:`wrap`, which packs pieces into cards within the budgets and
wraps each card in its jinja2 template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lark_cards.render.budget import Budget, pack
from lark_cards.render.builtin import reply_card
from lark_cards.render.pieces import Piece, wire_size
from lark_cards.render.templates import CardTemplates
from lark_cards.render.validate import count_components

if TYPE_CHECKING:
    from lark_cards.settings import Settings


@dataclass(frozen=True)
class RenderOptions:
    """How replies are rendered (``LARK_CARDS`` options; see settings)."""

    budget: Budget = field(default_factory=Budget)
    table_page_size: int = 10
    mode: str = "card"  # "auto": replies without any markdown go as plain text messages
    templates_dir: str | None = None
    heading_as_header: bool = True  # a reply's leading heading → its card header's title

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderOptions:
        """The options ``LARK_CARDS`` sets (budgets, page size, mode, templates)."""
        budget = Budget(
            max_bytes=settings.max_card_bytes,
            max_components=settings.max_components,
            max_tables=settings.max_tables,
        )
        return cls(
            budget=budget,
            table_page_size=settings.table_page_size,
            mode=settings.render_mode,
            templates_dir=settings.templates_dir,
            heading_as_header=settings.heading_as_header,
        )


@dataclass(frozen=True)
class Outgoing:
    """One message to send: Feishu ``msg_type`` and its ``content`` object.

    A card also keeps what it was made of, so that when Feishu rejects it the sender can
    rebuild it smaller (``shrink``) or as plain text (``as_text``) without losing content.
    """

    msg_type: str
    content: dict[str, Any]
    pieces: tuple[Piece, ...] = ()
    template: str = "reply"
    context: Mapping[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=8)
def templates_for(templates_dir: str | None) -> CardTemplates:
    """The card templates of ``templates_dir`` (the user's overrides), loaded once."""
    return CardTemplates(templates_dir)


def wrap(
    pieces: list[Piece], template: str, context: Mapping[str, Any], options: RenderOptions
) -> list[Outgoing]:
    """Pack ``pieces`` into as many cards as the budgets need and wrap each in ``template``."""
    templates = templates_for(options.templates_dir)
    if template == "reply" and templates.shipped("reply"):
        summary, title = str(context.get("summary") or ""), str(context.get("title") or "")
        color = str(context.get("color") or "blue")

        def card_of(elements: list[dict[str, Any]], part: int, parts: int) -> dict[str, Any]:
            return reply_card(elements, summary, part, parts, title=title, color=color)

        empty = card_of([], 99, 99)
    else:

        def card_of(elements: list[dict[str, Any]], part: int, parts: int) -> dict[str, Any]:
            card_context = {**context, "elements": elements, "part": part, "parts": parts}
            return templates.render(template, card_context)

        # only measured: a broken user template logs its error once, for the real card
        empty = templates.render(
            template, {**context, "elements": [], "part": 99, "parts": 99}, report=False
        )
    # ``empty`` is what the template adds to every card: reserved up front
    groups = pack(
        pieces,
        options.budget,
        reserved_bytes=wire_size(empty),
        reserved_components=count_components(empty),
    )
    cards = []
    for number, group in enumerate(groups, start=1):
        card = card_of([piece.element() for piece in group], number, len(groups))
        cards.append(Outgoing("interactive", card, tuple(group), template, context))
    return cards
