"""Budgets and splitting: big replies become several cards, each within Feishu's per-card
limits, with nothing lost, nothing repeated and nothing reordered."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from render_checks import check_cards, words

from lark_cards.render import (
    Budget,
    RenderOptions,
    render_markdown,
    render_reply,
    shrink,
)
from lark_cards.render.pieces import MarkdownPiece, wire_size
from lark_cards.render.renderers import markdown_text, render_pieces
from lark_cards.render.scan import markdown_tables
from lark_cards.render.validate import count_components, count_tables, validate_card

CARD_BYTES = 30 * 1024
MARKER = re.compile(r"<font color='grey'>(\d+)/(\d+)</font>")
COMMONMARK = MarkdownIt("commonmark")


def elements(card: dict[str, Any]) -> list[dict[str, Any]]:
    return card["body"]["elements"]


def is_marker(element: dict[str, Any]) -> bool:
    return element.get("tag") == "markdown" and bool(MARKER.fullmatch(element["content"]))


def content_elements(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's elements without the "k/N" part marker."""
    return [e for e in elements(card) if not is_marker(e)]


def markers(cards: list[dict[str, Any]]) -> list[list[tuple[int, int]]]:
    """Per card, every part marker found anywhere in its elements."""
    found = []
    for card in cards:
        marks = [
            (int(m.group(1)), int(m.group(2)))
            for e in elements(card)
            if e.get("tag") == "markdown"
            for m in [MARKER.fullmatch(e["content"])]
            if m
        ]
        found.append(marks)
    return found


def fenced(element: dict[str, Any]) -> tuple[str, str]:
    """(language, code) of a markdown element that must be exactly one complete fence, read
    by an independent CommonMark parser."""
    assert element["tag"] == "markdown"
    tokens = COMMONMARK.parse(element["content"])
    assert [t.type for t in tokens] == ["fence"], element["content"][:200]
    assert tokens[0].content.endswith("\n")
    return tokens[0].info, tokens[0].content[:-1]


def assert_within_budget(cards: list[dict[str, Any]], max_bytes: int = CARD_BYTES) -> None:
    for card in cards:
        assert validate_card(card) == []
        assert wire_size(card) <= max_bytes
        # The limit is in UTF-8 bytes of the JSON, never in characters.
        assert len(json.dumps(card, ensure_ascii=False).encode()) <= max_bytes


# ----- a huge log in one fence -------------------------------------------------------------


LOG_LINES = [
    f"2024-05-01 12:{i // 60 % 60:02d}:{i % 60:02d} INFO worker-{i % 17} "
    f"handled request id={i:06d} path=/api/v1/items status=200"
    for i in range(1330)
]


def test_log_of_120_kb_in_one_fence_becomes_several_complete_fences():
    text = "```python\n" + "\n".join(LOG_LINES) + "\n```"
    assert 110_000 < len(text.encode()) < 130_000
    cards = render_markdown(text)
    assert len(cards) >= 4  # 120 KB cannot go in fewer than four 30 KB cards
    assert_within_budget(cards)
    codes = []
    for card in cards:
        [element] = content_elements(card)  # one code part per card, nothing else
        language, code = fenced(element)
        assert language == "python"
        codes.append(code)
    assert all(codes)
    assert "\n".join(codes).split("\n") == LOG_LINES


def test_code_containing_fences_is_refenced_longer_in_every_part():
    lines = [f"step {i}" if i % 50 else "```" for i in range(3000)]
    text = "````text\n" + "\n".join(lines) + "\n````"
    cards = render_markdown(text)
    assert len(cards) >= 2
    assert_within_budget(cards)
    parts = [fenced(element) for card in cards for element in content_elements(card)]
    assert {language for language, _ in parts} == {""}  # "text" → Feishu's plain text
    assert "\n".join(code for _, code in parts).split("\n") == lines


