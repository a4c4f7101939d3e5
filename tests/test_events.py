import json
from pathlib import Path

import pytest

from lark_cards.events import (
    Envelope,
    EventError,
    Mention,
    UrlVerification,
    content_text,
    message_id_of,
    parse_callback,
    parse_message,
    resolve_mentions,
)

FIXTURES = Path(__file__).parent / "fixtures" / "events"
BOT = "ou_bot00000000000000000000000000000"


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def test_url_verification():
    parsed = parse_callback(load("url_verification"))
    assert parsed == UrlVerification("ajls384kdjx98XX", "rvaYgkPtXGbKvXLbHQVnSgJwlmuTvfBM")


def test_p2p_text_message():
    envelope = parse_callback(load("p2p_text"))
    assert isinstance(envelope, Envelope)
    assert envelope.token == "rvaYgkPtXGbKvXLbHQVnSgJwlmuTvfBM"
    message = parse_message(envelope)
    assert message.is_direct
    assert message.text == "!echo hi"
    assert message.sender_open_id == "ou_84aad35d084aa403a838cf73ee18467"
    assert message.chat_id == "oc_5ce6d572455d361153b7xx51da133945"
    assert message.root_id is None  # Feishu sends "" for "no root"
    assert message_id_of(envelope) == "om_5ce6d572455d361153b7cb51da133945"


def test_group_message_mentions():
    message = parse_message(parse_callback(load("group_text_mentions")))
    assert not message.is_direct
    assert [m.key for m in message.mentions] == ["@_user_1", "@_user_2"]
    text, others = resolve_mentions(message.text, message.mentions, BOT)
    assert text == "!echo hi @Alice"
    assert [m.name for m in others] == ["Alice"]


def test_post_becomes_plain_text_with_thread_ids():
    message = parse_message(parse_callback(load("group_post")))
    assert message.message_type == "post"
    assert message.text == "@_user_1 !deploy build 42\n"
    assert message.thread_id == "omt_1a2b3c4d5e6f"
    assert message.root_id == "om_root000000000000000000000000001"
    text, _ = resolve_mentions(message.text, message.mentions, BOT)
    assert text == "!deploy build 42"


def test_unknown_event_is_an_envelope_and_not_a_message():
    envelope = parse_callback(load("unknown_event"))
    assert envelope.event_type == "im.chat.updated_v1"
    assert message_id_of(envelope) is None
    with pytest.raises(EventError):
        parse_message(envelope)


def test_schema_1_envelope_is_recognised():
    legacy = {"uuid": "bc44", "token": "t", "type": "event_callback", "event": {"type": "message"}}
    envelope = parse_callback(legacy)
    assert (envelope.event_id, envelope.event_type) == ("bc44", "v1:message")


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "x",
        {},
        {"type": "url_verification"},
        {"schema": "2.0", "header": {}, "event": {}},
        {"schema": "2.0", "header": {"event_id": "e", "event_type": "t"}, "event": []},
    ],
)
def test_malformed_envelopes_raise_event_error(payload):
    with pytest.raises(EventError):
        parse_callback(payload)


def test_message_with_missing_fields_raises():
    payload = load("p2p_text")
    del payload["event"]["message"]["chat_id"]
    with pytest.raises(EventError, match="chat_id"):
        parse_message(parse_callback(payload))


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
    assert content_text(kind, content) == text


def test_resolve_mentions_does_not_confuse_user_1_with_user_10():
    mentions = (Mention("@_user_1", BOT, "Bot"), Mention("@_user_10", "ou_x", "Xu"))
    text, _ = resolve_mentions("@_user_1 hi @_user_10", mentions, BOT)
    assert text == "hi @Xu"


def test_resolve_mentions_keeps_unknown_placeholders_and_reads_at_all():
    text, others = resolve_mentions("@_user_9 @_all ping", (), BOT)
    assert text == "@_user_9 @all ping"
    assert others == []
