"""The shipped ``reply`` card built in Python: the same card ``templates/reply.json.j2`` makes.

Every ordinary reply goes through this template, and ``wrap`` needs it twice per card: empty,
to reserve its bytes and components, then filled. Through jinja2 that is two renders, every
element encoded to JSON by ``finalize`` and the whole card decoded again — on a 50 KB log more
than the markdown parse itself (issue 11). When no user file overrides ``reply.json.j2``
(``CardTemplates.shipped``) the card is built here instead; a user's template still goes through
jinja2. tests/test_builtin.py renders both on generated contexts and asserts the same card, so
the two cannot drift apart: change them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["reply_card"]


def reply_card(
    elements: Sequence[dict[str, Any]],
    summary: str = "",
    part: int = 1,
    parts: int = 1,
    *,
    title: str = "",
    color: str = "blue",
) -> dict[str, Any]:
    """``reply.json.j2`` for ``elements``, the chat-list ``summary``, a header ``title`` in
    ``color`` (none without a title) and, for a reply split into ``parts`` cards, the
    ``part/parts`` mark. The card holds ``elements`` themselves, not copies: every
    ``Piece.element()`` call returns a new component for this reason."""
    config: dict[str, Any] = {"summary": {"content": summary}} if summary else {}
    config["update_multi"] = True
    card: dict[str, Any] = {"schema": "2.0", "config": config}
    if title:
        card["header"] = {"title": {"tag": "plain_text", "content": title}, "template": color}
    body = list(elements)
    if parts > 1:
        body.append(
            {
                "tag": "markdown",
                "content": f"<font color='grey'>{part:d}/{parts:d}</font>",
                "text_align": "right",
                "text_size": "notation",
            }
        )
    card["body"] = {"elements": body}
    return card
