"""Syntax tree → Feishu card pieces, through read-only dispatch tables (mdformat's design).

``INLINE_RENDERERS`` turn inline nodes into Feishu markdown strings; ``BLOCK_RENDERERS`` turn
block nodes into Feishu markdown text (used inside lists and quotes, and for prose at the top
level). At the top level, ``render_pieces`` lifts code blocks, tables and lone images out of the
prose into pieces of their own, because those become native components or must be split
specially when a card runs out of room. Escaping happens only in ``syntax.escape``.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from markdown_it.token import Token

from lark_cards.render.parser import parse
from lark_cards.render.pieces import CodePiece, ComponentPiece, MarkdownPiece, Piece, TablePiece
from lark_cards.render.sections import split_sections
from lark_cards.render.syntax import (
    LINE_BREAKING,
    code_language,
    escape,
    escape_line_start,
    fenced_code,
    font_color,
    literal,
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


Render = Callable[[Node, RenderContext], str]  # a block node → Feishu markdown

# ----- inline ------------------------------------------------------------------------------


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
    return _styled(token, f"{fence}{padded}{fence}")


_LINE_BREAKING = re.compile(f"[{LINE_BREAKING}]")
Span = Callable[[Token, str, RenderContext], str]


def _wrapper(marker: str) -> Span:
    def render(opening: Token, content: str, ctx: RenderContext) -> str:
        return _styled(opening, f"{marker}{content}{marker}" if content.strip() else content)

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
    if _BR.fullmatch(token.content):
        return "\n"
    return escape(token.content)


def footnote_ref(token: Token, ctx: RenderContext) -> str:
    return f"&#91;{_footnote_number(token)}&#93;"  # [1], numbered as Python-Markdown does


def _footnote_number(node: Node | Token) -> int:
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


def _styled(node: Node | Token, rendered: str) -> str:
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


def _plain(node: Node) -> str:
    """The words of a node without markup (table header names)."""
    if node.type == "inline":
        return plain_tokens(node.inline_tokens)
    return "".join(_plain(child) for child in node.children)


def plain_tokens(tokens: Sequence[Token]) -> str:
    """The words of inline tokens without markup (image alt text, header names)."""
    words = []
    for token in tokens:
        if token.type in ("text", "code_inline"):
            words.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            words.append(" ")
        elif token.children:  # an image: its alt text
            words.append(plain_tokens(token.children))
    return "".join(words)


# ----- blocks as markdown text ---------------------------------------------------------------


def paragraph(node: Node, ctx: RenderContext) -> str:
    return _styled(node, inline(node.children[0], ctx))


def heading(node: Node, ctx: RenderContext) -> str:
    level = int(node.tag[1])
    content = inline(node.children[0], ctx).replace("\n", " ")
    return f"{'#' * level} {_styled(node, content)}"


def bullet_list(node: Node, ctx: RenderContext) -> str:
    return "\n".join(_list_item(item, "- ", ctx) for item in node.children)


def ordered_list(node: Node, ctx: RenderContext) -> str:
    start = int(node.attrs.get("start", 1))
    return "\n".join(
        _list_item(item, f"{start + offset}. ", ctx) for offset, item in enumerate(node.children)
    )


def _list_item(item: Node, marker: str, ctx: RenderContext) -> str:
    # §5.6: Feishu nests lists by four spaces per level. A loose list (markdown-it shows its
    # paragraphs) keeps blank lines between an item's blocks; a tight one does not.
    loose = any(child.type == "paragraph" and not child.hidden for child in item.children)
    body = blocks(item.children, ctx, separator="\n\n" if loose else "\n") or ""
    lines = body.split("\n")
    rest = ["    " + line if line else line for line in lines[1:]]
    return "\n".join([marker + lines[0], *rest])


def blockquote(node: Node, ctx: RenderContext) -> str:
    return _quoted(blocks(node.children, ctx))


def _quoted(body: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))


def fence(node: Node, ctx: RenderContext) -> str:
    return fenced_code(code_language(node.info), html.unescape(node.content))


def hr(node: Node, ctx: RenderContext) -> str:
    return "<hr>"


def html_block(node: Node, ctx: RenderContext) -> str:
    """Raw HTML is shown as text, its entities decoded as everywhere else (``&amp;`` → &)."""
    return literal(html.unescape(node.content).rstrip("\n"))


def footnote_block(node: Node, ctx: RenderContext) -> str:
    """The notes, one per line, after the text: ``[1] the note``."""
    notes = []
    for note in node.children:
        body = blocks(note.children, ctx, separator="\n")
        notes.append(f"<font color='grey'>&#91;{_footnote_number(note)}&#93;</font> {body}")
    return "\n".join(notes)


def table(node: Node, ctx: RenderContext) -> str:
    """A table nested in a list or quote stays a markdown table (§5.6 supports them)."""
    columns, rows = table_cells(node, ctx)
    header = "| " + " | ".join(escape(name) for name, _ in columns) + " |"
    rule = "|" + "|".join(_ALIGN_RULE[align] for _, align in columns) + "|"
    body = ["| " + " | ".join(c.replace("\n", "<br>") for c in row) + " |" for row in rows]
    return "\n".join([header, rule, *body])


_ALIGN_RULE = {"left": ":---", "center": ":---:", "right": "---:", "": "---"}


def table_cells(node: Node, ctx: RenderContext) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Header names with alignment, and every body row's cells as Feishu markdown."""
    head_row = node.children[0].children[0]
    columns = [(_plain(cell).strip(), _alignment(cell)) for cell in head_row.children]
    rows = []
    for section in node.children[1:]:
        for row in section.children:
            cells = [
                inline(cell.children[0], ctx) if cell.children else "" for cell in row.children
            ]
            rows.append((cells + [""] * len(columns))[: len(columns)])
    return columns, rows