def test_code_language_unknown_to_feishu_stays_the_same_in_every_part():
    text = "```brainfuck\n" + "\n".join(f"+++[>++<-] {i}" for i in range(4000)) + "\n```"
    cards = render_markdown(text)
    assert len(cards) >= 2
    languages = {fenced(e)[0] for card in cards for e in content_elements(card)}
    assert languages == {""}  # unknown → plain, the same in every part


# ----- a 600-row table -----------------------------------------------------------------------


def host_rows(count: int) -> list[tuple[str, str, str, str]]:
    return [
        (
            f"host-{i:03d}.example.internal",
            "ok" if i % 7 else "degraded",
            f"{i * 0.37:.2f}",
            f"r{i}",
        )
        for i in range(count)
    ]


def host_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| Host | Status | Load | Rack |", "|:---|:---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def test_600_row_table_splits_into_tables_with_the_same_columns_and_every_row_once():
    rows = host_rows(600)
    cards = render_markdown(host_table(rows))
    assert len(cards) >= 2
    assert_within_budget(cards)
    tables = []
    for card in cards:
        [table] = content_elements(card)
        assert table["tag"] == "table"
        tables.append(table)
    columns = tables[0]["columns"]
    assert [(c["display_name"], c.get("horizontal_align")) for c in columns] == [
        ("Host", "left"),
        ("Status", "center"),
        ("Load", "right"),
        ("Rack", None),
    ]
    assert all(table["columns"] == columns for table in tables)
    assert all(table["rows"] for table in tables)
    assert all(1 <= table["page_size"] <= 10 for table in tables)
    names = [c["name"] for c in columns]
    seen = [tuple(row[name] for name in names) for table in tables for row in table["rows"]]
    assert seen == rows


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("<b>Host</b>", "<b>Host</b>"),  # raw HTML is text, as in prose: no word is dropped
        ("Host<br>name", "Host name"),  # a line break in a column name is a space
        ("**Host** `id`", "Host id"),
        ("`a&amp;b` id", "a&b id"),  # code as the renderer shows it (Errbot escapes code too)
        ("![logo](https://e.com/l.png) Host", "logo Host"),
    ],
)
def test_column_names_keep_every_word_of_the_header(header: str, name: str) -> None:
    [card] = render_markdown(f"| {header} | b |\n|---|---|\n| 1 | 2 |\n")
    [table] = content_elements(card)
    assert [c["display_name"] for c in table["columns"]] == [name, "b"]


def test_wide_cjk_table_splits_by_bytes():
    rows = [(f"服务器{i}", "运行正常，负载较低，无需处理" * 3, str(i), "机房") for i in range(600)]
    cards = render_markdown(host_table(rows))
    assert len(cards) >= 4  # ~150 KB of UTF-8
    assert_within_budget(cards)
    seen = [
        tuple(row.values())
        for card in cards
        for element in content_elements(card)
        for row in element["rows"]
    ]
    assert seen == rows


# ----- table budget ----------------------------------------------------------------------------


SEVEN_TABLES = "\n\n".join(
    f"Table {k}\n\n| key | value |\n|---|---|\n| t{k}r1 | x |\n| t{k}r2 | y |" for k in range(7)
)


@pytest.mark.parametrize(
    ("budget", "per_card", "at_least"),
    [(Budget(), 5, 2), (Budget(max_tables=2), 2, 4), (Budget(max_tables=1), 1, 7)],
)
def test_seven_tables_spread_over_cards_within_the_table_budget(budget, per_card, at_least):
    cards = render_markdown(SEVEN_TABLES, options=RenderOptions(budget=budget))
    assert len(cards) >= at_least
    assert all(count_tables(card) <= per_card for card in cards)
    tables = [e for card in cards for e in elements(card) if e["tag"] == "table"]
    assert [table["rows"][0]["c0"] for table in tables] == [f"t{k}r1" for k in range(7)]
    check_cards(SEVEN_TABLES, cards)


