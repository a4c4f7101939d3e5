"""Reading Feishu card markdown as text: where its pipe tables and image keys are.

The validator counts tables and checks image keys with these, and ``MarkdownPiece`` splits
prose between tables with them, so a split cannot disagree with the check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# GFM pipe tables in a markdown element count toward the table limit (§5.4, UNCONFIRMED), and
# ``![alt](key)`` there needs an uploaded img_ key as much as an img component does (§5.6).
# Both are found in quotes and in lists too: a line is read after its container prefix, the
# blockquote markers and indentation that put it there (the renderer indents lists by four
# spaces, so a fence may be indented more than the three spaces CommonMark allows at the top).
_CONTAINER = " \t>"  # the characters of a container prefix
_FENCE = re.compile(r"`{3,}|~{3,}")
_DELIMITER_ROW = re.compile(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")
_CODE_SPAN = re.compile(r"(`+).+?\1")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)")


def _prose_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """``(number, line)`` for the lines of ``markdown`` (``str.splitlines``) outside fenced code
    blocks, where syntax is live; each line without its container prefix (see ``_CONTAINER``)."""
    fence, depth = "", 0  # the open fence, and how many quotes deep it opened
    for number, line in enumerate(markdown.splitlines()):
        text = line.lstrip(_CONTAINER)
        quotes = line[: len(line) - len(text)].count(">")
        if fence and quotes < depth:
            fence = ""  # a line outside the quote ends the quote, and the code in it
        match = _FENCE.match(text)
        if fence:
            closes = match and quotes == depth and match.group().startswith(fence)
            fence = "" if closes else fence
        elif match:
            fence, depth = match.group(), quotes
        else:
            yield number, text


def pipe_tables(markdown: str) -> list[tuple[int, int, int]]:
    """Every GFM pipe table in ``markdown`` — top level, quoted or in a list — as line numbers
    (``str.splitlines``): its header row, its delimiter row and the end of its body rows
    (exclusive). The one table scanner: the validator counts with it and ``MarkdownPiece``
    splits with it, so a split cannot disagree with the check.
    """
    if "|" not in markdown or "-" not in markdown:
        return []  # a table needs both (its delimiter row): most prose has no table to find
    tables: list[tuple[int, int, int]] = []
    previous = -1, ""  # the line before, if it is prose
    for number, line in _prose_lines(markdown):
        header = previous[1] if previous[0] == number - 1 else ""
        if "|" in line and "|" in header and _DELIMITER_ROW.fullmatch(line):
            tables.append((number - 1, number, number + 1))
        elif tables and tables[-1][2] == number and "|" in line:
            tables[-1] = (*tables[-1][:2], number + 1)  # one more body row
        previous = number, line
    return tables


def markdown_tables(markdown: str) -> int:
    """How many GFM pipe tables ``markdown`` holds (a header row, then a delimiter row)."""
    return len(pipe_tables(markdown))


def markdown_image_keys(markdown: str) -> list[str]:
    """The image keys of ``![alt](key)`` in ``markdown``, outside code."""
    return [
        key
        for _, line in _prose_lines(markdown)
        for key in _MD_IMAGE.findall(_CODE_SPAN.sub("", line))
    ]