def _alignment(cell: Node) -> str:
    match = re.search(r"text-align:(left|center|right)", str(cell.attrs.get("style", "")))
    return match.group(1) if match else ""


BLOCK_RENDERERS: Mapping[str, Render] = MappingProxyType(
    {
        "paragraph": paragraph,
        "heading": heading,
        "bullet_list": bullet_list,
        "ordered_list": ordered_list,
        "blockquote": blockquote,
        "fence": fence,
        "code_block": fence,
        "hr": hr,
        "html_block": html_block,
        "table": table,
        "footnote_block": footnote_block,
    }
)


def blocks(nodes: list[Node], ctx: RenderContext, separator: str = "\n\n") -> str:
    """Blocks as markdown text, ``separator`` between them — but a blank line on either side
    of a table: in a tight list item ("\n") two tables, or a table and the next block, would
    run together (the next table's header read as a row of the one before)."""
    rendered = [BLOCK_RENDERERS[node.type](node, ctx) for node in nodes]
    if separator == "\n\n" or len(nodes) < 2 or not any(n.type == "table" for n in nodes):
        return separator.join(rendered)
    out = [rendered[0]]
    for before, node, text in zip(nodes, nodes[1:], rendered[1:], strict=False):
        out += ("\n\n" if "table" in (before.type, node.type) else separator, text)
    return "".join(out)


# ----- the top level: pieces ------------------------------------------------------------------


def render_pieces(markdown: str | Node, ctx: RenderContext | None = None) -> list[Piece]:
    """Errbot markdown (or its parsed tree) → the pieces a card is packed from, in order."""
    tree = parse(markdown) if isinstance(markdown, str) else markdown
    ctx = ctx or RenderContext()
    pieces: list[Piece] = []
    for node in tree.children:
        if node.type in _PROSE and (node.type == "heading" or not ctx.images):
            pieces.append(MarkdownPiece.of(BLOCK_RENDERERS[node.type](node, ctx)))  # most blocks
        else:
            pieces += _pieces(node, ctx)
    return pieces


_PROSE = frozenset({"paragraph", "heading"})  # a paragraph may be a lone image (``_pieces``)


