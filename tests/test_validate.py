"""validate_card: what Feishu accepts (card JSON 2.0, feishu-platform.md §5.3-§5.5), its codes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_cards.api.errors import (
    CARD_SCHEMA_MISMATCH,
    INVALID_IMAGE_KEY,
    INVALID_PARAM,
    MESSAGE_TOO_LARGE,
    TOO_MANY_COMPONENTS,
    TOO_MANY_TABLES,
    UNKNOWN_TABLE_ROW_KEY,
)
from lark_cards.render.cardspec import CardLimits
from lark_cards.render.scan import markdown_image_keys, markdown_tables, pipe_tables
from lark_cards.render.validate import (
    Problem,
    card_size,
    count_components,
    count_tables,
    validate_card,
)


def md(content: str, **extra: Any) -> dict[str, Any]:
    return {"tag": "markdown", "content": content, **extra}


def plain(content: str) -> dict[str, Any]:
    return {"tag": "plain_text", "content": content}


def card(*elements: Any, **top: Any) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "body": {"elements": list(elements)},
        **top,
    }


def table(**extra: Any) -> dict[str, Any]:
    return {
        "tag": "table",
        "page_size": 10,
        "columns": [
            {"name": "c0", "display_name": "Name", "data_type": "markdown"},
            {"name": "c1", "display_name": "Count", "data_type": "number", "width": "auto"},
        ],
        "rows": [{"c0": "**a**", "c1": 1}, {"c0": "b"}],
        **extra,
    }


def rich_card() -> dict[str, Any]:
    """A card using every component the renderer and templates emit."""
    return {
        "schema": "2.0",
        "config": {
            "update_multi": True,
            "width_mode": "fill",
            "summary": {"content": "Deploy finished"},
            "enable_forward": True,
        },
        "card_link": {"url": "https://example.com/run/1"},
        "header": {
            "title": plain("Deploy"),
            "subtitle": {"tag": "lark_md", "content": "**prod**"},
            "template": "green",
            "text_tag_list": [
                {"tag": "text_tag", "text": plain("ok"), "color": "green", "element_id": "tag1"}
            ],
        },
        "body": {
            "direction": "vertical",
            "elements": [
                md("# Title\n\n- a\n    - b\n\n```python\nx = 1\n```", element_id="intro"),
                {"tag": "hr"},
                {
                    "tag": "img",
                    "img_key": "img_v2_abc",
                    "alt": plain(""),
                    "scale_type": "fit_horizontal",
                },
                table(header_style={"bold": True, "text_align": "left"}, row_height="40px"),
                {
                    "tag": "column_set",
                    "flex_mode": "bisect",
                    "columns": [
                        {
                            "tag": "column",
                            "width": "weighted",
                            "weight": 1,
                            "elements": [
                                {"tag": "div", "text": {**plain("Owner"), "text_color": "grey"}},
                                md("bob"),
                            ],
                        },
                        {"tag": "column", "width": "auto", "elements": [md("x")]},
                    ],
                },
                {
                    "tag": "button",
                    "text": plain("Deploy again"),
                    "type": "primary",
                    "behaviors": [{"type": "callback", "value": {"cmd": "!deploy prod"}}],
                    "element_id": "redeploy",
                },
                {
                    "tag": "button",
                    "text": plain("Open"),
                    "behaviors": [{"type": "open_url", "default_url": "https://example.com"}],
                },
                {
                    "tag": "collapsible_panel",
                    "expanded": False,
                    "header": {"title": {"tag": "markdown", "content": "**log**"}},
                    "elements": [md("line 1")],
                },
                {"tag": "interactive_container", "elements": [md("click")], "behaviors": []},
                {"tag": "form", "name": "f", "elements": [md("in a form")]},
            ],
        },
    }


def codes(problems: list[Problem]) -> list[tuple[int, str]]:
    return [(p.code, p.path) for p in problems]


def test_a_rich_card_is_valid() -> None:
    assert validate_card(rich_card()) == []


def test_the_minimal_card_is_valid() -> None:
    assert validate_card(card(md("hi"))) == []


def test_problem_is_a_frozen_value() -> None:
    problem = Problem(230025, "", "too big")
    with pytest.raises(AttributeError):
        problem.code = 1  # type: ignore[misc]
    assert problem == Problem(230025, "", "too big")


# --- structure (§5.3) ---------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [None, "1.0", 2.0, 2])
def test_schema_must_be_2_0(schema: Any) -> None:
    bad = card(md("x"), schema=schema)
    assert (CARD_SCHEMA_MISMATCH, "schema") in codes(validate_card(bad))


def test_a_1_0_card_without_schema_is_rejected() -> None:
    legacy = {"config": {"wide_screen_mode": True}, "elements": [{"tag": "div"}]}
    found = codes(validate_card(legacy))
    assert (CARD_SCHEMA_MISMATCH, "schema") in found
    assert (INVALID_PARAM, "elements") in found  # unknown top-level property
    assert (INVALID_PARAM, "body") in found  # no body


@pytest.mark.parametrize("value", [[], "card", None, 3])
def test_a_card_must_be_an_object(value: Any) -> None:
    assert codes(validate_card(value)) == [(INVALID_PARAM, "")]


def test_a_card_that_is_not_json_is_a_problem() -> None:
    assert codes(validate_card(card(md({1, 2})))) == [(INVALID_PARAM, "")]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c.update(i18n_elements={}), "i18n_elements"),
        (lambda c: c["config"].update(wide_screen_mode=True), "config.wide_screen_mode"),
        (lambda c: c["config"].update(update_multi=False), "config.update_multi"),
        (lambda c: c["config"].update(width_mode="wide"), "config.width_mode"),
        (lambda c: c["config"].update(summary={"text": "x"}), "config.summary.text"),
        (lambda c: c["card_link"].update(href="x"), "card_link.href"),
        (lambda c: c["header"].update(template="pink"), "header.template"),
        (
            lambda c: c["header"].update(title={"tag": "markdown", "content": "x"}),
            "header.title.tag",
        ),
        (lambda c: c["header"].update(title="Deploy"), "header.title"),
        (lambda c: c["header"].pop("title"), "header.title"),
        (lambda c: c["header"]["subtitle"].update(href="x"), "header.subtitle.href"),
        (lambda c: c["header"].update(text_tag_list=[{}] * 4), "header.text_tag_list"),
        (
            lambda c: c["header"]["text_tag_list"][0].update(tag="tag"),
            "header.text_tag_list[0].tag",
        ),
        (lambda c: c["body"].update(elements={}), "body.elements"),
        (lambda c: c["body"].update(margin="4px"), "body.margin"),
        (lambda c: c.pop("body"), "body"),
    ],
)
def test_structure_rules(mutate: Any, path: str) -> None:
    bad = rich_card()
    mutate(bad)
    assert (INVALID_PARAM, path) in codes(validate_card(bad))


@pytest.mark.parametrize(
    "tag", ["note", "action", "plain_text", "column", "header", None, "MARKDOWN"]
)
def test_unknown_component_tags_are_rejected(tag: str | None) -> None:
    assert codes(validate_card(card(md("ok"), {"tag": tag}))) == [
        (INVALID_PARAM, "body.elements[1]")
    ]


def test_an_element_that_is_not_an_object_is_rejected() -> None:
    assert codes(validate_card(card("text"))) == [(INVALID_PARAM, "body.elements[0]")]


@pytest.mark.parametrize(
    ("element", "path"),
    [
        (md("x", href="y"), "body.elements[0].href"),
        (md("x", text={"tag": "plain_text"}), "body.elements[0].text"),
        ({"tag": "hr", "content": "---"}, "body.elements[0].content"),
        ({"tag": "img", "img_key": "img_1", "url": "https://x/y.png"}, "body.elements[0].url"),
        ({"tag": "img", "img_key": "img_1", "alt": "text"}, "body.elements[0].alt"),
        ({**table(), "page": 2}, "body.elements[0].page"),
        ({**table(), "page_size": 11}, "body.elements[0].page_size"),
        ({**table(), "page_size": 0}, "body.elements[0].page_size"),
        ({**table(), "page_size": True}, "body.elements[0].page_size"),
        ({**table(), "row_height": "20px"}, "body.elements[0].row_height"),
        ({**table(), "row_height": "tall"}, "body.elements[0].row_height"),
        ({**table(), "header_style": {"italic": True}}, "body.elements[0].header_style.italic"),
        ({**table(), "columns": [], "rows": []}, "body.elements[0].columns"),
        (
            {**table(), "columns": [{"name": "a", "type": "text"}], "rows": []},
            "body.elements[0].columns[0].type",
        ),
        (
            {**table(), "columns": [{"name": "a", "data_type": "html"}], "rows": []},
            "body.elements[0].columns[0].data_type",
        ),
        (
            {**table(), "columns": [{"name": "a"}, {"name": "a"}], "rows": []},
            "body.elements[0].columns[1].name",
        ),
        ({**table(), "rows": "a|b"}, "body.elements[0].rows"),
        ({**table(), "rows": [["a"]]}, "body.elements[0].rows[0]"),
        ({"tag": "button", "text": plain("x"), "value": {"cmd": "!x"}}, "body.elements[0].value"),
        ({"tag": "button", "text": "x"}, "body.elements[0].text"),
        (
            {"tag": "button", "text": plain("x"), "behaviors": [{"type": "form"}]},
            "body.elements[0].behaviors[0]",
        ),
        (
            {"tag": "button", "text": plain("x"), "behaviors": [{"type": "open_url", "url": "u"}]},
            "body.elements[0].behaviors[0].url",
        ),
        (
            {"tag": "column_set", "columns": [{"tag": "column", "elements": [], "x": 1}]},
            "body.elements[0].columns[0].x",
        ),
        (
            {"tag": "column_set", "columns": [{"tag": "col", "elements": []}]},
            "body.elements[0].columns[0].tag",
        ),
        (
            {"tag": "column_set", "columns": [{"tag": "column", "elements": [{"tag": "note"}]}]},
            "body.elements[0].columns[0].elements[0]",
        ),
        (
            {"tag": "collapsible_panel", "header": {"title": plain("t"), "x": 1}, "elements": []},
            "body.elements[0].header.x",
        ),
        # div text is plain_text or lark_md (§5.7)
        ({"tag": "div", "text": {"tag": "markdown", "content": "x"}}, "body.elements[0].text.tag"),
    ],
)
def test_component_properties_are_strict(element: dict[str, Any], path: str) -> None:
    found = codes(validate_card(card(element)))
    assert found
    assert all(code == INVALID_PARAM for code, _ in found)
    assert (INVALID_PARAM, path) in found


def test_unlisted_component_properties_are_not_checked() -> None:
    """person/chart/input… are 2.0 tags whose properties the reference does not list (§5.5)."""
    assert validate_card(card({"tag": "person", "user_id": "ou_1", "size": "small"})) == []


# --- tables (§5.4, §5.5) ------------------------------------------------------------------------


def test_table_row_keys_must_be_column_names() -> None:
    bad = card(table(rows=[{"c0": "a"}, {"c0": "b", "c9": "x", "c8": "y"}]))
    assert codes(validate_card(bad)) == [
        (UNKNOWN_TABLE_ROW_KEY, "body.elements[0].rows[1]"),
        (UNKNOWN_TABLE_ROW_KEY, "body.elements[0].rows[1]"),
    ]


def test_a_table_only_sits_at_the_body_root() -> None:
    nested = {"tag": "column_set", "columns": [{"tag": "column", "elements": [table()]}]}
    assert codes(validate_card(card(nested))) == [
        (INVALID_PARAM, "body.elements[0].columns[0].elements[0]")
    ]
    panel = {"tag": "collapsible_panel", "elements": [table()]}
    assert codes(validate_card(card(panel))) == [(INVALID_PARAM, "body.elements[0].elements[0]")]


def test_at_most_five_tables() -> None:
    assert validate_card(card(*[table() for _ in range(5)])) == []
    assert codes(validate_card(card(*[table() for _ in range(6)]))) == [(TOO_MANY_TABLES, "")]
    assert codes(validate_card(card(table(), table()), CardLimits(max_tables=1))) == [
        (TOO_MANY_TABLES, "")
    ]


PIPE_TABLE = "| a | b |\n|---|:-:|\n| 1 | 2 |\n"


def test_markdown_pipe_tables_count_toward_the_limit() -> None:
    assert markdown_tables(PIPE_TABLE) == 1
    assert markdown_tables("a | b\n--- | ---\n1 | 2") == 1
    assert markdown_tables("text\n\n---\n\nmore") == 0  # a thematic break is not a table
    assert markdown_tables("```\n| a |\n|---|\n```\n") == 0  # inside a fence
    assert markdown_tables("~~~~md\n| a |\n|---|\n~~~\n| a |\n|---|\n~~~~\n") == 0
    mixed = card(md(PIPE_TABLE * 2), *[table() for _ in range(3)])
    assert count_tables(mixed) == 5
    assert validate_card(mixed) == []
    assert codes(validate_card(card(md(PIPE_TABLE), *[table() for _ in range(5)]))) == [
        (TOO_MANY_TABLES, "")
    ]


def test_at_most_four_pipe_tables_per_markdown_element() -> None:
    found = codes(validate_card(card(md("\n".join([PIPE_TABLE] * 5))), CardLimits(max_tables=99)))
    assert found == [(TOO_MANY_TABLES, "body.elements[0].content")]


QUOTED_TABLE = "> | a | b |\n> |---|:-:|\n> | 1 | 2 |\n"


def test_pipe_tables_count_in_quotes_and_lists_too() -> None:
    assert markdown_tables(QUOTED_TABLE) == 1
    assert markdown_tables("> > | a |\n> > |---|\n> > | 1 |") == 1  # a quote in a quote
    assert markdown_tables("- x\n\n    | a |\n    |---|\n    | 1 |") == 1  # in a list item
    assert markdown_tables("> - x\n>\n>     | a |\n>     |---|") == 1  # a list in a quote
    assert markdown_tables("- x\n\n    > | a |\n    > |---|") == 1  # a quote in a list
    assert markdown_tables("> text\n>\n> ---") == 0  # a quoted rule is not a table


def test_pipe_tables_in_fenced_code_in_quotes_and_lists_do_not_count() -> None:
    assert markdown_tables("> ```\n> | a |\n> |---|\n> ```\n") == 0
    assert markdown_tables("- x\n\n    ```\n    | a |\n    |---|\n    ```\n") == 0
    # the end of the quote ends the code in it (CommonMark has no lazy code lines)
    assert markdown_tables("> ```\n> code\n\n| a |\n|---|\n") == 1
    # in code at the top level, "> ```" is code, not the end of the fence
    assert markdown_tables("```\n> ```\n| a |\n|---|\n```\n") == 0


def test_pipe_tables_says_where_each_table_is() -> None:
    text = "intro\n\n> | a |\n> |---|\n> | 1 |\n> | 2 |\n>\n> | b |\n> |---|\nafter"
    assert pipe_tables(text) == [(2, 3, 6), (7, 8, 9)]
    assert pipe_tables("| a |\n```\n```\n|---|") == []  # header and delimiter rows touch


def test_six_quoted_tables_in_one_markdown_element_are_too_many() -> None:
    found = codes(validate_card(card(md("\n>\n".join([QUOTED_TABLE.strip()] * 6)))))
    assert found == [(TOO_MANY_TABLES, "body.elements[0].content"), (TOO_MANY_TABLES, "")]
    assert count_tables(card(md("\n>\n".join([QUOTED_TABLE.strip()] * 6)))) == 6


def test_markdown_images_in_quoted_code_are_text() -> None:
    assert markdown_image_keys("> ![a](img_1)\n>\n> ```\n> ![b](https://e.com/b.png)\n> ```") == [
        "img_1"
    ]


# --- images (§4.5) ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["https://example.com/a.png", "v2_abc", "IMG_1", "", None, 3])
def test_img_key_must_be_an_uploaded_img_key(key: Any) -> None:
    found = codes(validate_card(card({"tag": "img", "img_key": key})))
    assert found == [(INVALID_IMAGE_KEY, "body.elements[0].img_key")]


def test_img_key_must_be_known_when_the_uploads_are_given() -> None:
    element = {"tag": "img", "img_key": "img_v2_new"}
    assert validate_card(card(element), known_image_keys={"img_v2_new"}) == []
    found = codes(validate_card(card(element), known_image_keys={"img_v2_other"}))
    assert found == [(INVALID_IMAGE_KEY, "body.elements[0].img_key")]


def test_markdown_images_need_img_keys_too() -> None:
    content = "see ![chart](https://x/y.png) and ![ok](img_v2_1) `![code](not_a_key)`"
    assert markdown_image_keys(content) == ["https://x/y.png", "img_v2_1"]
    assert codes(validate_card(card(md(content)))) == [
        (INVALID_IMAGE_KEY, "body.elements[0].content")
    ]
    assert validate_card(card(md("```\n![x](http://a)\n```"))) == []


# --- counts and nesting (§5.4) ------------------------------------------------------------------


def test_component_count_is_recursive_and_includes_text_objects() -> None:
    assert count_components(card(md("a"), {"tag": "hr"})) == 2
    button = {"tag": "button", "text": plain("x")}
    columns = {"tag": "column_set", "columns": [{"tag": "column", "elements": [md("a"), button]}]}
    assert count_components(card(columns)) == 5  # column_set, column, markdown, button, text
    assert count_components(rich_card()) > 20


def test_at_most_200_components() -> None:
    assert validate_card(card(*[md("x")] * 200)) == []
    assert codes(validate_card(card(*[md("x")] * 201))) == [(TOO_MANY_COMPONENTS, "")]
    nested = {"tag": "column_set", "columns": [{"tag": "column", "elements": [md("x")] * 198}]}
    assert codes(validate_card(card(nested, md("y")))) == [(TOO_MANY_COMPONENTS, "")]
    assert codes(validate_card(card(md("a"), md("b")), CardLimits(max_components=1))) == [
        (TOO_MANY_COMPONENTS, "")
    ]


def nest(levels: int) -> dict[str, Any]:
    element: dict[str, Any] = md("deep")
    for _ in range(levels):
        element = {"tag": "interactive_container", "elements": [element]}
    return element


def test_containers_nest_at_most_five_levels() -> None:
    assert validate_card(card(nest(5))) == []
    path = "body.elements[0]" + ".elements[0]" * 5
    assert codes(validate_card(card(nest(6)))) == [(INVALID_PARAM, path)]


def test_no_form_inside_a_collapsible_panel() -> None:
    form = {"tag": "form", "name": "f", "elements": []}
    panel = {"tag": "collapsible_panel", "elements": [form]}
    assert codes(validate_card(card(panel))) == [(INVALID_PARAM, "body.elements[0].elements[0]")]


# --- element_id (§5.3) --------------------------------------------------------------------------


@pytest.mark.parametrize("element_id", ["1abc", "_abc", "a-b", "a b", "", "a" * 21, 7, "名字"])
def test_element_id_shape(element_id: Any) -> None:
    found = codes(validate_card(card(md("x", element_id=element_id))))
    assert found == [(INVALID_PARAM, "body.elements[0].element_id")]


def test_element_id_of_twenty_characters_is_fine() -> None:
    assert validate_card(card(md("x", element_id="a" * 20), md("y", element_id="B_1"))) == []


def test_element_id_is_unique_across_the_card() -> None:
    column = {"tag": "column", "element_id": "same", "elements": [md("y")]}
    twice = card(md("x", element_id="same"), {"tag": "column_set", "columns": [column]})
    assert codes(validate_card(twice)) == [
        (INVALID_PARAM, "body.elements[1].columns[0].element_id")
    ]


# --- size in bytes (§5.4) -----------------------------------------------------------------------


def test_card_size_is_compact_utf8_json() -> None:
    small = card(md("héllo 你好"))
    text = json.dumps(small, ensure_ascii=False, separators=(",", ":"))
    assert card_size(small) == len(text.encode())
    assert card_size(small) == len(text) + 1 + 2 * 2  # é is 2 bytes, each CJK character 3


def test_size_limit_counts_bytes_not_characters() -> None:
    """9,000 Chinese characters: 9 KB of characters but ~27 KB of UTF-8, and the reverse case."""
    overhead = card_size(card(md("")))
    fits = card(md("飞" * ((30 * 1024 - overhead) // 3)))
    assert card_size(fits) <= 30 * 1024
    assert validate_card(fits) == []
    over = card(md("飞" * 10_300))  # 10,300 characters < 30 KB; 30,900 bytes > 30 KB
    assert len(json.dumps(over, ensure_ascii=False)) < 30 * 1024
    assert codes(validate_card(over)) == [(MESSAGE_TOO_LARGE, "")]
    assert codes(validate_card(card(md("x" * 100)), CardLimits(max_bytes=100))) == [
        (MESSAGE_TOO_LARGE, "")
    ]


def test_lone_surrogates_do_not_crash_the_size() -> None:
    assert card_size(card(md("\ud800"))) > 0


def test_problems_are_all_reported_and_input_is_not_modified() -> None:
    bad = card(md("x", element_id="1"), {"tag": "note"}, {"tag": "img", "img_key": "http://x"})
    before = copy.deepcopy(bad)
    found = codes(validate_card(bad))
    assert found == [
        (INVALID_PARAM, "body.elements[0].element_id"),
        (INVALID_PARAM, "body.elements[1]"),
        (INVALID_IMAGE_KEY, "body.elements[2].img_key"),
    ]
    assert bad == before


# --- hostile input never crashes the validator (the sandbox runs it on anything) ----------------

JSON_KEYS = sorted(
    {"tag", "schema", "body", "elements", "columns", "rows", "header", "title", "content"}
    | {"behaviors", "type", "img_key", "element_id", "template", "config", "name", "data_type"}
    | {"text", "row_height", "page_size", "summary", "width_mode", "text_tag_list", "alt"}
)
TAGS = ["markdown", "table", "img", "column_set", "column", "button", "form", "collapsible_panel"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.sampled_from(TAGS),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(JSON_KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values, header=json_values)
def test_any_json_gives_problems_not_exceptions(body: Any, header: Any) -> None:
    problems = validate_card({"schema": "2.0", "header": header, "body": body})
    assert all(isinstance(p, Problem) for p in problems)


def test_unhashable_values_where_names_are_expected() -> None:
    bad = rich_card()
    bad["header"]["template"] = ["red"]
    bad["config"]["width_mode"] = {}
    bad["body"]["elements"].append({"tag": ["markdown"]})
    bad["body"]["elements"][3]["columns"][0]["data_type"] = ["text"]
    bad["body"]["elements"][3]["row_height"] = {"px": 40}
    bad["body"]["elements"][5]["behaviors"][0]["type"] = {}
    assert len(validate_card(bad)) == 6


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    deep: Any = md("x")
    for _ in range(5000):
        deep = {"tag": "interactive_container", "elements": [deep]}
    assert validate_card(card(deep))  # too deep for json.dumps → one problem
    assert count_components({"a": [[[[{"tag": "hr"}]]]]}) == 1
