"""Envelopes: what the transport reads before it trusts and routes a callback."""

import pytest
from feishu_payloads import envelope, load

from lark_cards.transport.envelope import (
    MESSAGE_RECEIVE,
    Envelope,
    EventError,
    UrlVerification,
    message_id_of,
    parse_callback,
)


def test_url_verification():
    parsed = parse_callback(load("url_verification"))
    assert parsed == UrlVerification("ajls384kdjx98XX", "rvaYgkPtXGbKvXLbHQVnSgJwlmuTvfBM")


def test_a_schema_2_envelope_keeps_id_type_token_and_event():
    parsed = envelope("p2p_text")
    assert parsed.event_type == MESSAGE_RECEIVE
    assert parsed.token == "rvaYgkPtXGbKvXLbHQVnSgJwlmuTvfBM"
    assert parsed.event["message"]["chat_type"] == "p2p"


def test_only_received_messages_have_a_message_id_for_dedup():
    assert message_id_of(envelope("p2p_text")) == "om_5ce6d572455d361153b7cb51da133945"
    assert message_id_of(envelope("unknown_event")) is None
    # Another event type that happens to carry a message is not a message redelivery.
    mentions_a_message = Envelope(
        "e", "im.message.read_v1", None, {"message": {"message_id": "om"}}
    )
    assert message_id_of(mentions_a_message) is None


def test_schema_1_envelope_is_recognised():
    legacy = {"uuid": "bc44", "token": "t", "type": "event_callback", "event": {"type": "message"}}
    parsed = parse_callback(legacy)
    assert isinstance(parsed, Envelope)
    assert (parsed.event_id, parsed.event_type) == ("bc44", "v1:message")


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
