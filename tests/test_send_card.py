"""The backend's native ``send_card`` and ``send_template``: what a plugin's card looks like in
Feishu, through the real backend (its bridge on a loop thread, delivering to a fake Open API)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_fakes import Call, FakeOpenAPI
from errbot.backends.base import Card, Message
from errbot_config import errbot_config, offline_backend
from feishu_payloads import envelope

from lark_cards.backend import LarkCardsBackend
from lark_cards.identifiers import LarkPerson, LarkRoom
from lark_cards.inbound.events import parse_message
from lark_cards.inbound.messages import to_message
from lark_cards.outbound import Delivery
from lark_cards.render.validate import validate_card

GROUP = "oc_a0553eda9014c201e6969b478895c230"
QUESTION = "om_dc13264520392913993dd051dba21dcf"
SEND = "/open-apis/im/v1/messages"

Start = Callable[..., LarkCardsBackend]


@pytest.fixture
def start(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[Start]:
    """Factory: a backend (optionally with ``LARK_CARDS`` options) as during serve_once: its
    bridge on the loop thread, its delivery path sending to a fake Open API."""
    started: list[LarkCardsBackend] = []

    def factory(**lark_cards: Any) -> LarkCardsBackend:
        config = errbot_config(tmp_path)
        if lark_cards:
            config.LARK_CARDS = lark_cards
        bot = offline_backend(config)
        bot.bridge.attach(loop)
        bot.delivery = Delivery(FakeOpenAPI(), bot.render_options, upload_images=False)
        started.append(bot)
        return bot

    yield factory
    for bot in started:
        bot.outbox.close()


@pytest.fixture
def running(start: Start) -> LarkCardsBackend:
    return start()


def sent(backend: LarkCardsBackend, count: int = 1) -> list[Call]:
    """The messages that went out, once ``count`` have."""
    assert backend.delivery is not None
    fake = backend.delivery.client
    assert isinstance(fake, FakeOpenAPI)
    return fake.wait_messages(count)


def sent_card(backend: LarkCardsBackend) -> dict[str, Any]:
    [call] = sent(backend)
    assert call.json["msg_type"] == "interactive"
    card = call.content
    assert validate_card(card) == []
    return card


def question(backend: LarkCardsBackend) -> Message:
    event = parse_message(envelope("group_text_mentions"))
    return to_message(event, backend.bot_identifier, backend.identities)[0]


def grid(card: dict[str, Any]) -> list[tuple[str, str]]:
    """The (key, value) pairs of the card's key/value grid, in reading order."""
    pairs = []
    for element in card["body"]["elements"]:
        if element["tag"] != "column_set":
            continue
        for column in element["columns"]:
            cell = column["elements"]
            if not cell:
                continue
            key = next(e["text"]["content"] for e in cell if e["tag"] == "div")
            value = next(e["content"] for e in cell if e["tag"] == "markdown")
            pairs.append((key, value))
    return pairs


