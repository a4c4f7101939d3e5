"""Received messages and card clicks → records: each payload, and its content, read once."""

import json

import pytest
from feishu_payloads import envelope, load

from lark_cards.inbound.events import (
    Attachment,
    Content,
    parse_card_action,
    parse_content,
    parse_message,
)
from lark_cards.transport.envelope import EventError

ALICE = "ou_84aad35d084aa403a838cf73ee18467"
GROUP = "oc_a0553eda9014c201e6969b478895c230"
CARD = "om_card0000000000000000000000000001"
IMAGE = "img_v2_041b28e3-5680-48c2-9af2-497ace79333g"

# ----- messages (§1.3) -------------------------------------------------------------------------


def test_p2p_text_message():
    message = parse_message(envelope("p2p_text"))
    assert message.is_direct
    assert message.text == "!echo hi"
    assert message.sender_open_id == ALICE
    assert message.chat_id == "oc_5ce6d572455d361153b7xx51da133945"
    assert message.message_id == "om_5ce6d572455d361153b7cb51da133945"
    assert message.root_id is None  # Feishu sends "" for "no root"
    assert message.attachments == ()


def test_group_message_mentions():
    message = parse_message(envelope("group_text_mentions"))
    assert not message.is_direct
    names = [(m.key, m.name) for m in message.mentions]
    assert names == [("@_user_1", "ChatOps Bot"), ("@_user_2", "Alice")]


def test_post_becomes_plain_text_with_thread_ids_and_its_images():
    message = parse_message(envelope("group_post"))
    assert message.message_type == "post"
    assert message.text == "@_user_1 !deploy build 42\n"
    assert message.thread_id == "omt_1a2b3c4d5e6f"
    assert message.root_id == "om_root000000000000000000000000001"
    assert message.attachments == (Attachment(IMAGE, "image"),)


def test_image_file_and_media_messages_carry_their_keys():
    assert parse_message(envelope("group_image")).attachments == (Attachment(IMAGE, "image"),)
    [report] = parse_message(envelope("group_file")).attachments
    assert report == Attachment(
        "file_v2_9a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5g", "file", "deploy-report.pdf"
    )
    video, cover = parse_message(envelope("group_media")).attachments
    assert (video.kind, video.duration, cover.kind) == ("file", 2000, "image")


def test_message_with_missing_fields_raises():
    message = load("p2p_text")["event"]["message"]
    del message["chat_id"]
    with pytest.raises(EventError, match="chat_id"):
        parse_message(envelope("p2p_text", message=message))


@pytest.mark.parametrize(
    ("kind", "content", "text"),
    [
        ("text", '{"text": "hi"}', "hi"),
        ("text", "not json", ""),
        ("text", '{"text": 3}', ""),
        ("image", '{"image_key": "img_x"}', ""),
        (
            "post",
            json.dumps(
                {
                    "title": "T",
                    "content": [
                        [{"tag": "code_block", "language": "GO", "text": "x := 1"}],
                        [{"tag": "hr"}],
                        [{"tag": "emotion", "emoji_type": "OK"}, {"tag": "img"}],
                    ],
                }
            ),
            "T\nx := 1\n---\n:OK:",
        ),
    ],
)
def test_content_text(kind, content, text):
    assert parse_content(kind, content).text == text


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("image", "not json"),
        ("image", '{"image_key": 7}'),
        ("sticker", '{"file_key": "x"}'),  # not a type download_file can fetch
        ("text", '{"text": "hi", "image_key": "img_x"}'),
    ],
)
def test_contents_without_attachments(kind, content):
    assert parse_content(kind, content).attachments == ()


def test_a_files_name_and_duration_are_kept_only_when_well_formed():
    content = json.dumps({"file_key": "f", "file_name": 3, "duration": True})
    assert parse_content("audio", content) == Content(attachments=(Attachment("f", "file"),))


# ----- card clicks (§6.1) ---------------------------------------------------------------------


def test_parse_card_action_reads_the_documented_fields():
    action = parse_card_action(envelope("card_action"))
    assert action.event_id == "0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"
    assert action.operator_open_id == ALICE
    assert action.value == {"cmd": "!approve 7f3a", "request": "7f3a"}
    assert (action.command, action.arguments) == ("!approve 7f3a", {"request": "7f3a"})
    assert (action.tag, action.name, action.host) == ("button", "approve", "im_message")
    assert (action.open_message_id, action.open_chat_id) == (CARD, GROUP)
    assert action.form_value is None
    assert action.raw is not None
    assert action.raw["timezone"] == "Asia/Shanghai"


def test_a_string_value_is_the_command_and_forms_keep_their_values():
    assert parse_card_action(envelope("card_action_p2p")).value == {"cmd": "!status"}
    form = parse_card_action(envelope("card_action_form"))
    assert form.form_value == {"comment": "looks good", "score": "5"}
    assert form.command is None
    for value in (None, 42, ["!x"], "  ", {"cmd": 7}, {"cmd": "  "}):
        action = {**load("card_action")["event"]["action"], "value": value}
        assert parse_card_action(envelope("card_action", action=action)).command is None


def test_legacy_top_level_ids_are_read_when_context_lacks_them():
    action = parse_card_action(
        envelope("card_action", context={}, open_message_id="om_x", open_chat_id="oc_y")
    )
    assert (action.open_message_id, action.open_chat_id) == ("om_x", "oc_y")


def test_unreadable_card_actions_raise():
    with pytest.raises(EventError, match="operator"):
        parse_card_action(envelope("card_action", operator=None))
    with pytest.raises(EventError, match="open_id"):
        parse_card_action(envelope("card_action", operator={"user_id": "x"}))
    with pytest.raises(EventError, match="action"):
        parse_card_action(envelope("card_action", action="click"))