def test_prose_with_nested_tables_keeps_at_most_four_tables_per_markdown_element():
    text = "\n\n".join(
        f"Region {k}:\n\n- item {k}\n\n  | a | b |\n  |---|---|\n  | n{k} | x |" for k in range(7)
    )
    cards = render_markdown(text)
    assert all(count_tables(card) <= 5 for card in cards)
    assert all(validate_card(card) == [] for card in cards)


def test_one_list_with_seven_nested_tables_respects_the_table_budget():
    text = "\n\n".join(f"- item {k}\n\n  | a | b |\n  |---|---|\n  | n{k} | x |" for k in range(7))
    cards = render_markdown(text)
    assert all(count_tables(card) <= 5 for card in cards)


# Tables nested in a list or a quote stay markdown pipe tables inside ``markdown`` elements:
# ≤ 5 tables per card and ≤ 4 per element (230099, §5.4) must hold for them as well.
GFM = MarkdownIt("commonmark").enable("table")


def nested_table(k: int, rows: int, indent: str = "") -> str:
    lines = ["| key | value |", "|---|:-:|"]
    lines += [f"| t{k}r{i} | {'cell ' * 8}{i} |" for i in range(rows)]
    return "\n".join(indent + line for line in lines)


def list_item_with_tables(count: int, rows: int) -> str:
    body = "\n\n".join(
        f"  Table {k} follows:\n\n{nested_table(k, rows, '  ')}" for k in range(count)
    )
    return f"- first item\n- one item holding {count} tables\n\n{body}\n- last item"


def tables_alone_in_a_list_item(count: int, rows: int) -> str:
    """An item holding only tables: no paragraph makes the list loose, so the renderer joins
    the item's blocks with "\n" — but must keep a blank line between tables."""
    body = "\n\n".join(nested_table(k, rows, "  ") for k in range(count))
    return f"- first item\n- {body[2:]}\n- last item"


def quote_with_tables(count: int, rows: int) -> str:
    body = "\n\n".join(f"Table {k} follows:\n\n{nested_table(k, rows)}" for k in range(count))
    return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))


def table_rows(cards: list[dict[str, Any]]) -> list[str]:
    """The first cell of every body row of every pipe table in the cards' markdown, in order,
    as a GFM reader sees them: a row cut off its header would not be a table row any more."""
    cells = []
    for card in cards:
        for element in content_elements(card):
            if element["tag"] == "markdown":
                tokens = GFM.parse(element["content"])
                for i, token in enumerate(tokens):
                    if token.type == "tr_open" and tokens[i + 1].type == "td_open":
                        cells.append(tokens[i + 2].content)
    return cells


def gfm_tables(markdown: str) -> int:
    """Tables as an independent GFM reader finds them (the validator's count is under test)."""
    return sum(token.type == "table_open" for token in GFM.parse(markdown))


def check_nested_tables(markdown: str, budget: Budget, tables: int, rows: int) -> None:
    cards = render_markdown(markdown, options=RenderOptions(budget=budget))
    check_cards(markdown, cards)
    for card in cards:
        assert wire_size(card) <= budget.max_bytes
        contents = [element["content"] for element in content_elements(card)]
        assert len(contents) == len(content_elements(card))  # markdown elements only
        assert count_tables(card) == sum(map(gfm_tables, contents)) <= budget.max_tables
        for content in contents:
            assert markdown_tables(content) == gfm_tables(content) <= 4
            # a piece cut from a list item must not turn into an indented code block
            assert "code_block" not in [t.type for t in COMMONMARK.parse(content)]
    assert table_rows(cards) == [f"t{k}r{i}" for k in range(tables) for i in range(rows)]


BUDGETS = [pytest.param(Budget(), id="default"), pytest.param(Budget(max_tables=2), id="two")]


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("rows", [2, 60, 400])  # 400 rows: ~25 KB, a table cut between rows
def test_one_list_item_with_eight_tables_respects_every_table_limit(budget, rows):
    check_nested_tables(list_item_with_tables(8, rows), budget, 8, rows)


