"""Cards that look like Feishu bots' cards (issue 12): a leading heading as the header, Errbot's
own refusals in the error template, previews that read like the reply, footnotes as notes and
raw HTML with its entities decoded."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from lark_cards.render import RenderOptions, parse_reply, render_markdown, render_reply
from lark_cards.render.refusals import errbot_refusal
from lark_cards.render.validate import validate_card
from lark_cards.settings import ConfigError, Settings

HELP = (Path(__file__).parent / "fixtures" / "errbot" / "help.md").read_text("utf-8")
PERSON = "ou_4f0c3a9b2d7e4b1f"


def header(card: dict) -> tuple[str, str] | None:
    found = card.get("header")
    return (found["title"]["content"], found["template"]) if found else None


def test_help_is_headed_all_commands() -> None:
    [card] = render_markdown(HELP)
    assert header(card) == ("All commands", "blue")
    assert not card["body"]["elements"][0]["content"].startswith("#")
    assert validate_card(card) == []


def test_the_heading_colour_becomes_the_header_colour() -> None:
    [card] = render_markdown("## Deploy *failed* {: color='red'}\n\nrollback started")
    assert header(card) == ("Deploy failed", "red")
    assert card["body"]["elements"] == [{"tag": "markdown", "content": "rollback started"}]


def test_every_part_of_a_long_reply_keeps_the_header() -> None:
    text = "# Nightly log\n\n```\n" + "\n".join(f"line {i} " * 8 for i in range(3000)) + "\n```"
    cards = render_markdown(text)
    assert len(cards) > 1
    assert {header(card) for card in cards} == {("Nightly log", "blue")}


@pytest.mark.parametrize(
    "text",
    ["# Only a heading", "Text first\n\n# Then a heading", "#\n\nempty heading", "plain words"],
)
def test_no_header_unless_a_heading_leads_something(text: str) -> None:
    [card] = render_markdown(text)
    assert "header" not in card


def test_heading_as_header_can_be_turned_off() -> None:
    [card] = render_markdown("# Title\n\nbody", options=RenderOptions(heading_as_header=False))
    assert "header" not in card
    assert card["body"]["elements"][0]["content"] == "# Title\n\nbody"
    settings = Settings.from_config(
        type("C", (), {"BOT_IDENTITY": {"app_id": "a", "app_secret": "s"},
                       "LARK_CARDS": {"heading_as_header": False}})
    )  # fmt: skip
    assert RenderOptions.from_settings(settings).heading_as_header is False
    with pytest.raises(ConfigError, match="heading_as_header"):
        Settings.from_config(
            type("C", (), {"BOT_IDENTITY": {"app_id": "a", "app_secret": "s"},
                           "LARK_CARDS": {"heading_as_header": "yes"}})
        )  # fmt: skip


# Texts exactly as errbot 6.2.1 sends them (core_plugins/acls.py, core.py).
REFUSALS = [
    ("You're not allowed to access this command from this room", "Not allowed", "orange"),
    (
        "You're not allowed to access this command via private message to me",
        "Not allowed",
        "orange",
    ),
    ("This command requires bot-admin privileges", "Admins only", "orange"),
    ('Command "stauts" not found.', "Command not found", "orange"),
    (
        'Command "stauts" / "stauts plugins" not found.\n\nDid you mean "!status" or "!restart" ?',
        "Command not found",
        "orange",
    ),
    (
        "Computer says nooo. See logs for details:\nZeroDivisionError: division by zero",
        "Command failed",
        "red",
    ),
]


@pytest.mark.parametrize(("text", "title", "color"), REFUSALS)
def test_errbot_refusals_use_the_error_template(text: str, title: str, color: str) -> None:
    [sent] = render_reply(text, mention=PERSON)
    card = sent.content
    assert header(card) == (title, color)
    first, _, rest = text.partition("\n")
    message, *below = card["body"]["elements"]
    assert message == {
        "tag": "div",
        "text": {"tag": "plain_text", "content": first},  # as typed: never read as markdown
    }
    tag = f"<at id={PERSON}></at>"
    assert below[0]["content"].startswith(tag)
    shown = html.unescape(" ".join(e["content"] for e in below).replace(tag, ""))
    assert shown.split() == rest.split()  # the rest (exception, "Did you mean"), literally
    assert validate_card(card) == []
    assert sent.template == "error"


@pytest.mark.parametrize(
    "text",
    [
        "Deploy refused: You're not allowed to access this command from this room",
        "You're not allowed to access this command\n\nbut here is why, in **markdown**",
        'Command "x" not found. Try again later',
        "Computer says nooo",
    ],
)
def test_replies_that_merely_quote_a_refusal_stay_replies(text: str) -> None:
    assert errbot_refusal(text) is None
    [sent] = render_reply(text)
    assert sent.template == "reply"


def test_a_user_error_template_overrides_the_refusal_look(tmp_path: Path) -> None:
    (tmp_path / "error.json.j2").write_text(
        '{"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": "Nope"},'
        ' "template": "grey"}, "body": {"elements": [{"tag": "markdown",'
        ' "content": {{ title ~ ": " ~ message }}}]}}'
    )
    options = RenderOptions(templates_dir=str(tmp_path))
    [sent] = render_reply("This command requires bot-admin privileges", options=options)
    assert header(sent.content) == ("Nope", "grey")
    assert sent.content["body"]["elements"][0]["content"] == (
        "Admins only: This command requires bot-admin privileges"
    )


def test_footnotes_become_numbered_notes_after_a_rule() -> None:
    text = "Deploy done[^1], see the log[^log].\n\n[^1]: took 3 min\n[^log]: kept **7** days\n"
    [card] = render_markdown(text)
    elements = card["body"]["elements"]
    assert elements[0]["content"] == "Deploy done&#91;1&#93;, see the log&#91;2&#93;."
    assert elements[1] == {"tag": "hr"}
    assert elements[2]["content"] == (
        "<font color='grey'>&#91;1&#93;</font> took 3 min\n"
        "<font color='grey'>&#91;2&#93;</font> kept **7** days"
    )


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("a[^1]\n\n[^1]:\n", ""),  # an empty note: its anchor alone (KeyError once)
        ("a[^1]\n\n[^1]: - first\n    - second\n", "- first\n- second"),  # ends in a list
    ],
)
def test_notes_without_a_closing_paragraph_still_render(text: str, note: str) -> None:
    [card] = render_markdown(text)
    assert card["body"]["elements"][2]["content"] == f"<font color='grey'>&#91;1&#93;</font> {note}"


def test_an_attribute_list_written_with_an_entity_brace_is_text() -> None:
    """``&#123;`` is a brace the plugin escaped: Python-Markdown keeps it as text, whatever
    else the reply holds (once it depended on a literal "{" anywhere in the reply)."""
    for text in ("red &#123;: color='red'}", "red &#123;: color='red'}\n\n{x}"):
        [card] = render_markdown(text)
        assert card["body"]["elements"][0]["content"].startswith("red {: color='red'}")


def test_a_tree_handed_on_is_parsed_from_valid_text() -> None:
    """``render_reply(tree=parse_reply(text))``: the tree holds no lone surrogate either (a
    reply made without measuring its prose would carry it to the send and fail there)."""
    text = "disk \udcff full"
    [sent] = render_reply(text, tree=parse_reply(text))
    assert sent.content["body"]["elements"][0]["content"] == "disk \ufffd full"


def test_entities_in_raw_html_blocks_are_decoded_like_everywhere_else() -> None:
    [card] = render_markdown("<div>\nTom &amp; Jerry &lt;3 &#169;\n</div>")
    content = card["body"]["elements"][0]["content"]
    assert "&amp;" not in content  # neither decoded twice nor shown as an entity
    assert "Tom &#38; Jerry &#60;3 ©" in content  # & and < shown as text, © as itself


# Found in review: every card within Feishu's limits; Errbot's texts as they come.


def test_a_long_leading_heading_does_not_make_a_card_over_30_kb() -> None:
    # the heading becomes header.title on every card; the header cannot be split
    text = "# " + "word " * 8000 + "\n\nThe body."
    for card in render_markdown(text):
        assert [p.code for p in validate_card(card)] == []


def test_a_long_errbot_exception_text_does_not_make_one_card_over_30_kb() -> None:
    # core.py: MSG_ERROR_OCCURRED + f":\n{e}" — e is whatever the plugin raised
    text = "Computer says nooo. See logs for details:\n" + "KeyError: " + "x " * 40000
    cards = render_reply(text)
    assert len(cards) > 1
    for item in cards:
        assert item.msg_type == "interactive"
        assert [p.code for p in validate_card(item.content)] == []
        assert item.content["header"]["title"]["content"] == "Command failed"


def test_unknown_command_with_a_multiline_argument_is_a_refusal() -> None:
    # core.py unknown_command: full_cmd = cmd + " " + args.split(" ")[0]; args may hold "\n"
    text = 'Command "deploy" / "deploy prod\nnow" not found.'
    assert errbot_refusal(text) is not None


def test_unknown_command_with_a_quote_in_it_is_a_refusal() -> None:
    text = 'Command "say"hi" not found.'
    assert errbot_refusal(text) is not None
