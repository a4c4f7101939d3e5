"""markdown-it-py configured for the markdown Errbot plugins write.

Errbot renders with Python-Markdown + ``extra``, so plugin output has GFM pipe tables,
``~~strike~~``, fenced code, raw HTML such as ``<br/>`` in table cells, HTML entities from its
auto-escaping jinja2 templates (``&lt;``, ``&#39;``) and attribute lists:
``{:color='red'}`` after inline code, emphasis or at the end of a paragraph
(errbot/core_plugins/test.md). CommonMark + table + strikethrough parse everything but the
attribute lists; one core rule below attaches those to the element they follow, as
``token.meta["attrs"]``, and removes their text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

from lark_cards.render import fastpaths
from lark_cards.render.tree import Node, build_tree

# Python-Markdown attr_list: ``{: key='value' key2="v" .class #id}`` (the colon is optional).
_ATTR_LIST = re.compile(r"\{:?[ \t]*((?:[^{}\n\\]|\\.)*?)[ \t]*\}")
_ATTR = re.compile(r"""([A-Za-z_][\w-]*)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^\s'"}]+))""")
_ATTR_TOKEN = re.compile(_ATTR.pattern + r"""|[.#][\w-]+""")
# Tokens an inline attribute list may follow directly (Python-Markdown applies it there).
_INLINE_TARGETS = {"code_inline", "em_close", "strong_close", "s_close", "link_close", "image"}


def build_parser(*, footnotes: bool = True) -> MarkdownIt:
    """The one parser configuration used everywhere (renderer, tests, CLI); ``footnotes=False``
    leaves out the footnote rules, for texts without footnote syntax (see ``parse``)."""
    md = MarkdownIt("commonmark", {"html": True})
    md.enable(["table", "strikethrough"])
    if footnotes:
        md.use(footnote_plugin)  # Python-Markdown extra's footnotes: [^1] … [^1]: the note
    md.core.ruler.push("errbot_attr_lists", _attr_lists)
    fastpaths.install(md)  # the same tokens, faster (issue 11)
    return md


def parse(text: str) -> Node:
    """Parse Errbot markdown into a syntax tree whose nodes may carry ``meta["attrs"]``.

    The footnote rules only ever act on ``[^`` (references, definitions) and ``^[`` (inline
    notes); their block, inline and core rules cost 5-15 % of a parse (bench/render.py), so
    a text without either is parsed without them — to the same tree."""
    # "^" first: one character is found at memchr speed, "[^" is ~50 µs on a 50 KB log
    footnotes = "^" in text and ("[^" in text or "^[" in text)
    return build_tree((_PARSER if footnotes else _PLAIN_PARSER).parse(text))


def is_attr_list(text: str) -> bool:
    """Only ``key=value``, ``.class`` and ``#id`` tokens: ``{like this}`` prose stays text."""
    return bool(text.strip()) and not _ATTR_TOKEN.sub("", text).strip()


def parse_attrs(text: str) -> dict[str, str]:
    """``color='red' bgcolor=cyan`` → ``{"color": "red", "bgcolor": "cyan"}``."""
    return {m[1].lower(): m[2] or m[3] or m[4] or "" for m in _ATTR.finditer(text)}


def _attr_lists(state: StateCore) -> None:
    if "{" not in state.src:  # no attribute list anywhere: nothing to look for
        return
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "inline" or not token.children or "{" not in token.content:
            continue  # an attribute list is in the content of the inline token it ends
        _inline_attr_lists(token.children)
        block_attrs = _trailing_block_attrs(token.children)
        if block_attrs and index > 0 and tokens[index - 1].type.endswith("_open"):
            tokens[index - 1].meta["attrs"] = block_attrs


def _inline_attr_lists(children: list[Token]) -> None:
    """``code``{:color='blue'} → the code token gets the attrs; the text loses them."""
    for position, child in enumerate(children):
        if child.type != "text" or position == 0:
            continue
        previous = children[position - 1]
        if previous.type not in _INLINE_TARGETS:
            continue
        match = _ATTR_LIST.match(child.content)
        if not match or not is_attr_list(match.group(1)):
            continue
        target = _opening(children, position - 1)
        target.meta["attrs"] = parse_attrs(match.group(1))
        child.content = child.content[match.end() :]


def _opening(children: Sequence[Token], close_index: int) -> Token:
    """The token that carries attrs for a span ending at ``close_index`` (its ``*_open``)."""
    close = children[close_index]
    if not close.type.endswith("_close"):
        return close
    opening_type = close.type.removesuffix("_close") + "_open"
    depth = 0
    for index in range(close_index - 1, -1, -1):
        token = children[index]
        if token.type == close.type:
            depth += 1
        elif token.type == opening_type:
            if depth == 0:
                return token
            depth -= 1
    return close


def _trailing_block_attrs(children: list[Token]) -> dict[str, str]:
    """A paragraph or heading ending in ``{: …}`` (own line or end of line) gets the attrs."""
    if not children or children[-1].type != "text":
        return {}
    last = children[-1]
    match = re.search(r"[ \t]*" + _ATTR_LIST.pattern + r"[ \t]*$", last.content)
    if not match or not is_attr_list(match.group(1)):
        return {}
    last.content = last.content[: match.start()]
    if not last.content:
        children.pop()
        if children and children[-1].type in ("softbreak", "hardbreak"):
            children.pop()
    return parse_attrs(match.group(1))


_PARSER = build_parser()
_PLAIN_PARSER = build_parser(footnotes=False)
