"""A card made with the user's own template that Feishu refuses for its content still reaches
the chat. It is made again with the shipped template, and one WARNING names the file and
Feishu's answer. Cards made with the shipped templates keep the smaller-cards / text path.

Feishu is the fake Open Platform (``api_fakes.FakeOpenAPI``). Its refusals are shaped like
Feishu's: HTTP 400 with ``code``, ``msg`` and ``error.log_id``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from api_fakes import Call, FakeOpenAPI, FakeTime
from errbot.backends.base import Card, Message
from outbox_wiring import Wiring

from lark_cards.api.errors import LarkAPIError
from lark_cards.identifiers import LarkRoom
from lark_cards.interactive import button
from lark_cards.outbound.cards import AsyncCard
from lark_cards.outbound.delivery import Delivery
from lark_cards.outbound.target import Target
from lark_cards.render import Budget, Outgoing, RenderOptions, render_reply
from lark_cards.render.validate import validate_card

GROUP = "oc_a0553eda9014c201e6969b478895c230"
TO_GROUP = Target(receive_id=GROUP, receive_id_type="chat_id", chat_key=GROUP, uuid_seed="m#0")
# How im/v1 answers a card JSON 2.0 with a property it does not know (the ext text varies).
UNKNOWN_PROPERTY = (
    230001,
    "Your request contains an invalid request parameter, ext=ErrCode: 200621; ErrMsg: parse "
    "card json err, please check whether the card json is correct",
)
REPLY_TEXT = "**deploy** of `api` finished\n\n- web-1 up\n- web-2 up"

# A reply template carried over from card JSON 1.0: ``wide_screen_mode`` is not a 2.0 property.
WIDE_REPLY = """{
  "schema": "2.0",
  "config": {"wide_screen_mode": true, "update_multi": true},
  "body": {"elements": [
    {%- for element in elements %}{{ element }}{% if not loop.last %},{% endif %}{% endfor %}
  ]}
}
"""
WIDE_CARD = """{
  "schema": "2.0",
  "config": {"wide_screen_mode": true},
  "header": {"title": {"tag": "plain_text", "content": {{ title | default("") }}}},
  "body": {"elements": {{ elements }}}
}
"""


def templates(tmp_path: Path, **files: str) -> str:
    directory = tmp_path / "card-templates"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.json.j2").write_text(text)
    return str(directory)


def like_feishu(call: Call) -> int | tuple[int, str] | None:
    """Refuse a card the way Feishu would (``validate_card``: 230001 for a bad property)."""
    if call.json["msg_type"] != "interactive":
        return None
    problems = validate_card(call.content)
    if not problems:
        return None
    return UNKNOWN_PROPERTY if problems[0].code == 230001 else problems[0].code


def once(code: int | tuple[int, str]) -> Any:
    """Refuse the first card with ``code``; accept the rest."""
    refused: list[Call] = []

    def decide(call: Call) -> int | tuple[int, str] | None:
        if call.json["msg_type"] != "interactive" or refused:
            return None
        refused.append(call)
        return code

    return decide


def fake_api(decide: Any) -> FakeOpenAPI:
    time = FakeTime()
    fake = FakeOpenAPI(clock=time.clock, sleep=time.sleep)
    fake.refuse(decide)
    return fake


async def send(fake: FakeOpenAPI, options: RenderOptions, items: list[Outgoing]) -> list[Any]:
    delivery = Delivery(fake, options, upload_images=False)
    async with delivery.turn(GROUP):
        return await delivery.send_items(TO_GROUP, items)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ----- a user's template refused -----------------------------------------------------------------


async def test_a_refused_user_reply_template_is_sent_again_in_the_default(tmp_path, caplog):
    user = RenderOptions(templates_dir=templates(tmp_path, reply=WIDE_REPLY))
    [item] = render_reply(REPLY_TEXT, options=user)
    assert item.content["config"]["wide_screen_mode"] is True  # the user's template made it
    fake = fake_api(once(UNKNOWN_PROPERTY))

    sent = await send(fake, user, [item])

    refused, resent = fake.messages()
    assert refused.code == 230001
    assert refused.content == item.content
    [default] = render_reply(REPLY_TEXT)  # the shipped reply.json.j2
    assert resent.code == 0
    assert resent.content == default.content
    assert "wide_screen_mode" not in resent.json["content"]
    assert resent.json["uuid"] != refused.json["uuid"]  # a message of its own
    assert [s["message_id"] for s in sent] == ["om_1"]
    [line] = warnings(caplog)
    assert str(Path(user.templates_dir or "") / "reply.json.j2") in line
    assert "230001" in line
    assert "parse card json err" in line
    assert "20250101000000LOGID" in line  # Feishu support needs the log_id
    assert "web-1" not in caplog.text  # the reply's words are not logged


async def test_every_card_of_a_long_reply_goes_in_the_default_after_one_refusal(tmp_path, caplog):
    small = RenderOptions(budget=Budget(max_bytes=4096, margin=512))
    user = RenderOptions(budget=small.budget, templates_dir=templates(tmp_path, reply=WIDE_REPLY))
    text = "\n\n".join(f"Paragraph {n}: " + "words and more words " * 30 for n in range(12))
    items = render_reply(text, options=user)
    assert len(items) >= 3
    fake = fake_api(like_feishu)  # refuses every card the user's template makes

    sent = await send(fake, user, items)

    calls = fake.messages()
    assert [call.code for call in calls[:1]] == [230001]
    assert all(call.code == 0 for call in calls[1:])  # the other cards were not tried first
    defaults = render_reply(text, options=small)
    assert [call.content for call in calls[1:]] == [item.content for item in defaults]
    last = calls[-1].content["body"]["elements"][-1]["content"]
    assert last == f"<font color='grey'>{len(defaults)}/{len(defaults)}</font>"
    assert len(sent) == len(defaults)
    assert len(warnings(caplog)) == 1


def test_a_refused_user_card_template_falls_back_for_send_card(wired: Wiring, tmp_path):
    wired.delivery.options = RenderOptions(templates_dir=templates(tmp_path, card=WIDE_CARD))
    wired.fake.refuse(like_feishu)
    wired.outbox.send_card(Card(body="rolled **out**", title="Deploy", to=LarkRoom(GROUP)))
    refused, resent = wired.messages(2)
    assert refused.code == 230001
    assert resent.code == 0
    assert "wide_screen_mode" not in resent.json["content"]
    assert resent.content["header"]["title"]["content"] == "Deploy"
    assert "rolled **out**" in resent.json["content"]
    wired.quiet(2)


def test_a_refused_user_template_of_send_template_uses_the_shipped_one(wired: Wiring, tmp_path):
    wired.delivery.options = RenderOptions(templates_dir=templates(tmp_path, card=WIDE_CARD))
    wired.fake.refuse(like_feishu)
    context = {"title": "Deploy", "elements": [{"tag": "markdown", "content": "rolled out"}]}
    wired.outbox.send_template(Message("", to=LarkRoom(GROUP)), "card", context)
    refused, resent = wired.messages(2)
    assert refused.code == 230001
    assert resent.content["header"]["title"]["content"] == "Deploy"
    assert resent.content["body"]["elements"] == context["elements"]


def test_buttons_survive_the_default_template(wired: Wiring, tmp_path):
    wired.delivery.options = RenderOptions(templates_dir=templates(tmp_path, reply=WIDE_REPLY))
    wired.fake.refuse(like_feishu)
    approve = button("Approve", "deploy approve", style="primary")
    wired.outbox.send_buttons(LarkRoom(GROUP), "Deploy **api**?", [approve], None)
    refused, resent = wired.messages(2)
    assert refused.code == 230001
    row = resent.content["body"]["elements"][-1]
    assert row["tag"] == "column_set"
    assert row["columns"][0]["elements"] == [approve]


async def test_a_refused_update_is_patched_in_the_default_template(tmp_path, caplog):
    user = RenderOptions(templates_dir=templates(tmp_path, reply=WIDE_REPLY))
    fake = FakeOpenAPI()
    refusals: list[Call] = []

    def patch(call: Call) -> Any:
        if validate_card(call.content):
            refusals.append(call)
            return 400, {"code": UNKNOWN_PROPERTY[0], "msg": UNKNOWN_PROPERTY[1]}
        return {"code": 0, "data": {}}

    fake.on("PATCH", "/open-apis/im/v1/messages/*", patch)
    [item] = render_reply("step **2** of 3", options=user)
    await AsyncCard.of({"message_id": "om_9"}, GROUP).update(Delivery(fake, user), item)
    first, second = fake.messages()
    assert first in refusals
    assert second.content == render_reply("step **2** of 3")[0].content
    [line] = warnings(caplog)
    assert "reply.json.j2" in line
    assert "230001" in line


# ----- what does not trigger it ------------------------------------------------------------------


@pytest.mark.parametrize("code", [230002, 99991663, 230020])
async def test_other_refusals_of_a_user_template_are_not_retried_in_the_default(tmp_path, code):
    user = RenderOptions(templates_dir=templates(tmp_path, reply=WIDE_REPLY))
    [item] = render_reply(REPLY_TEXT, options=user)
    fake = fake_api(lambda call: code)
    with pytest.raises(LarkAPIError) as info:
        await send(fake, user, [item])
    assert info.value.code == code
    assert all(call.content == item.content for call in fake.messages())


async def test_a_default_template_refused_keeps_the_smaller_cards_and_text_path(tmp_path, caplog):
    """Only ``card`` is the user's here: replies use the shipped template, and a refusal of
    one is handled exactly as without a templates_dir."""
    user = RenderOptions(templates_dir=templates(tmp_path, card=WIDE_CARD))
    text = "\n\n".join(f"| h{k} |\n|---|\n| v{k} |" for k in range(7))
    runs = []
    for options in (RenderOptions(), user):
        fake = fake_api(lambda call: 230099 if call.json["msg_type"] == "interactive" else None)
        await send(fake, options, render_reply(text, options=options))
        runs.append([(call.json["msg_type"], call.content, call.code) for call in fake.messages()])
    assert runs[0] == runs[1]
    assert runs[1][-1][0] == "post"  # in the end, as text
    assert "smaller cards" in caplog.text
    assert "your template" not in caplog.text


async def test_a_default_reply_refused_with_230001_is_not_retried(tmp_path):
    user = RenderOptions(templates_dir=templates(tmp_path, card=WIDE_CARD))
    items = render_reply(REPLY_TEXT, options=user)
    fake = fake_api(lambda call: UNKNOWN_PROPERTY)
    with pytest.raises(LarkAPIError) as info:
        await send(fake, user, items)
    assert info.value.code == 230001
    assert len(fake.messages()) == 1


async def test_a_broken_user_template_already_made_the_default_card(tmp_path, caplog):
    """A user file the renderer could not use made the default card already: a refusal of
    that card is the default's, handled by the smaller-cards / text path."""
    user = RenderOptions(templates_dir=templates(tmp_path, reply='{"schema": {% if %} }\n'))
    [item] = render_reply(REPLY_TEXT, options=user)
    assert item.content == render_reply(REPLY_TEXT)[0].content
    fake = fake_api(lambda call: 230099 if call.json["msg_type"] == "interactive" else None)
    await send(fake, user, [item])
    assert fake.delivered()[-1].json["msg_type"] == "post"
    assert "your template" not in caplog.text


async def test_a_plugins_own_card_json_is_not_remade(tmp_path):
    user = RenderOptions(templates_dir=templates(tmp_path, reply=WIDE_REPLY))
    card = {"schema": "2.0", "config": {"wide_screen_mode": True}, "body": {"elements": []}}
    fake = fake_api(like_feishu)
    with pytest.raises(LarkAPIError):
        await send(fake, user, [Outgoing("interactive", card)])
    assert len(fake.messages()) == 1
