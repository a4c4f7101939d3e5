"""Sizes on the wire and lines cut to fit: the measures every piece is split by.

``wire_size`` is what Feishu's 30 KB limit counts (docs/feishu-platform.md §5.4); the rest
cut code and long lines into chunks of a byte budget, cheaply: logs are thousands of lines.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from typing import Any

__all__ = ["chunk_lines", "cut_line", "wire_size"]

_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def wire_size(value: Any) -> int:
    """Bytes ``value`` takes in the send request: card JSON, encoded again as the ``content``
    string (Feishu double-encodes), in UTF-8 — the measure the 30 KB limit applies to.

    The second encoding is arithmetic: compact JSON holds no raw control character (they are
    escaped already), so encoding it as a string only adds a backslash before each ``"`` and
    ``\\`` (``ensure_ascii=False`` leaves every other character as it is).
    """
    card_json = _compact(value)
    return len(card_json.encode()) + card_json.count('"') + card_json.count("\\")


def chunk_lines(lines: list[str], budget: int) -> list[str]:
    """Join lines into chunks of at most ``budget`` bytes. A line too long for one chunk is
    cut (see ``_cut``); its parts are rejoined without a line break inside a chunk."""
    budget = max(budget, 64)
    costs = _line_costs(lines)
    if max(costs, default=0) <= budget:  # no line to cut: running totals and bisect
        totals = [0, *itertools.accumulate(costs)]
        chunks, start = [], 0
        while start < len(lines):
            end = max(start + 1, bisect.bisect_right(totals, totals[start] + budget) - 1)
            chunks.append("\n".join(lines[start:end]))
            start = end
        return chunks or [""]
    return _chunk_cut_lines(lines, budget)


def _line_costs(lines: list[str]) -> list[int]:
    """``wire_size(line) + 2`` (its line break) for every line, the arithmetic way when no
    line holds a control character but tabs: UTF-8 bytes, 4 for the escaped quotes, 3 more
    for each ``"`` or ``\\`` and 2 more for each tab (both encodings escape them)."""
    if _RARE_CONTROL.search("".join(lines)):  # one scan; line breaks are not in ``lines``
        return [wire_size(line) + 2 for line in lines]
    return [
        len(line.encode()) + 6 + 3 * (line.count('"') + line.count("\\")) + 2 * line.count("\t")
        for line in lines
    ]


_RARE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")


def _chunk_cut_lines(lines: list[str], budget: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    used = 0
    for line in lines:
        size = wire_size(line)
        parts = cut_line(line, budget) if size > budget else [line]
        for index, part in enumerate(parts):
            joiner = "" if index else "\n"
            # "\n" is 2 bytes once escaped; a whole line's size is known already
            cost = (size if len(parts) == 1 else wire_size(part)) + (2 if joiner else 0)
            if used and used + cost > budget:
                chunks.append(current)
                current, used, joiner = "", 0, ""
            current += (joiner if used else "") + part
            used += cost
    chunks.append(current)
    return chunks


def cut_line(line: str, budget: int) -> list[str]:
    """Cut a line that alone exceeds ``budget``: between words when possible, and never
    inside an ``&#NN;`` entity or an HTML-like tag such as ``<font color='red'>``."""
    parts = []
    while wire_size(line) > budget:
        limit = max(1, budget // 8)  # a character costs at most 8 bytes once double-encoded
        cut = line.rfind(" ", limit // 2, limit) + 1 or limit
        tag = line.rfind("<", 0, cut)
        if tag > 0 and line.rfind(">", 0, cut) < tag:
            cut = tag
        entity = line.rfind("&", max(0, cut - 8), cut)
        if entity > 0 and ";" not in line[entity:cut]:
            cut = entity
        parts.append(line[:cut])
        line = line[cut:]
    return [*parts, line]