@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("rows", [2, 60, 400])
def test_a_quote_with_six_tables_respects_every_table_limit(budget, rows):
    check_nested_tables(quote_with_tables(6, rows), budget, 6, rows)


@pytest.mark.parametrize("budget", BUDGETS)
def test_a_quoted_list_item_with_tables_respects_every_table_limit(budget):
    check_nested_tables(quoted(list_item_with_tables(6, 3)), budget, 6, 3)


def quoted(markdown: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in markdown.split("\n"))


def in_item(markdown: str) -> str:
    return "- item\n\n" + "\n".join(f"  {line}" if line else "" for line in markdown.split("\n"))


NESTINGS = {
    "list item": list_item_with_tables,
    "tables alone in a list item": tables_alone_in_a_list_item,
    "quote": quote_with_tables,
    "list item in a quote": lambda count, rows: quoted(list_item_with_tables(count, rows)),
    "quote in a list item": lambda count, rows: in_item(quote_with_tables(count, rows)),
    "quote in a quote": lambda count, rows: quoted(quote_with_tables(count, rows)),
}


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(sorted(NESTINGS)),
    st.integers(min_value=1, max_value=10),
    st.integers(min_value=1, max_value=250),
    st.sampled_from([1, 2, 5]),
    st.sampled_from([6 * 1024, 30 * 1024]),
)
def test_nested_tables_of_any_number_and_size_respect_every_limit(
    nesting, tables, rows, max_tables, max_bytes
):
    budget = Budget(max_bytes=max_bytes, margin=1024, max_tables=max_tables)
    check_nested_tables(NESTINGS[nesting](tables, rows), budget, tables, rows)


@pytest.mark.parametrize("rows", [1, 3])
def test_tables_alone_in_a_list_item_stay_apart(rows):
    """Two tables in a tight list item used to be rendered on consecutive lines: the second
    table's header became a row of the first, and splitting between them recursed forever
    (RecursionError: the reply was lost)."""
    markdown = tables_alone_in_a_list_item(2, rows)
    text = markdown_text(markdown)
    assert gfm_tables(text) == 2
    check_nested_tables(markdown, Budget(max_tables=1), 2, rows)


def test_a_part_that_cannot_shrink_is_not_split_again():
    """Overlapping tables (a row that is the next table's header) cannot be cut apart; the
    split must still end."""
    overlapping = "- | a |\n    |---|\n    | 1 |\n    | b |\n    |---|\n    | 2 |"
    parts = MarkdownPiece.of(overlapping).split(10**6, max_tables=1)
    assert 1 <= len(parts) <= 3


def test_split_puts_at_most_four_tables_in_a_part_whatever_the_bytes():
    whole = MarkdownPiece.of(markdown_text(list_item_with_tables(8, 2)))  # ~3 KB
    assert whole.tables == 8
    parts = whole.split(CARD_BYTES)
    assert [part.tables for part in parts] == [4, 4]
    assert parts[0].content + parts[1].joint + parts[1].content == whole.content


def test_split_recounts_the_tables_of_every_part():
    whole = MarkdownPiece.of(markdown_text(quote_with_tables(8, 60)))
    parts = whole.split(8 * 1024)
    assert len(parts) >= 4
    for part in parts:
        assert isinstance(part, MarkdownPiece)
        assert part.tables == markdown_tables(part.element()["content"]) <= 4
        assert wire_size(part.element()) <= 8 * 1024
    assert sum(part.tables for part in parts) >= 8  # tables cut between rows repeat the header


def test_pieces_of_a_list_or_quote_with_tables_merge_back_into_the_same_text():
    for markdown in (list_item_with_tables(3, 2), quote_with_tables(3, 2)):
        pieces = render_pieces(markdown)
        assert all(isinstance(piece, MarkdownPiece) and piece.tables <= 1 for piece in pieces)
        whole = pieces[0]
        for piece in pieces[1:]:
            whole = whole.merged(piece)
        assert whole.content == whole.element()["content"] == markdown_text(markdown)
        assert whole.tables == 3
    [card] = render_markdown(quote_with_tables(3, 2))  # one element, as before the split
    assert content_elements(card) == [
        {"tag": "markdown", "content": markdown_text(quote_with_tables(3, 2))}
    ]


