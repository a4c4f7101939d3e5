"""Sizes on the wire and lines cut to fit: the measures every piece is split by.

``wire_size`` is what Feishu's 30 KB limit counts (docs/feishu-platform.md §5.4); the rest
cut code and long lines into chunks of a byte budget, cheaply: logs are thousands of lines.
"""

from __future__ import annotations

import bisect
import itertools
import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["chunk_lines", "cut_line", "wire_size"]


def _compact_encoder() -> Callable[[Any], str]:
    """``json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode``, with the C
    encoder made once instead of per call (``iterencode`` builds one each time: 40 % of
    encoding a small card). No circular check: cards are trees."""
    make = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed: a C accelerator
    if make is None:  # the pure-Python json module: its own encoder, as it is
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    default = json.JSONEncoder().default
    chunks = make(None, default, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda value: "".join(chunks(value, 0))


_compact = _compact_encoder()


def wire_size(value: Any) -> int:
    """Bytes ``value`` takes in the send request: card JSON, encoded again as the ``content``
    string (Feishu double-encodes), in UTF-8 — the measure the 30 KB limit applies to.

    The second encoding is arithmetic: compact JSON holds no raw control character (they are
    escaped already), so encoding it as a string only adds a backslash before each ``"`` and
    ``\\`` (``ensure_ascii=False`` leaves every other character as it is). A string alone is
    all arithmetic (``_string_size``): the packer measures thousands of lines and prose pieces.
    """
    if type(value) is str:
        return _string_size(value)
    card_json = _compact(value)
    return len(card_json.encode()) + card_json.count('"') + card_json.count("\\")


def _string_size(text: str) -> int:
    """``wire_size(text)`` without encoding JSON. Once encoded, each ``"`` and ``\\`` is
    ``\\"`` / ``\\\\`` (2 bytes), a line break, tab, CR, BS or FF 2 bytes (``\\n``…), any other
    control character 6 (``\\u001b``), the quotes 2; the second encoding adds a backslash
    before each of those quotes and backslashes: 3 more per ``"`` and ``\\``, 2 per short
    escape, 6 per ``\\u`` escape… — in all, UTF-8 bytes + 4 + 3 × (quotes and backslashes)
    + 2 × short escapes + 6 × other controls. A control character is its own byte in UTF-8."""
    encoded = text.encode()
    size = len(encoded) + 4
    for special in (b'"', b"\\"):
        if special in encoded:  # a fast scan; most text has neither
            size += 3 * encoded.count(special)
    controls = len(encoded) - len(encoded.translate(None, _CONTROL_BYTES))
    if controls:
        short = encoded.count(b"\n")  # most often the only control character: count it first
        if controls > short:
            short += sum(encoded.count(byte) for byte in _OTHER_SHORT_ESCAPES)
        size += 2 * short + 6 * (controls - short)
    return size


_CONTROL_BYTES = bytes(range(0x20))
_OTHER_SHORT_ESCAPES = (b"\t", b"\r", b"\b", b"\f")


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
    """``wire_size(line) + 2`` (its line break) for every line, computed on the whole text at
    once when no line holds a control character but tabs (logs are thousands of lines): UTF-8
    bytes, 4 for the escaped quotes, 3 more for each ``"`` or ``\\`` and 2 more for each tab
    (both encodings escape them). In UTF-8 a control character is its own byte, never part of
    another character's bytes, so the check and the counts work on the bytes."""
    encoded = "\n".join(lines).encode()
    if len(encoded.translate(None, _RARE_CONTROL_BYTES)) != len(encoded):
        return [wire_size(line) + 2 for line in lines]
    for special, stand_in in _ESCAPED:  # a stand-in as long as the special once escaped twice
        if special in encoded:
            encoded = encoded.replace(special, stand_in)
    return [len(line) + 6 for line in encoded.split(b"\n")]


# Control characters JSON escapes as \uXXXX (or \n, \r…), the line break aside: their cost is
# left to ``wire_size``. Tabs are common in logs and cost a fixed 2 more bytes, so they stay.
_RARE_CONTROL_BYTES = bytes(range(0x09)) + bytes(range(0x0B, 0x20))
_ESCAPED = ((b"\\", b"xxxx"), (b'"', b"xxxx"), (b"\t", b"xxx"))


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
