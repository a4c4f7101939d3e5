"""A long reply cut into sections that parse alone exactly as they parse in the whole.

markdown-it-py keeps a token object per table cell, span and text run: a 1 MB reply of tables
and prose took 123 MiB of tokens (issue 11), all alive until the last card was built. The
renderer makes a top-level block's pieces from that block alone (``renderers._pieces``), so a
reply may be parsed, rendered and dropped a section at a time, if no block crosses a cut.

A cut goes before a line that starts in column 0 after a blank line: there every open block
has ended — a paragraph, a table, a list item's content, a quote, indented code — except
what may hold blank lines: a fenced code block (tracked here), a list that goes on with its
next item (no cut before a list marker), and HTML blocks such as ``<pre>`` or ``<!--`` (a
reply with a line starting with ``<`` is not cut). Link reference definitions and footnotes
reach across the document: a reply with ``]:``, ``[^`` or ``^[`` anywhere is not cut either,
nor one with a fence indented by one to three spaces (inside a list item: not tracked) or a
line broken by a lone CR (markdown-it's line break, which the patterns here do not read).
What is not cut is parsed whole, as before; tests/test_render_sections.py checks sections
against the whole parse on the CommonMark examples and generated replies.
"""

from __future__ import annotations

import bisect
import itertools
import re

__all__ = ["SECTIONED_FROM", "SECTION_CHARS", "split_sections"]

# A section's tokens: ~2 MiB for 8 K characters of tables, the densest markdown (measured
# with tracemalloc).
SECTION_CHARS = 8 * 1024
# Shorter replies are parsed whole: their tokens fit (~8 MiB at most), and each section costs
# a parse's fixed start-up.
SECTIONED_FROM = 64 * 1024

# Each pattern starts with the line break before the line it is about (the text is read with
# one put in front): a literal first character makes them scan at memchr speed, 20-40× faster
# on a 50 KB log than the same patterns anchored with ``^`` (bench/render.py).
_NOT_CUT = re.compile(r"\n {0,3}<|\n {1,3}(?:```|~~~)")  # HTML blocks; fences in list items
# What reaches across the reply: reference and footnote definitions, footnote references
# and inline footnotes (numbered in the order they appear in the whole reply).
_GLOBAL_MARKS = ("]:", "[^", "^[")
_LONE_CR = re.compile(r"\r(?!\n)")  # markdown-it reads a lone CR as a line break, too
# Past _NOT_CUT, every fence line is in column 0: its marker, and what follows on the line.
_FENCE_LINE = re.compile(r"\n(`{3,}|~{3,})([^\n]*)")
# A blank line (spaces and tabs only, CommonMark's) before a line that starts in column 0.
_CUT_POINT = re.compile(r"\n[ \t\r]*\n(?=[^ \t\r\n])")
_LIST_MARKER = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?:[ \t\r\n]|$)")


def split_sections(
    text: str, size: int = SECTION_CHARS, *, shortest: int = SECTIONED_FROM
) -> list[str]:
    """``text`` as consecutive sections of about ``size`` characters or more (``"".join``
    gives it back), each parsing as it does in the whole; ``[text]`` when it is shorter than
    ``shortest`` or holds something a cut could change (module docstring). Regular
    expressions find the few fence lines and cut points: a 1 MB reply is not read line by
    line in Python."""
    if len(text) < max(2 * size, shortest) or any(mark in text for mark in _GLOBAL_MARKS):
        return [text]
    if "\r" in text and _LONE_CR.search(text):  # a line break these patterns do not see
        return [text]
    padded = "\n" + text  # every line, the first too, after a line break; offsets + 1
    if _NOT_CUT.search(padded):
        return [text]
    fenced = _fenced(padded)  # [open, close) offsets in ``padded``, flattened and sorted
    cuts, start = [], 0
    for match in _CUT_POINT.finditer(padded):
        at = match.end() - 1  # in ``text``: where the column-0 line starts
        if at - start < size or _LIST_MARKER.match(text, at):
            continue
        if bisect.bisect_right(fenced, at + 1) % 2:  # inside a fenced code block
            continue
        cuts.append(at)
        start = at
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _fenced(text: str) -> list[int]:
    """Where fenced code blocks open and close, as ``[open, close, open, close…]`` (an
    unclosed one runs to the end). A backtick fence's info string holds no backtick
    (CommonMark 4.5); a closing fence is the same character, at least as long, nothing
    but spaces after."""
    bounds: list[int] = []
    fence = ""
    for match in _FENCE_LINE.finditer(text):
        marker, rest = match.group(1), match.group(2)
        if not fence:
            if marker[0] == "~" or "`" not in rest:
                fence = marker
                bounds.append(match.start())
        elif marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip(" \t\r"):
            fence = ""
            bounds.append(match.end())
    return bounds