def test_a_piece_cut_from_a_list_item_shows_without_the_item_indentation():
    item = MarkdownPiece.of(
        "- item\n\n    text\n\n    | a |\n    |---|\n    | 1 |\n\n    | b |\n    |---|"
    )
    first, second = item.split(CARD_BYTES, max_tables=1)
    assert first.element()["content"] == "- item\n\n    text\n\n    | a |\n    |---|\n    | 1 |"
    assert (second.joint, second.content) == ("\n\n", "    | b |\n    |---|")
    assert second.element()["content"] == "| b |\n|---|"
    quoted = MarkdownPiece.of(">     | b |\n>     |---|\n>\n>     more\n> - next\n>     item")
    assert quoted.element()["content"] == "> | b |\n> |---|\n>\n> more\n> - next\n>     item"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("<br/>1. ", "\n1&#46;"), ("a<br>- b", "a\n&#45; b"), ("a<br># c", "a\n&#35; c")],
)
def test_text_after_a_br_tag_is_escaped_as_a_line_start(text, expected):
    # found by test_render_properties: "1." after <br> became an empty list item, "1" was lost
    assert markdown_text(text) == expected
    check_cards(text, render_markdown(text))


# ----- component budget ----------------------------------------------------------------------


PARAGRAPHS = [f"Paragraph number {i} says hello." for i in range(300)]
RULED = "\n\n---\n\n".join(PARAGRAPHS)


@pytest.mark.parametrize("max_components", [200, 40])
def test_many_rules_stay_within_the_component_budget(max_components):
    options = RenderOptions(budget=Budget(max_components=max_components))
    cards = render_markdown(RULED, options=options)
    assert len(cards) >= 599 // max_components + 1
    assert all(count_components(card) <= max_components for card in cards)
    assert_within_budget(cards)
    prose = [e["content"] for card in cards for e in content_elements(card) if e["tag"] != "hr"]
    assert prose == PARAGRAPHS  # each paragraph once, in order (rules keep them apart)
    assert sum(e["tag"] == "hr" for card in cards for e in elements(card)) == 299


# ----- part markers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["**hello**", host_table(host_rows(20)), "```\n" + "\n".join(LOG_LINES[:50]) + "\n```"],
)
def test_no_part_marker_when_not_split(text):
    [card] = render_markdown(text)
    assert markers([card]) == [[]]


@pytest.mark.parametrize(
    "text",
    [
        "```python\n" + "\n".join(LOG_LINES) + "\n```",
        host_table(host_rows(600)),
        RULED,
        SEVEN_TABLES,
    ],
)
def test_part_markers_one_to_n_exactly_when_split(text):
    options = RenderOptions(budget=Budget(max_tables=2))
    cards = render_markdown(text, options=options)
    count = len(cards)
    assert count > 1
    assert markers(cards) == [[(k, count)] for k in range(1, count + 1)]
    assert all(is_marker(elements(card)[-1]) for card in cards)  # at the end of each card


# ----- one enormous line ---------------------------------------------------------------------


def test_one_enormous_line_of_prose_is_cut_without_losing_anything():
    line = " ".join(f"word{i}" for i in range(25_000))  # ~170 KB, no newline at all
    cards = render_markdown(line)
    assert len(cards) >= 6
    assert_within_budget(cards)
    shown = "".join(e["content"] for card in cards for e in content_elements(card))
    # every character once, in order (cuts may add line breaks, nothing else)
    assert "".join(shown.split()) == "".join(line.split())