def everything(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


# ----- send_card -------------------------------------------------------------------------------


def test_send_card_header_fields_link_summary_and_body(running):
    running.send_card(
        Card(
            body="Deployed **api** to production.",
            to=LarkRoom(GROUP),
            title="Deploy finished",
            summary="all green",
            link="https://ci.example.com/runs/42",
            color="red",
            fields=(("environment", "production"), ("version", "1.2.3"), ("owner", "alice")),
        )
    )
    [call] = sent(running)
    assert (call.path, call.json["receive_id"], call.params) == (
        SEND,
        GROUP,
        {"receive_id_type": "chat_id"},
    )
    card = sent_card(running)
    header = card["header"]
    assert header["title"] == {"tag": "plain_text", "content": "Deploy finished"}
    assert header["template"] == "red"
    assert header["subtitle"]["content"] == "all green"
    assert card["config"]["summary"]["content"] == "all green"
    assert card["card_link"]["url"] == "https://ci.example.com/runs/42"
    assert grid(card) == [("environment", "production"), ("version", "1.2.3"), ("owner", "alice")]
    body = [e for e in card["body"]["elements"] if e["tag"] == "markdown"]
    assert body[0]["content"] == "Deployed **api** to production."


@pytest.mark.parametrize(
    ("color", "template"),
    [("red", "red"), ("green", "green"), ("blue", "blue"), ("#ff0000", "red"), ("nope", "default")],
)
def test_send_card_color_becomes_the_header_template(running, color, template):
    running.send_card(Card(body="x", to=LarkRoom(GROUP), title="Status", color=color))
    assert sent_card(running)["header"]["template"] == template


def test_send_card_field_values_are_rendered_markdown(running):
    fields = (("state", "**up**"), ("ticket", "[OPS-1](https://tracker.example.com/OPS-1)"))
    running.send_card(Card(body="", to=LarkRoom(GROUP), title="Svc", fields=fields))
    assert grid(sent_card(running)) == [
        ("state", "**up**"),
        ("ticket", "[OPS-1](https://tracker.example.com/OPS-1)"),
    ]


def test_send_card_field_text_cannot_break_the_card(running):
    hostile = '"}]}, {"tag": "hr'
    running.send_card(Card(body="b", to=LarkRoom(GROUP), title='T "q"', fields=((hostile, "v"),)))
    card = sent_card(running)
    assert card["header"]["title"]["content"] == 'T "q"'
    assert grid(card)[0][0] == hostile


def test_send_card_body_table_becomes_a_table_component(running):
    body = "Hosts:\n\n| host | status |\n|---|---|\n| web-1 | ok |\n| web-2 | down |"
    running.send_card(Card(body=body, to=LarkRoom(GROUP), title="Fleet"))
    card = sent_card(running)
    [table] = [e for e in card["body"]["elements"] if e["tag"] == "table"]
    assert [c["display_name"] for c in table["columns"]] == ["host", "status"]
    assert table["rows"] == [{"c0": "web-1", "c1": "ok"}, {"c0": "web-2", "c1": "down"}]


def test_send_card_replies_under_the_question_when_parent_is_set(running):
    asked = question(running)
    running.send_card(Card(body="done", to=asked.to, parent=asked, title="Result"))
    [call] = sent(running)
    assert call.path == f"{SEND}/{QUESTION}/reply"
    assert call.json["reply_in_thread"] is False
    assert call.content["header"]["title"]["content"] == "Result"


def test_send_card_without_a_title_has_no_header_but_keeps_the_summary(running):
    running.send_card(Card(body="just a body", to=LarkRoom(GROUP), summary="preview line"))
    card = sent_card(running)
    assert "header" not in card
    assert card["config"]["summary"]["content"] == "preview line"
    assert "just a body" in everything(card)


def test_send_card_to_a_person(running):
    running.send_card(Card(body="hi", to=LarkPerson("ou_alice"), title="Hello"))
    [call] = sent(running)
    assert (call.path, call.json["receive_id"], call.params) == (
        SEND,
        "ou_alice",
        {"receive_id_type": "open_id"},
    )


def test_send_card_without_a_summary_does_not_repeat_the_title_as_subtitle(running):
    running.send_card(Card(body="body text", to=LarkRoom(GROUP), title="Deploy finished"))
    header = sent_card(running)["header"]
    assert header.get("subtitle", {}).get("content") != "Deploy finished"


def test_send_card_image_without_a_key_stays_a_link(running):
    url = "https://cdn.example.com/charts/load.png"
    running.send_card(Card(body="load graph", to=LarkRoom(GROUP), title="Load", image=url))
    assert url in everything(sent_card(running))


# ----- send_template -----------------------------------------------------------------------------


DEPLOY_TEMPLATE = """{
  "schema": "2.0",
  "header": {
    "title": {"tag": "plain_text", "content": {{ "Deploy " ~ service }}},
    "template": "green"
  },
  "body": {"elements": [{"tag": "markdown", "content": {{ note }}}]}
}
"""


def user_templates(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "my_templates"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.json.j2").write_text(text)
    return directory


def test_send_template_sends_the_users_template_with_the_context(start, tmp_path):
    backend = start(templates_dir=str(user_templates(tmp_path, deploy=DEPLOY_TEMPLATE)))
    backend.send_template(LarkRoom(GROUP), "deploy", {"service": "api", "note": 'done "now"'})
    [call] = sent(backend)
    assert (call.path, call.json["receive_id"], call.json["msg_type"]) == (
        SEND,
        GROUP,
        "interactive",
    )
    assert call.content == {
        "schema": "2.0",
        "header": {
            "title": {"tag": "plain_text", "content": "Deploy api"},
            "template": "green",
        },
        "body": {"elements": [{"tag": "markdown", "content": 'done "now"'}]},
    }


def test_send_template_in_reply_to_a_message(start, tmp_path):
    backend = start(templates_dir=str(user_templates(tmp_path, deploy=DEPLOY_TEMPLATE)))
    asked = question(backend)
    backend.send_template(asked.to, "deploy", {"service": "db", "note": "ok"}, in_reply_to=asked)
    [call] = sent(backend)
    assert call.path == f"{SEND}/{QUESTION}/reply"
    assert call.content["header"]["title"]["content"] == "Deploy db"


def test_a_broken_user_template_still_sends_the_default_card_and_logs_one_error(
    start, tmp_path, caplog
):
    broken = '{"schema": "2.0", {% if %} }\n'
    directory = user_templates(tmp_path, card=broken)
    backend = start(templates_dir=str(directory))
    caplog.set_level(logging.ERROR)
    context = {"title": "Deploy", "elements": [{"tag": "markdown", "content": "rolled out"}]}
    backend.send_template(LarkRoom(GROUP), "card", context)
    card = sent_card(backend)
    assert card["header"]["title"]["content"] == "Deploy"  # the default card.json.j2
    assert card["body"]["elements"] == [{"tag": "markdown", "content": "rolled out"}]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "card.json.j2" in errors[0].getMessage()
    assert "line 1" in errors[0].getMessage()


def test_a_broken_user_card_template_still_lets_send_card_through(start, tmp_path, caplog):
    directory = user_templates(tmp_path, card="{{ no_such_variable }}\n")
    backend = start(templates_dir=str(directory))
    caplog.set_level(logging.ERROR)
    backend.send_card(Card(body="still here", to=LarkRoom(GROUP), title="Fallback"))
    card = sent_card(backend)
    assert card["header"]["title"]["content"] == "Fallback"
    assert "still here" in everything(card)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors
    assert all("card.json.j2" in e and "no_such_variable" in e for e in errors)


def test_a_broken_user_card_template_is_logged_once_per_send(start, tmp_path, caplog):
    directory = user_templates(tmp_path, card="{{ no_such_variable }}\n")
    backend = start(templates_dir=str(directory))
    caplog.set_level(logging.ERROR)
    backend.send_card(Card(body="still here", to=LarkRoom(GROUP), title="Fallback"))
    sent_card(backend)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1


def test_a_user_reply_template_is_used_for_every_message(start, tmp_path):
    reply = """{
  "schema": "2.0",
  "header": {"title": {"tag": "plain_text", "content": "Ops bot"}, "template": "indigo"},
  "body": {"elements": {{ elements }}}
}
"""
    backend = start(templates_dir=str(user_templates(tmp_path, reply=reply)))
    backend.send(LarkRoom(GROUP), "**hi**")
    card = sent_card(backend)
    assert card["header"]["template"] == "indigo"
    assert card["body"]["elements"] == [{"tag": "markdown", "content": "**hi**"}]


def test_a_reply_with_a_lone_surrogate_still_arrives(running):
    """A plugin's text decoded with surrogateescape cannot be encoded as UTF-8: the reply
    arrives with U+FFFD in its place instead of failing to render (found in review)."""
    running.send_message(Message("disk \udcff full, **check**", to=LarkRoom(GROUP)))
    card = sent_card(running)
    assert card["body"]["elements"][0]["content"] == "disk \ufffd full, **check**"


def test_a_card_with_a_lone_surrogate_still_arrives(running):
    running.send_card(Card(body="body \udc80", title="t\udc80", to=LarkRoom(GROUP)))
    card = sent_card(running)
    assert card["header"]["title"]["content"] == "t\ufffd"
