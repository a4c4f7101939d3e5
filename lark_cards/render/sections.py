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
reach across the document: a reply with ``]:`` anywhere is not cut either, nor one with a
fence indented by one to three spaces (inside a list item: not tracked). What is not cut is
parsed whole, as before; tests/test_render_sections.py checks sections against the whole
parse on the CommonMark examples and generated replies.
"""

from __future__ import annotations

import itertools
import re

__all__ = ["SECTION_CHARS", "split_sections"]

# A section's tokens: ~2 MiB for 8 K characters of tables, the densest markdown (measured
# with tracemalloc); shorter replies are parsed whole.
SECTION_CHARS = 8 * 1024

_NOT_CUT = re.compile(r"\]:|^ {0,3}<|^ {1,3}(?:```|~~~)", re.MULTILINE)
_FENCE = re.compile(r"(`{3,}|~{3,})(.*)")
_LIST_MARKER = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")


def split_sections(text: str, size: int = SECTION_CHARS) -> list[str]:
    """``text`` as consecutive sections of about ``size`` characters or more (``"".join``
    gives it back), each parsing as it does in the whole; ``[text]`` when it is short or
    holds something a cut could change (module docstring)."""
    if len(text) < 2 * size or _NOT_CUT.search(text):
        return [text]
    cuts, start, at = [], 0, 0
    fence = ""  # the open fence's marker, or ""
    blank_before = False
    for line in _lines(text):
        blank = not line.strip(" \t\r\n")  # CommonMark's blank line: spaces and tabs only
        if fence:
            fence = "" if _closes(line, fence) else fence
        else:
            starts_column_0 = not blank and line[0] not in " \t"
            after_blank = blank_before and starts_column_0 and not _LIST_MARKER.match(line)
            if after_blank and at - start >= size:  # every block before has ended: a cut
                cuts.append(at)
                start = at
            fence = _opens(line)
        blank_before = blank
        at += len(line)
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _lines(text: str) -> list[str]:
    """The lines as markdown-it cuts them, each with its "\\n" (``str.splitlines`` also cuts
    at U+2028 and others, which markdown-it reads as text: a cut there would split a line)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines


def _opens(line: str) -> str:
    """The marker of the fence ``line`` opens in column 0, or "" (a backtick fence's info
    string may hold no backtick, CommonMark 4.5)."""
    match = _FENCE.match(line)
    if match is None or (match.group(1)[0] == "`" and "`" in match.group(2)):
        return ""
    return match.group(1)


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes the fence opened by ``fence``: the same character, at least as
    many, nothing but spaces after (up to three spaces before, as CommonMark allows)."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return False
    run = len(stripped) - len(stripped.lstrip(fence[0]))
    return run >= len(fence) and not stripped[run:].strip(" \t\r\n")