def test_one_enormous_line_of_prose_is_cut_between_words():
    line = " ".join(f"word{i}" for i in range(25_000))
    cards = render_markdown(line)
    shown = "\n".join(e["content"] for card in cards for e in content_elements(card))
    assert words(shown) == words(line)


def test_one_enormous_line_of_code_keeps_every_character():
    line = "x = '" + "abcdefghij" * 12_000 + "'"
    cards = render_markdown(f"```python\n{line}\n```")
    assert len(cards) >= 4
    assert_within_budget(cards)
    parts = [fenced(e) for card in cards for e in content_elements(card)]
    assert {language for language, _ in parts} == {"python"}
    assert "".join(code for _, code in parts).replace("\n", "") == line


def test_one_enormous_line_of_escaped_characters_is_never_cut_inside_an_entity():
    line = "a*b_c " * 20_000  # every * and _ becomes an &#NN; entity
    cards = render_markdown(line)
    assert len(cards) >= 4
    assert_within_budget(cards)
    for card in cards:
        for element in content_elements(card):
            text = element["content"]
            # every & starts a whole entity, and no entity is left dangling at a cut
            assert re.fullmatch(r"(?:[^&]|&#\d+;)*", text), text[:80]
    check_cards(line, cards)


def test_one_enormous_line_with_colours_is_not_cut_inside_a_tag():
    line = " ".join(f"`svc-{i}`{{:color='red'}} is down" for i in range(4000))
    cards = render_markdown(line)
    assert len(cards) > 1
    for card in cards:
        for element in content_elements(card):
            text = element["content"]
            assert text.count("<font") == text.count("</font>"), text[:80]


# ----- bytes, not characters -------------------------------------------------------------------


def test_wire_size_counts_cjk_in_utf8_bytes():
    assert wire_size("中" * 100) - wire_size("") == 300
    assert wire_size("a" * 100) - wire_size("") == 100


def test_cjk_text_is_split_by_bytes_not_characters():
    cjk = "这是一个很长的中文句子，用来测试字节预算。" * 600  # 12 600 characters, 37 800 bytes
    assert len(cjk) < CARD_BYTES < len(cjk.encode())
    cards = render_markdown(cjk)
    assert len(cards) >= 2
    assert_within_budget(cards)
    shown = "".join(e["content"] for card in cards for e in content_elements(card))
    assert shown.replace("\n", "") == cjk
    # the same number of ASCII characters fits in one card
    assert len(render_markdown("x" * len(cjk))) == 1


# ----- text or card (auto mode) ---------------------------------------------------------------


AUTO = RenderOptions(mode="auto")


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "Deployment finished in 3 minutes.\nAll 12 hosts are healthy.",
        "2 * 3 = 6 and 5 < 7",
        "snake_case_name stays as typed",
        "你好，世界",
    ],
)
def test_auto_mode_sends_plain_text_as_a_text_message(text):
    [item] = render_reply(text, options=AUTO)
    assert item.msg_type == "text"
    assert item.content == {"text": text}


@pytest.mark.parametrize(
    "text",
    [
        "**bold** move",
        "run `kubectl get pods`",
        "# Title",
        "- one\n- two",
        "1. first",
        "> quoted",
        "see [docs](https://example.com)",
        "~~old~~ new",
        "---",
        "```\ncode\n```",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "status{: color='red'}",
    ],
)
def test_auto_mode_sends_anything_with_markdown_as_cards(text):
    items = render_reply(text, options=AUTO)
    assert items
    assert all(item.msg_type == "interactive" for item in items)
    assert all(item.content["schema"] == "2.0" for item in items)


