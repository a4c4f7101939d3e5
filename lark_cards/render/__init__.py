"""Errbot markdown → Feishu card JSON 2.0: the one render path ``send_message`` uses.

parse (``parser``) → pieces (``elements``' dispatch tables) → cards within the budgets
(``budget``) → each card wrapped by a jinja2 template users can override (``templates``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from markdown_it.tree import SyntaxTreeNode

from lark_cards.render.budget import Budget, pack
from lark_cards.render.elements import (
    RenderContext,
    html_inline,
    image_urls,
    is_markup_tag,
    markdown_text,
    render_pieces,
)
from lark_cards.render.parser import parse
from lark_cards.render.pieces import MarkdownPiece, Piece, wire_size
from lark_cards.render.templates import CardTemplates, header_color
from lark_cards.render.validate import count_components

if TYPE_CHECKING:
    from lark_cards.settings import Settings

__all__ = [
    "Budget",
    "Outgoing",
    "RenderOptions",
    "image_urls",
    "plain_text",
    "render_card",
    "render_markdown",
    "render_reply",
]

# A text message may carry 150 KB, a post 30 KB (§4.1); parts stay well below that.
TEXT_PART_BYTES = 64 * 1024
POST_BYTES = 16 * 1024
_OPEN_ID = re.compile(r"ou_[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class RenderOptions:
    """How replies are rendered (``LARK_CARDS`` options; see settings)."""

    budget: Budget = field(default_factory=Budget)
    table_page_size: int = 10
    mode: str = "card"  # "auto": replies without any markdown go as plain text messages
    templates_dir: str | None = None

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
def _templates(templates_dir: str | None) -> CardTemplates:
    return CardTemplates(templates_dir)


def render_markdown(
    text: str,
    *,
    images: Mapping[str, str] | None = None,
    options: RenderOptions | None = None,
) -> list[dict[str, Any]]:
    """The card JSON 2.0 objects ``send_message`` sends for ``text`` (design.md §3).

    ``images`` maps image URLs to uploaded ``img_`` keys; without a key an image is a link.
    """
    return [item.content for item in _reply_cards(text, images, options or RenderOptions())]


def _reply_cards(
    text: str,
    images: Mapping[str, str] | None,
    options: RenderOptions,
    mention: str | None = None,
) -> list[Outgoing]:
    tree = parse(text)  # parsed once: the pieces and the preview line both read it
    pieces = render_pieces(tree, _context(images, options))
    if mention:  # §5.6 card mention syntax; the id was checked by the caller
        pieces.insert(0, MarkdownPiece(f"<at id={mention}></at>"))
    return wrap(pieces, "reply", {"summary": summary(tree)}, options)


def render_reply(
    text: str,
    *,
    images: Mapping[str, str] | None = None,
    options: RenderOptions | None = None,
    mention: str | None = None,
) -> list[Outgoing]:
    """What to send for an Errbot reply: cards, or a text message for plain replies in
    ``auto`` mode. ``mention`` (an open_id) puts a real Feishu mention on its own line above
    the reply — added here, after escaping, because mention tags in a reply's own text are
    always shown as text (anyone could otherwise make the bot @all)."""
    options = options or RenderOptions()
    mention = mention if mention and _OPEN_ID.fullmatch(mention) else None
    if options.mode == "auto" and is_plain(text):
        prefix = f'<at user_id="{mention}"></at> ' if mention else ""
        return [Outgoing("text", {"text": prefix + part}) for part in text_parts(text)]
    return _reply_cards(text, images, options, mention)


def render_card(
    *,
    body: str,
    title: str = "",
    summary_text: str = "",
    link: str | None = None,
    image: str | None = None,
    thumbnail: str | None = None,
    color: str | None = None,
    fields: Sequence[tuple[str, str]] = (),
    images: Mapping[str, str] | None = None,
    options: RenderOptions | None = None,
) -> list[Outgoing]:
    """Errbot's ``send_card`` as Feishu cards: header, key/value fields, image, body."""
    options = options or RenderOptions()
    ctx = _context(images, options)
    image_key = ctx.images.get(image or "")
    context = {
        "title": title or "",
        "summary": summary_text or None,
        "preview": summary_text or summary(parse(title or body)),
        "link": link or None,
        "image": image_key,
        "thumbnail": ctx.images.get(thumbnail or ""),
        "color": header_color(color),
        "fields": [[str(key), markdown_text(str(value), ctx)] for key, value in fields],
    }
    pieces = render_pieces(body, ctx)
    if image and not image_key:  # not uploaded: a link, never a lost image (design §4)
        pieces.insert(0, render_pieces(f"[{title or 'image'}]({image})", ctx)[0])
    return wrap(pieces, "card", context, options)


def render_template(
    name: str, context: Mapping[str, Any], options: RenderOptions | None = None
) -> dict[str, Any]:
    """A plugin's own named template with its own context (no splitting)."""
    options = options or RenderOptions()
    return _templates(options.templates_dir).render(name, context)


def wrap(
    pieces: list[Piece], template: str, context: Mapping[str, Any], options: RenderOptions
) -> list[Outgoing]:
    """Pack ``pieces`` into as many cards as the budgets need and wrap each in ``template``."""
    templates = _templates(options.templates_dir)
    empty = templates.render(
        template, {**context, "elements": [], "part": 99, "parts": 99}, report=False
    )
    reserved_components = count_components(empty)
    groups = pack(
        pieces,
        options.budget,
        reserved_bytes=wire_size(empty),
        reserved_components=reserved_components,
    )
    cards = []
    for number, group in enumerate(groups, start=1):
        elements = [piece.element() for piece in group]
        card_context = {**context, "elements": elements, "part": number, "parts": len(groups)}
        card = templates.render(template, card_context)
        cards.append(Outgoing("interactive", card, tuple(group), template, context))
    return cards


