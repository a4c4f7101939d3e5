"""Syntax tree → Feishu card pieces, through read-only dispatch tables (mdformat's design).

``BLOCK_RENDERERS`` turn block nodes into Feishu markdown text (used inside lists and quotes,
and for prose at the top level); their inline content goes through ``inline``
(render/inline.py). At the top level, ``render_pieces`` lifts code blocks, tables and lone
images out of the prose into pieces of their own, because those become native components or
must be split specially when a card runs out of room. Escaping happens only in
``syntax.escape``.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType

from markdown_it.token import Token

from lark_cards.render.inline import (
    RenderContext,
    footnote_number,
    inline,
    plain_tokens,
    styled,
)
from lark_cards.render.parser import parse
from lark_cards.render.pieces import CodePiece, ComponentPiece, MarkdownPiece, Piece, TablePiece
from lark_cards.render.sections import split_sections
from lark_cards.render.syntax import (
    code_language,
    escape,
    fenced_code,
    literal,
    safe_url,
)
from lark_cards.render.tree import Node

Render = Callable[[Node, RenderContext], str]  # a block node → Feishu markdown


def _plain(node: Node) -> str:
    """The words of a node without markup (table header names)."""
    if node.type == "inline":
        return plain_tokens(node.inline_tokens)
    return "".join(_plain(child) for child in node.children)


# ----- blocks as markdown text ---------------------------------------------------------------


def paragraph(node: Node, ctx: RenderContext) -> str:
    return styled(node, inline(node.children[0], ctx))


def heading(node: Node, ctx: RenderContext) -> str:
    level = int(node.tag[1])
    content = inline(node.children[0], ctx).replace("\n", " ")
    return f"{'#' * level} {styled(node, content)}"


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
        # the back-reference anchor is a block of its own after a note's last non-paragraph
        # block, or alone in an empty note (``[^1]:``): the number says where it belongs
        body = blocks([c for c in note.children if c.type != "footnote_anchor"], ctx, "\n")
        notes.append(f"<font color='grey'>&#91;{footnote_number(note)}&#93;</font> {body}")
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