@pytest.mark.parametrize(
    "text",
    [
        '<at user_id="all" 1>所有人</ at>',  # not HTML to the markdown parser: stays "plain"
        "ping < at user_id=all>everyone</at>",
        '<AT user_id="ou_ceo">boss</AT> look',
    ],
)
def test_auto_mode_text_messages_never_carry_a_live_mention(text):
    items = render_reply(text, options=AUTO)
    for item in items:
        body = item.content.get("body")  # a card's summary is plain text, never parsed
        shown = item.content["text"] if item.msg_type == "text" else json.dumps(body)
        assert not re.search(r"<\s*/?\s*at\b", shown, re.IGNORECASE)
    texts = [item.content["text"] for item in items if item.msg_type == "text"]
    assert all(t.replace("\u2060", "") == text for t in texts)  # shown as typed


def test_card_mode_is_the_default_and_sends_even_plain_text_as_a_card():
    [item] = render_reply("hello world")
    assert item.msg_type == "interactive"
    assert item.content["body"]["elements"][0] == {"tag": "markdown", "content": "hello world"}


def test_auto_mode_splits_a_long_plain_text_into_messages_in_order():
    text = "\n".join(f"line {i} of a long plain report" for i in range(8000))  # ~250 KB
    items = render_reply(text, options=AUTO)
    assert len(items) >= 4
    assert all(item.msg_type == "text" for item in items)
    assert all(len(item.content["text"].encode()) <= 150 * 1024 for item in items)
    assert "".join(item.content["text"] for item in items) == text


def test_auto_mode_keeps_order_around_an_enormous_line():
    text = "first line\n" + "x" * 200_000
    items = render_reply(text, options=AUTO)
    assert all(item.msg_type == "text" for item in items)
    assert "".join(item.content["text"] for item in items) == text


# ----- the chat-list summary -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# Deploy **finished** ok\n\nmore text below", "Deploy finished ok"),
        ("Build `1234` passed\nsecond line", "Build 1234 passed"),
        ("\n\n- first item\n- second item", "first item"),
        ("| Host | Status |\n|---|---|\n| a | ok |", "a: ok"),  # a row, not the header
        ("| Host | Status | ms |\n|---|---|---|\n| a | **ok** | 3 |", "a · ok · 3"),
        ("| Host |\n|---|\n| a |\n\nAll hosts answer.", "All hosts answer."),
        ("```\nline one\nline two\n```", "line one"),
    ],
)
def test_summary_is_the_first_line_of_words(text, expected):
    [card] = render_markdown(text)
    assert card["config"]["summary"]["content"] == expected


def test_summary_of_a_long_first_line_is_shortened():
    first = " ".join(f"word{i}" for i in range(40))
    [card] = render_markdown(f"{first}\n\nsecond paragraph")
    preview = card["config"]["summary"]["content"]
    assert len(preview) <= 60
    assert preview.endswith("…")
    assert first.startswith(preview[:-1])


def test_every_part_of_a_split_reply_has_the_summary():
    text = "Nightly log\n\n```\n" + "\n".join(LOG_LINES) + "\n```"
    cards = render_markdown(text)
    assert len(cards) > 1
    assert [card["config"]["summary"]["content"] for card in cards] == ["Nightly log"] * len(cards)


def test_a_retry_after_230099_splits_prose_that_holds_several_tables():
    """Pieces merged with 3-4 tables must be split again when the retry allows only 2."""
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n"
    markdown = "\n".join(
        f"- item {i}\n\n  {table.replace(chr(10), chr(10) + '  ')}" for i in range(4)
    )
    options = RenderOptions()
    [card] = render_reply(markdown, options=options)
    assert count_tables(card.content) == 4
    retried = shrink(card, options)  # Budget.smaller(): at most 2 tables per card
    assert len(retried) >= 2
    assert all(count_tables(item.content) <= 2 for item in retried)
    check_cards(markdown, [item.content for item in retried])


def test_as_text_leaves_out_pieces_without_words():
    """A card with a rule or buttons sent as text has no empty paragraphs for them."""
    from lark_cards.render import as_text, render_reply

    [card] = render_reply("before\n\n---\n\nafter")
    [post] = as_text(card)
    lines = [node[0]["text"] for node in post.content["zh_cn"]["content"]]
    assert lines == ["before", "", "after"]