def shrink(rejected: Outgoing, options: RenderOptions) -> list[Outgoing]:
    """The same content in smaller cards, after Feishu rejected ``rejected`` (§5.4 limits
    are partly unconfirmed, so a rejection means our budget was too generous)."""
    smaller = RenderOptions(
        budget=options.budget.smaller(),
        table_page_size=options.table_page_size,
        mode=options.mode,
        templates_dir=options.templates_dir,
    )
    return wrap(list(rejected.pieces), rejected.template, rejected.context, smaller)


def as_text(rejected: Outgoing) -> list[Outgoing]:
    """The content of a rejected card as plain rich-text (``post``) messages: the user always
    gets it. ``post`` text nodes are literal (§5.2), unlike a ``text`` message, where
    ``<at user_id=all>`` or ``<b>`` in the recovered words would become live again (§5.1)."""
    if rejected.pieces:
        title = str(rejected.context.get("title") or "")
        fields = [f"{key}: {plain_text(str(value))}" for key, value in _fields(rejected.context)]
        body = "\n\n".join(piece.plain() for piece in rejected.pieces)
        text = "\n\n".join(part for part in (fields and "\n".join(fields), body) if part)
    else:  # a plugin's own template: all we have is the card
        title, text = "", "\n".join(_card_strings(rejected.content))
    return [Outgoing("post", literal_post(part, title)) for part in text_parts(text, POST_BYTES)]


def literal_post(text: str, title: str = "") -> dict[str, Any]:
    """A ``post`` message of literal lines (§5.2: at least one locale; no outer wrapper)."""
    lines = [[{"tag": "text", "text": line}] for line in text.split("\n")]
    return {"zh_cn": {"title": title, "content": lines}}


def _fields(context: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    return [tuple(field) for field in context.get("fields") or () if len(field) == 2]


def _card_strings(value: Any) -> Iterator[str]:
    """Readable strings of a card: titles, markdown, plain text, table cells."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (key == "content" or re.fullmatch(r"c\d+", key)):
                yield plain_text(item)
            else:
                yield from _card_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _card_strings(item)


def _context(images: Mapping[str, str] | None, options: RenderOptions) -> RenderContext:
    return RenderContext(images=dict(images or {}), table_page_size=options.table_page_size)


# ----- plain text: previews, auto mode and the last-resort fallback ---------------------------

_MARKUP_NODES = {
    "em",
    "strong",
    "s",
    "link",
    "image",
    "code_inline",
    "fence",
    "code_block",
    "heading",
    "bullet_list",
    "ordered_list",
    "blockquote",
    "table",
    "hr",
    "html_block",
    "html_inline",
}


_TEXT_BLOCKS = {
    "paragraph",
    "heading",
    "list_item",
    "fence",
    "code_block",
    "html_block",
    "blockquote",
    "tr",
    "hr",
}


def plain_text(text: str | SyntaxTreeNode) -> str:
    """The words of a markdown reply without markup: what a text message can still show."""
    joined = "".join(_plain_parts(parse(text) if isinstance(text, str) else text))
    return re.sub(r"\n{3,}", "\n\n", joined).strip("\n")


def _plain_parts(tree: SyntaxTreeNode) -> Iterator[str]:
    for node in tree.walk():
        if node.type in _TEXT_BLOCKS:
            yield "\n"
        if node.type == "text":
            yield node.content
        elif node.type == "code_inline":
            yield html.unescape(node.content)  # as the renderer shows code
        elif node.type in ("softbreak", "hardbreak"):
            yield "\n"
        elif node.type in ("fence", "code_block"):
            yield html.unescape(node.content)
        elif node.type == "html_inline":
            yield html_inline(node, RenderContext()) if is_markup_tag(node) else node.content
        elif node.type == "html_block":
            yield node.content
        elif node.type in ("td", "th"):
            yield "\t"


def is_plain(text: str) -> bool:
    """True when ``text`` has no markdown at all, so a text message shows it faithfully."""
    tree = parse(text)
    if any(node.type in _MARKUP_NODES for node in tree.walk()):
        return False
    return plain_text(text).split() == text.split()


def summary(tree: SyntaxTreeNode, limit: int = 60) -> str:
    """The chat-list preview of a card: the first line of words, shortened. Reads only as
    much of the tree as that line needs."""
    text = ""
    for part in _plain_parts(tree):
        text += part
        if "\n" in text.lstrip() or len(text) > 4 * limit:
            break
    first = next((" ".join(line.split()) for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 1] + "…"


def text_parts(text: str, limit: int = TEXT_PART_BYTES) -> list[str]:
    """``text`` cut at line ends into parts that fit a text message, in order."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        cost = len(line.encode())
        if current and size + cost > limit:
            parts.append("".join(current))
            current, size = [], 0
        while cost > limit:  # one enormous line: cut it (a character is at most 4 bytes)
            cut = max(1, limit // 4)
            parts.append(line[:cut])
            line = line[cut:]
            cost = len(line.encode())
        current.append(line)
        size += cost
    if current or not parts:
        parts.append("".join(current))
    return parts
