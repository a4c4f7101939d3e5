"""Card JSON 1.0 as Feishu takes it on create and reply: lenient, unlike 2.0.

A card without ``"schema": "2.0"`` is a 1.0 card (§5.3): components sit in ``elements`` (or
per locale in ``i18n_elements``), an optional ``header`` on top, and unknown properties are
ignored rather than refused. What Feishu still refuses — and so the sandbox — is a card that is
not a card (no header, elements or i18n_elements; ``elements`` not a list of components) and an
image key it never issued (200570, as for 2.0). The 2.0 rules stay with the project's own
validator (``lark_cards.render.validate``); 200830 belongs to updates that change the
version, not to sending a 1.0 card (:func:`.rules.check_patch`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from lark_cards.api.errors import INVALID_IMAGE_KEY
from lark_cards.render.scan import markdown_image_keys

CARD_CONTENT_FAILED = 230099  # Feishu's generic "Failed to create card content"


def check_card_v1(card: Mapping[str, Any], image_keys: Collection[str]) -> tuple[int, str] | None:
    """``None`` for a 1.0 card Feishu would send, else its refusal's code and msg (``rules``
    makes the ``Refusal`` of them: this module stays below it)."""
    sections = [card.get("elements")]
    i18n = card.get("i18n_elements")
    if isinstance(i18n, Mapping):
        sections += list(i18n.values())
    elif i18n is not None:
        return _failed("i18n_elements must be an object of element lists")
    present = [s for s in sections if s is not None]
    if not present and not isinstance(card.get("header"), Mapping):
        return _failed("a card needs a header, elements or i18n_elements")
    for elements in present:
        if not isinstance(elements, list) or not all(_component(e) for e in elements):
            return _failed("elements must be a list of components, each with a string tag")
    for key in _image_keys(card):
        if key not in image_keys:
            return (
                INVALID_IMAGE_KEY,
                f"Failed to create card content, ext=ErrCode: {INVALID_IMAGE_KEY}; "
                f"image key {key!r} was not uploaded by this app",
            )
    return None


def _component(element: Any) -> bool:
    return isinstance(element, Mapping) and isinstance(element.get("tag"), str)


def _image_keys(card: Mapping[str, Any]) -> Iterator[str]:
    """``img_key`` of every ``img`` and images in ``markdown`` content, anywhere in the card."""
    stack: list[Any] = [card]
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            if value.get("tag") == "img" and isinstance(value.get("img_key"), str):
                yield value["img_key"]
            if value.get("tag") == "markdown" and isinstance(value.get("content"), str):
                yield from markdown_image_keys(value["content"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _failed(why: str) -> tuple[int, str]:
    return CARD_CONTENT_FAILED, f"Failed to create card content, ext={why}"