def _pieces(node: Node, ctx: RenderContext) -> list[Piece]:
    if node.type in ("fence", "code_block"):
        return [CodePiece(code_language(node.info), html.unescape(node.content))]
    if node.type == "table":
        columns, rows = table_cells(node, ctx)
        return [TablePiece(tuple(columns), tuple(tuple(r) for r in rows), ctx.table_page_size)]
    if node.type == "hr":
        return [_RULE]
    if node.type == "footnote_block":  # set off from the text by a rule, as on a page
        return [_RULE, MarkdownPiece.of(footnote_block(node, ctx))]
    lone_image = _lone_image(node)
    if lone_image is not None and str(lone_image.attrs.get("src", "")) in ctx.images:
        alt = plain_tokens(lone_image.children or [])
        key = ctx.images[str(lone_image.attrs["src"])]
        alt_text = {"tag": "plain_text", "content": alt}
        return [ComponentPiece({"tag": "img", "img_key": key, "alt": alt_text})]
    if node.type in ("bullet_list", "ordered_list", "blockquote") and _holds_table(node):
        # Tables in a list or a quote stay markdown tables, which count toward the card's table
        # budget and the element's (§5.4): one piece per item or quoted block, cut again between
        # its tables (one to a piece, so even ``Budget.smaller``'s one per card can be met),
        # lets the packer spread them over cards. Merged, the pieces give back the same text.
        return [
            part
            for piece in _children_pieces(node, ctx)
            for part in (piece.split(_NO_BYTE_LIMIT, max_tables=1) if piece.tables > 1 else [piece])
        ]
    return [MarkdownPiece.of(BLOCK_RENDERERS[node.type](node, ctx))]


_NO_BYTE_LIMIT = sys.maxsize
_RULE = ComponentPiece({"tag": "hr"})  # one piece: immutable, measured once (``budget``)


def _children_pieces(node: Node, ctx: RenderContext) -> list[MarkdownPiece]:
    """A list as one piece per item, a quote as one piece per block in it (each quoted)."""
    if node.type == "blockquote":
        texts = [_quoted(BLOCK_RENDERERS[child.type](child, ctx)) for child in node.children]
        joint = "\n>\n"  # what ``blocks`` puts between them ("\n\n"), quoted
    else:
        start = int(node.attrs.get("start", 1))
        markers = [
            "- " if node.type == "bullet_list" else f"{start + offset}. "
            for offset in range(len(node.children))
        ]
        texts = [
            _list_item(item, marker, ctx)
            for item, marker in zip(node.children, markers, strict=True)
        ]
        joint = "\n"
    return [MarkdownPiece.of(text, joint if index else "\n\n") for index, text in enumerate(texts)]


def _holds_table(node: Node) -> bool:
    return node.holds_table  # marked while the tree was built: no walk of every list


def _lone_image(node: Node) -> Token | None:
    if node.type != "paragraph":
        return None
    if "![" not in node.children[0].content:  # an image's source starts so: most paragraphs
        return None
    tokens = node.children[0].inline_tokens
    children = [t for t in tokens if not (t.type == "text" and not t.content.strip())]
    return children[0] if len(children) == 1 and children[0].type == "image" else None


def markdown_text(markdown: str, ctx: RenderContext | None = None) -> str:
    """Errbot markdown → one Feishu markdown string (for card fields and nested content)."""
    return blocks(parse(markdown).children, ctx or RenderContext())


def image_urls(markdown: str | Node) -> list[str]:
    """Every http(s) image ``src`` in ``markdown`` (or its parsed tree), for the uploader to
    fetch before rendering."""
    urls: list[str] = []
    parts = split_sections(markdown) if isinstance(markdown, str) else [markdown]
    # a long reply a section at a time, as it is rendered
    for tree in (parse(part) if isinstance(part, str) else part for part in parts):
        for node in tree.walk():
            for image_token in _images(node.inline_tokens):
                src = str(image_token.attrs.get("src", ""))
                if src and safe_url(src) and src not in urls:
                    urls.append(src)
    return urls


def _images(tokens: Sequence[Token]) -> Iterator[Token]:
    """The image tokens among ``tokens``, and in their alt text (``![![a](x)](y)``)."""
    for token in tokens:
        if token.type == "image":
            yield token
            yield from _images(token.children or [])
