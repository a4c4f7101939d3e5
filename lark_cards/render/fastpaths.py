"""Two of markdown-it-py's core rules replaced by ones that make the same tokens, faster.

Issue 11 profiled the parse of Errbot's replies: ``normalize`` runs two regular expression
substitutions over the whole text even when it holds no CR and no NUL (40 % of a 50 KB log's
parse), and ``inline`` starts the inline parser for every paragraph, heading and table cell,
although most table cells — ``web-042``, ``up``, ``12 ms`` — hold no character an inline rule
can start at. Both replacements leave markdown-it-py the parser (its block rules, its inline
rules, its post-processing): they only skip work whose result is known.

- ``normalize``: ``\\r\\n?`` → ``\\n`` and NUL → U+FFFD (CommonMark 2.1, 2.3), with
  ``str.replace``, only when the text holds a CR or a NUL.
- ``inline``: a content in which no active inline rule can match anywhere is, to the inline
  parser, one run of pending text: one ``text`` token (none for an empty content). Each rule
  can only start at its own characters (``_RULE_CHARACTERS``: ``*`` and ``_`` for emphasis,
  ``[`` for links…); a parser with a rule not listed there, or with linkify on, keeps the
  stock rule. tests/test_render_fastpaths.py compares the token streams with the stock rules
  on every CommonMark example, the fixtures and generated text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

__all__ = ["install"]

# The characters at which each inline rule can match (markdown_it/rules_inline/*.py,
# mdit_py_plugins/footnote): anywhere else, no rule applies and the character stays text.
_RULE_CHARACTERS = {
    "text": "",  # consumes plain text itself
    "newline": "\n",
    "escape": "\\",
    "backticks": "`",
    "strikethrough": "~",
    "emphasis": "*_",
    "link": "[",
    "image": "!",
    "autolink": "<",
    "html_inline": "<",
    "entity": "&",
    "footnote_inline": "^",
    "footnote_ref": "[",
    "linkify": ":",  # does nothing unless options.linkify (then: no fast path, below)
}


def install(md: MarkdownIt) -> None:
    """Put the fast ``normalize`` and, when every active inline rule is known, the fast
    ``inline`` in place of markdown-it-py's own, in ``md``'s core ruler."""
    md.core.ruler.at("normalize", normalize)
    rules = md.inline.ruler.get_active_rules()
    if md.options.get("linkify") or any(rule not in _RULE_CHARACTERS for rule in rules):
        return
    live = "".join(sorted({char for rule in rules for char in _RULE_CHARACTERS[rule]}))
    md.core.ruler.at("inline", _inline_rule(re.compile(f"[{re.escape(live)}]")))


def normalize(state: StateCore) -> None:
    """markdown_it/rules_core/normalize.py: line endings to ``\\n``, NUL to U+FFFD."""
    src = state.src
    if "\r" in src:
        src = src.replace("\r\n", "\n").replace("\r", "\n")
    if "\0" in src:
        src = src.replace("\0", "\ufffd")
    state.src = src


def _inline_rule(live: re.Pattern[str]) -> Callable[[StateCore], None]:
    def inline(state: StateCore) -> None:
        """markdown_it/rules_core/inline.py, without the inline parser for plain contents."""
        md, env = state.md, state.env
        for token in state.tokens:
            if token.type != "inline":
                continue
            if token.children is None:
                token.children = []
            content = token.content
            if live.search(content) is None:
                if content:  # as StateInline.pushPending makes it, at level 0
                    token.children.append(Token("text", "", 0, content=content))
            else:
                md.inline.parse(content, md, env, token.children)

    return inline
