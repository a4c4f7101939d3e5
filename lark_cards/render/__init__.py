"""Errbot markdown → Feishu card JSON 2.0: the one render path ``send_message`` uses.

parse (``parser``) → pieces (``renderers``' dispatch tables) → cards within the budgets
(``budget``) → each card wrapped by a jinja2 template users can override (``templates``,
``outgoing``). When Feishu still rejects a card, ``fallback`` rebuilds it smaller or as text.

This module is the package's surface: the entry points below and the names in ``__all__``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from lark_cards.render.budget import Budget
from lark_cards.render.fallback import as_text, shrink, text_parts
from lark_cards.render.outgoing import Outgoing, RenderOptions, templates_for, wrap
from lark_cards.render.parser import parse
from lark_cards.render.pieces import MarkdownPiece, Piece
from lark_cards.render.plain import Preview, is_plain, plain_text, summary
from lark_cards.render.refusals import Refusal, errbot_refusal
from lark_cards.render.renderers import RenderContext, image_urls, markdown_text, render_pieces
from lark_cards.render.sections import split_sections
from lark_cards.render.syntax import literal
from lark_cards.render.templates import header_color
from lark_cards.render.tree import Node

__all__ = [
    "Budget",
    "Outgoing",
    "RenderOptions",
    "as_text",
    "image_urls",
    "parse",
    "parse_reply",
    "plain_text",
    "render_card",
    "render_markdown",
    "render_reply",
    "render_template",
    "shrink",
    "valid_text",
]

_OPEN_ID = re.compile(r"ou_[A-Za-z0-9_-]{1,64}")
# A text message turns ``<at user_id="…">`` into a live mention (§5.1), ``all`` included, in
# whatever shape the markdown parser did not read as HTML (``<at user_id="all" 1>``, ``< at``).
_MENTION_TAG = re.compile(r"<(\s*/?\s*at\b)", re.IGNORECASE)


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate (a plugin that decoded bytes with
    ``surrogateescape``…) as U+FFFD: such text cannot be encoded as UTF-8, so the card, its
    size and the request would all fail, and the reply would be lost."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def quiet_mentions(text: str) -> str:
    """``text`` with every mention tag broken by a word joiner (U+2060, invisible), so a
    text message shows it as typed and mentions nobody — as the card path shows tags as text."""
    return _MENTION_TAG.sub("<\u2060\\1", text)


def render_markdown(
    text: str,
    *,
    images: Mapping[str, str] | None = None,
    options: RenderOptions | None = None,
) -> list[dict[str, Any]]:
    """The card JSON 2.0 objects ``send_message`` sends for ``text``.

    ``images`` maps image URLs to uploaded ``img_`` keys; without a key an image is a link.
    """
    text = valid_text(text)
    outgoing = _reply_cards([*split_sections(text)], images, options or RenderOptions())
    return [item.content for item in outgoing]


def parse_reply(text: str) -> Node | None:
    """``text`` parsed, to be handed on (images, then ``render_reply(tree=…)``) — or None for a
    reply long enough to be parsed a section at a time (``split_sections``), never whole.
    ``text`` is made valid first (``valid_text``), as ``render_reply`` makes it."""
    text = valid_text(text)
    return parse(text) if len(split_sections(text)) == 1 else None


def _reply_cards(
    sources: Sequence[str | Node],
    images: Mapping[str, str] | None,
    options: RenderOptions,
    mention: str | None = None,
) -> list[Outgoing]:
    """The reply cards of ``sources``: the reply's tree, or its sections, each parsed, made
    into pieces and dropped before the next (a 1 MB reply's tokens would not fit the memory
    a render may take)."""
    ctx = _context(images, options)
    preview = Preview()
    context: dict[str, Any] = {}
    pieces: list[Piece] = []
    for index, source in enumerate(sources):
        tree = parse(source) if isinstance(source, str) else source
        preview.read(tree)
        if index == 0 and options.heading_as_header:
            tree = _without_header(tree, context, more=len(sources) > 1)
        pieces += render_pieces(tree, ctx)
    context["summary"] = preview.text()
    if mention:  # §5.6 card mention syntax; the id was checked by the caller
        pieces.insert(0, _mention(mention))
    return wrap(pieces, "reply", context, options)


TITLE_CHARS = 100  # a longer leading heading stays in the body: a header is not split


def _without_header(tree: Node, context: dict[str, Any], *, more: bool) -> Node:
    """``tree`` without the heading a reply opens with, which becomes the card header's title
    and colour in ``context``: ``# Deploy finished`` then the details → a card headed "Deploy
    finished" (``!help`` → "All commands"), as Feishu bots' cards are. Only when more follows
    it (in ``tree``, or ``more`` sections) and it is short; else ``tree`` as it is."""
    blocks = tree.children
    if (len(blocks) < 2 and not more) or not blocks or blocks[0].type != "heading":
        return tree
    title = " ".join(plain_text(blocks[0]).split())
    if not title or len(title) > TITLE_CHARS:
        return tree
    color = (blocks[0].meta.get("attrs") or {}).get("color")
    context.update(title=title, color=header_color(color) if color else "blue")
    body = Node("root", tree.token)
    body.children = blocks[1:]
    return body


def _refusal_cards(
    text: str, refusal: Refusal, options: RenderOptions, mention: str | None
) -> list[Outgoing]:
    """The error template for one of Errbot's refusals: its first line as the message (as
    typed), the rest — an exception's text, "Did you mean …" — below it as literal markdown,
    which the budgets may split: an exception can be any length."""
    first, _, rest = text.strip().partition("\n")
    if len(first) > MESSAGE_CHARS:
        first, rest = first[: MESSAGE_CHARS - 1] + "…", first[MESSAGE_CHARS - 1 :] + "\n" + rest
    pieces: list[Piece] = [_mention(mention)] if mention else []
    if rest.strip():
        pieces.append(MarkdownPiece.of(literal(rest.strip("\n"))))
    context = {"title": refusal.title, "color": refusal.color, "message": first}
    return wrap(pieces, "error", context, options)


MESSAGE_CHARS = 500  # an error card's message line; the rest goes below it


def _mention(open_id: str) -> MarkdownPiece:
    return MarkdownPiece(f"<at id={open_id}></at>")


def render_reply(
    text: str,
    *,
    images: Mapping[str, str] | None = None,
    options: RenderOptions | None = None,
    mention: str | None = None,
    tree: Node | None = None,
) -> list[Outgoing]:
    """What to send for an Errbot reply: cards, or a text message for plain replies in
    ``auto`` mode. ``mention`` (an open_id) puts a real Feishu mention on its own line above
    the reply — added here, after escaping, because mention tags in a reply's own text are
    always shown as text (anyone could otherwise make the bot @all). ``tree`` is ``text``
    already parsed (``parse``), so a reply is parsed once from image upload to card."""
    options = options or RenderOptions()
    mention = mention if mention and _OPEN_ID.fullmatch(mention) else None
    text = valid_text(text)
    refusal = errbot_refusal(text)
    if refusal is not None:  # Errbot's own "not allowed", "not found", "says nooo"
        return _refusal_cards(text, refusal, options, mention)
    sources: list[str | Node] = [*split_sections(text)] if tree is None else [tree]
    if options.mode == "auto" and all(
        is_plain(source) if isinstance(source, str) else is_plain(text, source)
        for source in sources
    ):
        prefix = f'<at user_id="{mention}"></at> ' if mention else ""
        parts = text_parts(quiet_mentions(text))
        return [Outgoing("text", {"text": prefix + part}) for part in parts]
    return _reply_cards(sources, images, options, mention)


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
    body, title, summary_text = valid_text(body), valid_text(title), valid_text(summary_text)
    fields = [(valid_text(str(key)), valid_text(str(value))) for key, value in fields]
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
    if image and not image_key:  # not uploaded: a link, never a lost image
        pieces.insert(0, render_pieces(f"[{title or 'image'}]({image})", ctx)[0])
    return wrap(pieces, "card", context, options)


def render_template(
    name: str, context: Mapping[str, Any], options: RenderOptions | None = None
) -> dict[str, Any]:
    """A plugin's own named template with its own context (no splitting)."""
    options = options or RenderOptions()
    return templates_for(options.templates_dir).render(name, context)


def _context(images: Mapping[str, str] | None, options: RenderOptions) -> RenderContext:
    return RenderContext(images=dict(images or {}), table_page_size=options.table_page_size)
