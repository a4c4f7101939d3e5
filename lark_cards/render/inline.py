"""Inline content → Feishu markdown: the text, spans, code, links and images of a paragraph,
heading or table cell, read from markdown-it's flat token list (``Node.inline_tokens``).

``inline_tokens`` walks the list once: a span's ``*_open`` starts a buffer that its
``*_close`` wraps (``SPAN_RENDERERS``), every leaf goes through ``INLINE_RENDERERS`` — read-only
dispatch tables, as ``renderers.BLOCK_RENDERERS`` for blocks. Escaping happens only in
``syntax.escape``; ``RenderContext`` is the options of one rendering, for both.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from markdown_it.token import Token

from lark_cards.render.syntax import (
    LINE_BREAKING,
    escape,
    escape_line_start,
    font_color,
    safe_url,
    tag_color,
)
from lark_cards.render.tree import Node


@dataclass(frozen=True)
class RenderContext:
    """Options for one rendering; ``images`` maps image URLs to uploaded ``img_`` keys."""

    images: Mapping[str, str] = field(default_factory=dict)
    table_page_size: int = 10

    def __post_init__(self) -> None:
        # Only uploaded img_ keys: Feishu rejects the whole card for any other key (200570), so
        # an image without one is rendered as a link instead.
        keys = {url: key for url, key in self.images.items() if str(key).startswith("img_")}
        object.__setattr__(self, "images", MappingProxyType(keys))


def inline(node: Node, ctx: RenderContext) -> str:
    """An ``inline`` node (a paragraph's, heading's or cell's content) as Feishu markdown."""
    return inline_tokens(node.inline_tokens, ctx)


def inline_tokens(tokens: Sequence[Token], ctx: RenderContext) -> str:
    """Render markdown-it's flat inline tokens in one pass: a span's ``*_open`` starts a new
    buffer, its ``*_close`` wraps it (``SPAN_RENDERERS``), leaves go through
    ``INLINE_RENDERERS``. The start of every line is guarded, a span's start too."""
    if len(tokens) == 1 and tokens[0].type == "text":  # a plain cell or paragraph
        return escape_line_start(_text(tokens[0].content))
    out: list[str] = []
    spans: list[tuple[list[str], Token]] = []  # the enclosing buffers, and each span's opening
    at_line_start = True
    for token in tokens:
        kind = token.type
        if kind == "text":  # most tokens: no dispatch
            text = _text(token.content)
            if at_line_start:
                text = escape_line_start(text)
        elif token.nesting == 1:
            spans.append((out, token))
            out, at_line_start = [], True
            continue
        elif token.nesting == -1:
            if not spans:
                continue
            content = "".join(out)
            out, opening = spans.pop()
            text = SPAN_RENDERERS[kind](opening, content, ctx)
        else:
            text = INLINE_RENDERERS[kind](token, ctx)
        out.append(text)
        at_line_start = text == "\n"  # after a soft or hard break, and after a <br> tag too
    return "".join(out)


def text(token: Token, ctx: RenderContext) -> str:
    return _text(token.content)


def _text(content: str) -> str:
    escaped = escape(content)
    # "!" right before a link would turn it into an image (``![x](url)``, 200570 for a URL).
    return escaped[:-1] + "&#33;" if escaped[-1:] == "!" else escaped


def softbreak(token: Token, ctx: RenderContext) -> str:
    return "\n"


def code_inline(token: Token, ctx: RenderContext) -> str:
    code = html.unescape(token.content)  # Errbot's jinja2 autoescape reaches code spans too
    if _LINE_BREAKING.search(code):  # a code span is one line (CommonMark 6.1: ends → spaces)
        code = _LINE_BREAKING.sub(" ", code)
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {code} " if longest or code.startswith(" ") else code
    return styled(token, f"{fence}{padded}{fence}")


_LINE_BREAKING = re.compile(f"[{LINE_BREAKING}]")
Span = Callable[[Token, str, RenderContext], str]


def _wrapper(marker: str) -> Span:
    def render(opening: Token, content: str, ctx: RenderContext) -> str:
        return styled(opening, f"{marker}{content}{marker}" if content.strip() else content)

    return render


em, strong, s = _wrapper("*"), _wrapper("**"), _wrapper("~~")


def link(opening: Token, label: str, ctx: RenderContext) -> str:
    url = safe_url(str(opening.attrs.get("href", "")))
    if url is None:
        return label
    # §5.6: link text cannot be coloured, so an attribute list on a link is dropped.
    return f"[{label or escape(url)}]({url})"


def image(token: Token, ctx: RenderContext) -> str:
    src = str(token.attrs.get("src", ""))
    alt = escape(plain_tokens(token.children or []))
    key = ctx.images.get(src)
    if key is not None:
        return f"![{alt}]({key})"
    url = safe_url(src)
    return f"[{alt or escape(url)}]({url})" if url else alt


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def is_markup_tag(token: Token) -> bool:
    """A tag the renderer turns into Feishu markup (a line break), not text."""
    return bool(_BR.fullmatch(token.content))


def html_inline(token: Token, ctx: RenderContext) -> str:
    """``<br>`` is a line break; every other tag is shown as text — ``<at id=all>`` in a
    reply's text must never become a live mention (the backend adds real mentions itself)."""
    return "\n" if is_markup_tag(token) else escape(token.content)


def footnote_ref(token: Token, ctx: RenderContext) -> str:
    return f"&#91;{footnote_number(token)}&#93;"  # [1], numbered as Python-Markdown does


def footnote_number(node: Node | Token) -> int:
    return int(node.meta.get("id", 0)) + 1


INLINE_RENDERERS: Mapping[str, Callable[[Token, RenderContext], str]] = MappingProxyType(
    {
        "text": text,
        "softbreak": softbreak,
        "hardbreak": softbreak,
        "code_inline": code_inline,
        "image": image,
        "html_inline": html_inline,
        "footnote_ref": footnote_ref,
    }
)
# Spans, by their closing token: the opening token (its attrs) and the rendered content.
SPAN_RENDERERS: Mapping[str, Span] = MappingProxyType(
    {"em_close": em, "strong_close": strong, "s_close": s, "link_close": link}
)


def styled(node: Node | Token, rendered: str) -> str:
    """Apply an Errbot attribute list: colour → ``<font>``, background → ``<text_tag>``."""
    attrs = node.meta.get("attrs")
    if not attrs:  # nearly every span: no attribute list
        return rendered
    background = tag_color(attrs.get("bgcolor", ""))
    if background and rendered.strip():
        return f"<text_tag color='{background}'>{rendered}</text_tag>"
    color = font_color(attrs.get("color", ""))
    if color and rendered.strip():
        return f"<font color='{color}'>{rendered}</font>"
    return rendered


def plain_tokens(tokens: Sequence[Token], line_break: str = " ") -> str:
    """The words of inline tokens without markup, as the renderer shows them: code unescaped,
    raw HTML as text, a line break (soft, hard or ``<br>``) as ``line_break`` — a space in
    image alt text and column names, a newline in a text message (``plain.plain_text``)."""
    words = []
    for token in tokens:
        kind = token.type
        if kind == "text":
            words.append(token.content)
        elif kind == "code_inline":
            words.append(html.unescape(token.content))  # as code_inline renders it
        elif kind in ("softbreak", "hardbreak"):
            words.append(line_break)
        elif kind == "html_inline":
            words.append(line_break if is_markup_tag(token) else token.content)
        elif token.children:  # an image: its alt text
            words.append(plain_tokens(token.children, line_break))
    return "".join(words)
