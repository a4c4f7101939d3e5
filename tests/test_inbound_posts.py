"""Received ``post`` messages in both shapes that reach a bot: Feishu's receive shape (no
locale wrapper, §1.4) and the send shape ``{"zh_cn": {"title", "content"}}`` (§5.2), with the
send-only ``md`` node among the others. Both give the same text and images to Errbot."""

from __future__ import annotations

import json

import pytest
from feishu_payloads import envelope, load

from lark_cards.identifiers import Identities, LarkPerson
from lark_cards.inbound.events import Attachment, parse_content, parse_message
from lark_cards.inbound.messages import to_message

IMAGE = "img_v3_02ab_3f1c9d2e-8b7a-4c6d-9e0f-1a2b3c4d5e6g"
PARAGRAPHS = [
    [{"tag": "text", "text": "deploy "}, {"tag": "a", "text": "build 42", "href": "https://ci"}],
    [{"tag": "md", "text": "**done** in `3m`"}],
    [{"tag": "img", "image_key": IMAGE}],
]
TEXT = "Release\ndeploy build 42\n**done** in `3m`\n"


@pytest.mark.parametrize(
    "post",
    [
        {"title": "Release", "content": PARAGRAPHS},
        {"zh_cn": {"title": "Release", "content": PARAGRAPHS}},
        {"en_us": {"title": "Release", "content": PARAGRAPHS}, "zh_cn": {"content": []}},
    ],
    ids=["received-shape", "zh_cn-wrapped", "first-locale-with-content"],
)
def test_both_post_shapes_give_the_same_text_and_images(post: dict):
    content = parse_content("post", json.dumps(post))
    assert content.text == TEXT
    assert content.attachments == (Attachment(IMAGE, "image"),)


def test_a_wrapped_post_reaches_errbot_with_its_mention_resolved():
    message = load("group_post")["event"]["message"]
    unwrapped = json.loads(message["content"])
    message["content"] = json.dumps({"zh_cn": unwrapped})
    received = parse_message(envelope("group_post", message=message))
    bot = LarkPerson(received.mentions[0].open_id or "ou_bot")
    msg, _ = to_message(received, bot, Identities())
    assert msg.body == "!deploy build 42"
    assert msg.extras["image_keys"] == [a.key for a in received.attachments]


def test_a_locale_without_paragraphs_is_no_post():
    assert parse_content("post", json.dumps({"zh_cn": {"title": "only"}})).text == ""
