"""Card templates: valid card JSON 2.0 for any user text, user overrides, safe fallbacks."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from lark_cards.api.errors import MESSAGE_TOO_LARGE
from lark_cards.render.templates import (
    DEFAULT_TEMPLATE_DIR,
    CardTemplates,
    TemplateError,
    header_color,
)
from lark_cards.render.validate import validate_card

REPO_TEMPLATES = Path(__file__).resolve().parents[1] / "lark_cards" / "templates"

HOSTILE = [
    'say "hi"',
    "back\\slash \\n \\u0041 \\",
    "line\nbreak\r\n\ttab",
    "</script><script>alert(1)</script>",
    "{{ 7 * 7 }} {% if true %}x{% endif %} {# c #}",
    '"}, "schema": "1.0", "x": {"',
    "飞书 卡片 🎉 مرحبا \u202e \u2028 \u0000 \x7f",
    "<font color='red'>x</font> **b** [l](javascript:alert(1))",
    "",
]
ELEMENTS = [
    {"tag": "markdown", "content": "# Hello\n\n- **a**\n- `b`"},
    {"tag": "hr"},
    {"tag": "markdown", "content": 'quotes " and \\ and 飞书'},
]


@pytest.fixture
def templates() -> CardTemplates:
    return CardTemplates()


def card_context(**overrides: Any) -> dict[str, Any]:
    context = {
        "title": "Deploy finished",
        "summary": "prod is green",
        "link": "https://ci.example.com/run/42",
        "image": "img_v2_image",
        "thumbnail": "img_v2_thumb",
        "color": "green",
        "fields": [["Status", "**OK**"], ["Owner", "bob"], ["Took", "3 min"]],
        "elements": ELEMENTS,
        "part": 1,
        "parts": 1,
    }
    return {**context, **overrides}


def assert_valid(card: dict[str, Any]) -> None:
    assert validate_card(card) == [], card


# --- the defaults -------------------------------------------------------------------------------


def test_default_templates_are_the_repository_templates() -> None:
    assert DEFAULT_TEMPLATE_DIR == REPO_TEMPLATES
    for name in ("reply", "card", "error"):
        assert (REPO_TEMPLATES / f"{name}.json.j2").is_file()


def test_reply(templates: CardTemplates) -> None:
    card = templates.render(
        "reply", {"elements": ELEMENTS, "summary": "Hello", "part": 1, "parts": 1}
    )
    assert_valid(card)
    assert card["schema"] == "2.0"
    assert card["config"] == {"update_multi": True, "summary": {"content": "Hello"}}
    assert card["body"]["elements"] == ELEMENTS
    assert "header" not in card


def test_reply_optional_context(templates: CardTemplates) -> None:
    card = templates.render("reply", {"elements": []})
    assert_valid(card)
    assert card["config"] == {"update_multi": True}
    assert card["body"]["elements"] == []


def test_reply_parts_marker(templates: CardTemplates) -> None:
    card = templates.render("reply", {"elements": ELEMENTS, "summary": "", "part": 2, "parts": 3})
    assert_valid(card)
    *body, marker = card["body"]["elements"]
    assert body == ELEMENTS
    assert marker["tag"] == "markdown"
    assert marker["content"] == "<font color='grey'>2/3</font>"


def test_card_everything(templates: CardTemplates) -> None:
    card = templates.render("card", card_context())
    assert_valid(card)
    assert card["card_link"] == {"url": "https://ci.example.com/run/42"}
    header = card["header"]
    assert header["title"] == {"tag": "plain_text", "content": "Deploy finished"}
    assert header["subtitle"]["content"] == "prod is green"
    assert header["template"] == "green"
    assert card["config"]["summary"] == {"content": "prod is green"}
    thumbnail, image, *rest = card["body"]["elements"]
    assert thumbnail["img_key"] == "img_v2_thumb"  # a small image, not a header icon
    assert "icon" not in header
    assert image["tag"] == "img"
    assert image["img_key"] == "img_v2_image"
    assert rest[: len(ELEMENTS)] == ELEMENTS
    grid = rest[len(ELEMENTS) :]
    assert [g["tag"] for g in grid] == ["column_set", "column_set"]  # 3 fields → 2 rows of 2
    first = grid[0]["columns"][0]["elements"]
    assert first[0]["text"]["content"] == "Status"
    assert first[1] == {"tag": "markdown", "content": "**OK**"}
    assert grid[1]["columns"][1]["elements"] == []  # the odd field's empty neighbour


def test_card_without_title_has_no_header(templates: CardTemplates) -> None:
    context = card_context(title=None, link=None, image=None, fields=[], color=None)
    card = templates.render("card", context)
    assert_valid(card)
    assert "header" not in card
    assert "card_link" not in card
    thumbnail, summary, *body = card["body"]["elements"]
    assert thumbnail["img_key"] == "img_v2_thumb"
    assert summary["text"]["content"] == "prod is green"
    assert body == ELEMENTS


def test_card_minimal(templates: CardTemplates) -> None:
    card = templates.render("card", {"elements": ELEMENTS})
    assert_valid(card)
    assert card["body"]["elements"] == ELEMENTS


def test_card_colour_is_mapped_when_raw(templates: CardTemplates) -> None:
    card = templates.render("card", card_context(color="#cc0000"))
    assert card["header"]["template"] == "red"
    assert (
        templates.render("card", card_context(color="no-such"))["header"]["template"] == "default"
    )


def test_card_split_image_first_fields_last(templates: CardTemplates) -> None:
    first = templates.render("card", card_context(part=1, parts=2))
    last = templates.render("card", card_context(part=2, parts=2))
    for card in (first, last):
        assert_valid(card)
        assert card["header"]["title"]["content"] == "Deploy finished"
    first_tags = [e["tag"] for e in first["body"]["elements"]]
    last_tags = [e["tag"] for e in last["body"]["elements"]]
    assert first_tags == ["img", "img", "markdown", "hr", "markdown", "markdown"]
    assert last_tags == ["markdown", "hr", "markdown", "column_set", "column_set", "markdown"]
    assert last["body"]["elements"][-1]["content"] == "<font color='grey'>2/2</font>"


def test_error(templates: CardTemplates) -> None:
    card = templates.render("error", {"title": "Command failed", "message": "boom\n<b>x</b>"})
    assert_valid(card)
    assert card["header"]["template"] == "red"
    assert card["header"]["title"]["content"] == "Command failed"
    assert card["body"]["elements"] == [
        {"tag": "div", "text": {"tag": "plain_text", "content": "boom\n<b>x</b>"}}
    ]
    with_elements = templates.render("error", {"message": "m", "elements": ELEMENTS})
    assert_valid(with_elements)
    assert with_elements["header"]["title"]["content"] == "Error"
    assert with_elements["body"]["elements"][1:] == ELEMENTS


# --- user text can never break the JSON ----------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_round_trips_into_valid_cards(templates: CardTemplates, text: str) -> None:
    reply = templates.render(
        "reply", {"elements": [{"tag": "markdown", "content": text}], "summary": text}
    )
    assert_valid(reply)
    assert reply["body"]["elements"][0]["content"] == text
    card = templates.render(
        "card",
        card_context(title=text or "t", summary=text, link=text, fields=[[text, text]], color=text),
    )
    assert_valid(card)
    assert card["header"]["title"]["content"] == (text or "t")
    assert card["body"]["elements"][-1]["columns"][0]["elements"][0]["text"]["content"] == text
    error = templates.render("error", {"title": text, "message": text})
    assert_valid(error)
    assert error["body"]["elements"][0]["text"]["content"] == text


def test_huge_text_stays_valid_json(templates: CardTemplates) -> None:
    huge = '飞"\\\n' * 50_000
    card = templates.render("card", card_context(title=huge, summary=huge))
    assert card["header"]["title"]["content"] == huge
    # only too big, never broken
    assert [p.code for p in validate_card(card)] == [MESSAGE_TOO_LARGE]


def test_non_string_values(templates: CardTemplates) -> None:
    card = templates.render("card", card_context(title=42, fields=[("n", 7), ("none", None)]))
    assert_valid(card)
    assert card["header"]["title"]["content"] == "42"
    cells = card["body"]["elements"][-1]["columns"]
    assert cells[0]["elements"][1]["content"] == "7"


# --- user templates -----------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.json.j2"
    path.write_text(text, encoding="utf-8")
    return path


USER_REPLY = """{
  "schema": "2.0",
  "config": {"update_multi": true},
  "header": {"title": {"tag": "plain_text", "content": "Bot"}, "template": "indigo"},
  "body": {"elements": {{ elements }}}
}
"""


def test_user_template_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "reply", USER_REPLY)
    card = CardTemplates(tmp_path).render("reply", {"elements": ELEMENTS})
    assert_valid(card)
    assert card["header"]["template"] == "indigo"
    assert card["body"]["elements"] == ELEMENTS
    assert not caplog.records


def test_user_dir_falls_through_to_defaults_and_adds_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        "deploy",
        '{"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": {{ env }}}]}}',
    )
    templates, default = CardTemplates(str(tmp_path)), CardTemplates()
    assert templates.render("reply", {"elements": []})["body"]["elements"] == []
    assert templates.render("card", card_context()) == default.render("card", card_context())
    deploy = templates.render("deploy", {"env": 'prod "eu"'})
    assert_valid(deploy)
    assert deploy["body"]["elements"][0]["content"] == 'prod "eu"'


def test_a_missing_user_dir_is_not_an_error() -> None:
    templates, default = CardTemplates("/nonexistent/lark-cards-templates"), CardTemplates()
    assert templates.render("reply", {"elements": []})["schema"] == "2.0"
    assert templates.render("card", card_context()) == default.render("card", card_context())


def test_an_edited_user_template_is_reloaded(tmp_path: Path) -> None:
    path = write(tmp_path, "reply", USER_REPLY)
    templates = CardTemplates(tmp_path)
    assert templates.render("reply", {"elements": []})["header"]["template"] == "indigo"
    path.write_text(USER_REPLY.replace("indigo", "orange"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))
    assert templates.render("reply", {"elements": []})["header"]["template"] == "orange"


BROKEN = {
    # kind: (template text, line Jinja or the JSON parser reports)
    "syntax": ('{\n  "schema": "2.0",\n  "body": {{ elements }\n}\n', 3),
    "undefined": ('{\n  "schema": "2.0",\n  "x": {{ no_such_variable }},\n  "body": {}\n}\n', 3),
    "attribute": ('{\n  "schema": "2.0",\n\n  "x": {{ elements.no_such.thing }}\n}\n', 4),
    "runtime": ('{\n  "schema": "2.0",\n  "x": {{ 1 // 0 }}\n}\n', 3),
    "include": ('{\n  "schema": "2.0",\n  "x": {% include "missing.j2" %}\n}\n', 3),
    "not_json": ('{\n  "schema": "2.0",\n  "x": "part {{ summary }}"\n}\n', 3),
    "trailing_comma": ('{\n  "schema": "2.0",\n}\n', 3),
    "empty": ("", 1),
    "not_object": ("[{{ elements }}]\n", 1),
}


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_user_template_logs_one_line_and_uses_the_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    text, line = BROKEN[kind]
    path = write(tmp_path, "reply", text)
    context = {"elements": ELEMENTS, "summary": "s", "part": 1, "parts": 1}
    with caplog.at_level(logging.ERROR, logger="lark_cards.render.templates"):
        card = CardTemplates(tmp_path).render("reply", context)
    assert card == CardTemplates().render("reply", context)
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.ERROR
    assert "\n" not in message
    assert str(path) in message
    assert f"line {line}" in message
    assert "default" in message


def test_a_user_template_that_is_not_utf8(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "reply.json.j2"
    path.write_bytes(b'{"schema": "2.0", "x": "\xff"}')
    card = CardTemplates(tmp_path).render("reply", {"elements": []})
    assert card["body"]["elements"] == []
    (record,) = caplog.records
    assert str(path) in record.getMessage()


def test_user_text_is_never_evaluated_as_a_template(templates: CardTemplates) -> None:
    card = templates.render("error", {"message": "{{ message.__class__ }}{% raise %}"})
    assert card["body"]["elements"][0]["text"]["content"] == "{{ message.__class__ }}{% raise %}"


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["nope", "../templates/reply", "a/b", ".hidden", "", "reply.json.j2"]
)
def test_unknown_or_bad_names_raise(templates: CardTemplates, name: str) -> None:
    with pytest.raises(TemplateError):
        templates.render(name, {})


def test_a_broken_default_raises_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "reply", '{\n\n  "x": {{ nope }}\n}')
    with pytest.raises(TemplateError, match=re.escape(f"{path}, line 3: UndefinedError")):
        CardTemplates(default_dir=tmp_path).render("reply", {})


def test_missing_context_in_a_default_raises(templates: CardTemplates) -> None:
    with pytest.raises(
        TemplateError, match=r"reply\.json\.j2, line \d+: .*'elements' is undefined"
    ):
        templates.render("reply", {})


def test_a_broken_user_template_without_default_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "deploy", "{{ oops")
    with pytest.raises(TemplateError, match=r"no card template deploy\.json\.j2"):
        CardTemplates(tmp_path).render("deploy", {})
    assert len(caplog.records) == 1


# --- colours -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("color", "template"),
    [
        ("red", "red"),
        ("green", "green"),
        ("blue", "blue"),
        ("yellow", "yellow"),
        ("white", "default"),
        ("black", "grey"),
        ("cyan", "turquoise"),
        ("magenta", "violet"),
        ("grey", "grey"),
        ("gray", "grey"),
        (" Red ", "red"),
        ("wathet", "wathet"),
        ("carmine", "carmine"),
        ("default", "default"),
        ("#FF0000", "red"),
        ("#f00", "red"),
        ("00ff00", "green"),
        ("#ffa500", "orange"),
        ("#ffff00", "yellow"),
        ("#3370ff", "blue"),
        ("#ff00ff", "violet"),
        ("#2eb886", "turquoise"),  # Slack's "good"
        ("#a30200", "red"),  # Slack's "danger"
        ("#ffffff", "default"),
        ("#000000", "grey"),
        ("#808080", "grey"),
        ("no such colour", "default"),
        ("#12345", "default"),
        ("", "default"),
        (None, "default"),
    ],
)
def test_header_color(color: str | None, template: str) -> None:
    assert header_color(color) == template
