"""The syntax tree the renderers walk, built from markdown-it's tokens in one pass.

markdown-it-py's own ``SyntaxTreeNode`` builds the same shape recursively, re-scanning each
nested token list and creating a node object per token through ``__init__`` chains: on a
200-row table that costs a third of the parse itself (issue 11). :class:`Node` keeps only
what the renderers read — ``type`` (``paragraph`` for ``paragraph_open`` … ``_close``, the
token type for leaves, ``root`` at the top), ``children`` and, from the opening or leaf token,
``content``, ``attrs``, ``info``, ``tag``, ``meta``, ``hidden`` and ``markup`` — with the same
names and meanings. The tree stops at ``inline`` nodes: what is inside a paragraph, heading or
table cell stays markdown-it's flat token list (``Node.inline_tokens``), which the renderers
read in one pass (``renderers.inline``) — a node per span and text run cost more than the
rendering of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from markdown_it.token import Token

__all__ = ["Node", "build_tree"]


class Node:
    """One node: a block or span (its opening token) or a leaf token."""

    __slots__ = ("children", "holds_table", "token", "type")

    def __init__(self, type_: str, token: Token) -> None:
        self.type = type_
        self.token = token
        self.children: list[Node] = []
        self.holds_table = False  # a table somewhere below (set while the tree is built)

    @property
    def inline_tokens(self) -> list[Token]:
        """An ``inline`` node's tokens (text, spans as ``*_open`` … ``*_close``, images with
        their alt text as children); [] for any other node."""
        return self.token.children or [] if self.type == "inline" else []

    def walk(self) -> Iterator[Node]:
        """This node, then every node below it, depth first, in document order (down to
        ``inline`` nodes: their content is ``inline_tokens``)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    @property
    def content(self) -> str:
        return self.token.content

    @property
    def attrs(self) -> dict[str, Any]:
        return self.token.attrs

    @property
    def info(self) -> str:
        return self.token.info

    @property
    def tag(self) -> str:
        return self.token.tag

    @property
    def meta(self) -> dict[Any, Any]:
        return self.token.meta

    @property
    def hidden(self) -> bool:
        return self.token.hidden

    @property
    def markup(self) -> str:
        return self.token.markup

    def __repr__(self) -> str:
        return f"Node({self.type!r}, {len(self.children)} children)"


def build_tree(tokens: Sequence[Token]) -> Node:
    """The tree of a token stream (``MarkdownIt.parse``), down to its ``inline`` tokens."""
    root = Node("root", Token("root", "", 0))  # a blank token: the properties need no check
    _add(root, tokens)
    return root


def _add(parent: Node, tokens: Sequence[Token]) -> None:
    stack = [parent]
    siblings = parent.children  # the children of stack[-1], where the next node goes
    for token in tokens:
        nesting = token.nesting
        if nesting == 0:  # leaves, inline nodes among them: most tokens
            siblings.append(Node(token.type, token))
        elif nesting == 1:
            node = Node(token.type.removesuffix("_open"), token)
            siblings.append(node)
            if node.type == "table":  # the renderer lifts tables out of lists and quotes
                for ancestor in stack:
                    ancestor.holds_table = True
            stack.append(node)
            siblings = node.children
        elif len(stack) > 1:
            stack.pop()
            siblings = stack[-1].children
