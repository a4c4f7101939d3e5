"""The long connection's frame codec and fragment joining (lark_cards/transport/frames.py).

The byte vectors were made with lark-oapi 1.7.5's generated ``pbbp2_pb2.Frame`` (the official
SDK's own protobuf code) and its ``_new_ping_frame``, so equality here is wire compatibility.
"""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lark_cards.transport import frames
from lark_cards.transport.frames import Fragments, Frame, FrameError

# lark_oapi.ws.client._new_ping_frame(7).SerializeToString()
PING_7 = bytes.fromhex("08001000180720002a0c0a0474797065120470696e67")
# SeqID 300, LogID 2**64-1, service -5, method 1, six headers (one in Chinese), a payload with
# "é" (2 bytes), LogIDNew "x" — every field but 6 and 7.
DATA = bytes.fromhex(
    "08ac0210ffffffffffffffffff0118fbffffffffffffffff0120012a0d0a047479706512056576656e742a10"
    "0a0a6d6573736167655f696412026d312a080a0373756d1201312a080a037365711201302a0d0a0874726163"
    "655f69641201742a0a0a03e994ae1203e580bc420a7b2261223a22c3a9227d4a0178"
)
# SeqID 1, LogID 2, service 3, method 0, payload_encoding "" (set but empty), payload_type "json".
OPTIONAL = bytes.fromhex("080110021803200032003a046a736f6e")


def test_a_ping_is_byte_for_byte_the_official_sdks():
    assert frames.encode(frames.ping(7)) == PING_7
    assert frames.decode(PING_7) == Frame(service=7, headers=(("type", "ping"),))


def test_a_data_frame_decodes_and_encodes_back_to_the_same_bytes():
    frame = frames.decode(DATA)
    assert frame.seq_id == 300
    assert frame.log_id == 2**64 - 1
    assert frame.service == -5  # a negative int32 is a 10-byte varint
    assert frame.method == frames.DATA
    assert frame.headers == (
        ("type", "event"),
        ("message_id", "m1"),
        ("sum", "1"),
        ("seq", "0"),
        ("trace_id", "t"),
        ("键", "值"),
    )
    assert frame.payload == '{"a":"é"}'.encode()
    assert frame.log_id_new == "x"
    assert frame.payload_encoding is None
    assert frame.payload_type is None
    assert frames.encode(frame) == DATA


def test_optional_fields_keep_their_presence_even_when_empty():
    frame = frames.decode(OPTIONAL)
    assert (frame.payload_encoding, frame.payload_type, frame.payload) == ("", "json", None)
    assert frames.encode(frame) == OPTIONAL


def test_an_ack_is_the_pushed_frame_with_biz_rt_and_a_code():
    pushed = frames.decode(DATA)
    acked = frames.decode(frames.encode(frames.ack(pushed, 200, elapsed_ms=12)))
    assert (acked.seq_id, acked.log_id, acked.service, acked.method) == (300, 2**64 - 1, -5, 1)
    assert acked.headers == (*pushed.headers, ("biz_rt", "12"))
    assert acked.log_id_new == "x"
    assert json.loads(acked.payload or b"") == {"code": 200}


def test_a_callbacks_ack_carries_its_answer_as_base64_json():
    answer = {"toast": {"type": "success", "content": "已批准"}, "card": {"schema": "2.0"}}
    acked = frames.ack(frames.decode(DATA), 200, elapsed_ms=3, data=answer)
    body = json.loads(acked.payload or b"")
    assert body["code"] == 200
    assert json.loads(base64.b64decode(body["data"])) == answer


def test_unknown_fields_are_skipped_and_known_ones_kept():
    extra = (
        bytes.fromhex("5005")  # field 10, varint 5
        + bytes.fromhex("5a03616263")  # field 11, bytes "abc"
        + bytes.fromhex("6101020304050607 08".replace(" ", ""))  # field 12, fixed64
        + bytes.fromhex("6d01020304")  # field 13, fixed32
    )
    assert frames.decode(PING_7 + extra) == frames.decode(PING_7)


@pytest.mark.parametrize(
    "data",
    [
        PING_7[:-1],  # a header cut short
        bytes.fromhex("08"),  # a tag without its value
        bytes.fromhex("08ffffffffffffffffffff01"),  # a varint over 10 bytes
        bytes.fromhex("2a05"),  # headers longer than the frame
        bytes.fromhex("0a00"),  # SeqID with a length-delimited wire type
        bytes.fromhex("0b"),  # wire type 3 (groups)
        bytes.fromhex("0001"),  # field number 0
        bytes.fromhex("2a040a02ff00"),  # a header key that is not UTF-8
        bytes.fromhex("6101"),  # a fixed64 cut short
    ],
)
def test_malformed_bytes_are_a_frame_error(data):
    with pytest.raises(FrameError):
        frames.decode(data)


@given(st.binary(max_size=64))
def test_any_bytes_decode_to_a_frame_or_a_frame_error(data):
    with contextlib.suppress(FrameError):
        frames.decode(data)


_text = st.text(max_size=20)


@given(
    st.builds(
        Frame,
        seq_id=st.integers(0, 2**64 - 1),
        log_id=st.integers(0, 2**64 - 1),
        service=st.integers(-(2**31), 2**31 - 1),
        method=st.sampled_from([0, 1]),
        headers=st.lists(st.tuples(_text, _text), max_size=6).map(tuple),
        payload_encoding=st.none() | _text,
        payload_type=st.none() | _text,
        payload=st.none() | st.binary(max_size=200),
        log_id_new=st.none() | _text,
    )
)
def test_every_frame_survives_a_round_trip(frame):
    assert frames.decode(frames.encode(frame)) == frame


# ----- fragments ------------------------------------------------------------------------------


def test_fragments_are_joined_as_bytes_even_when_a_character_is_cut():
    payload = json.dumps({"text": "部署完成 ✅ " * 50}, ensure_ascii=False).encode()
    cut = payload.index("署".encode()) + 1  # inside the character's three bytes
    parts = [payload[:cut], payload[cut : cut + 100], payload[cut + 100 :]]
    with pytest.raises(UnicodeDecodeError):
        parts[0].decode()
    joined = Fragments()
    assert joined.add("m1", 3, 2, parts[2], now=0.0) is None  # any order
    assert joined.add("m1", 3, 0, parts[0], now=0.1) is None
    assert joined.add("m1", 3, 1, parts[1], now=0.2) == payload
    assert len(joined) == 0


def test_a_part_sent_twice_is_kept_once():
    joined = Fragments()
    assert joined.add("m1", 2, 0, b"ab", now=0) is None
    assert joined.add("m1", 2, 0, b"ab", now=0) is None
    assert joined.add("m1", 2, 1, b"cd", now=0) == b"abcd"


def test_an_incomplete_message_expires_after_the_ttl():
    joined = Fragments(ttl=5.0)
    joined.add("m1", 2, 0, b"ab", now=0.0)
    joined.add("m2", 2, 0, b"xy", now=4.0)
    assert joined.add("m1", 2, 1, b"cd", now=5.5) is None  # m1 was dropped: starts again
    assert joined.add("m2", 2, 1, b"zz", now=5.5) == b"xyzz"


def test_memory_stays_bounded_by_dropping_the_oldest_partial_messages():
    joined = Fragments(max_bytes=3 * (Fragments.ENTRY_COST + 30) + 10)
    for number in range(10):
        joined.add(f"m{number}", 2, 0, b"x" * 30, now=0)
    assert len(joined) == 3  # three entries fit, the seven oldest were dropped
    assert joined.add("m9", 2, 1, b"y", now=0) == b"x" * 30 + b"y"
    assert joined.add("m0", 2, 1, b"y", now=0) is None


def test_a_new_split_of_the_same_message_starts_over():
    joined = Fragments()
    joined.add("m1", 3, 0, b"a", now=0)
    assert joined.add("m1", 2, 0, b"ab", now=0) is None
    assert joined.add("m1", 2, 1, b"cd", now=0) == b"abcd"


def test_a_flood_of_empty_parts_is_bounded_and_cheap():
    joined = Fragments(max_bytes=1 << 20)
    for number in range(50_000):  # quadratic expiry would take minutes here
        joined.add(f"m{number}", 2, 0, b"", now=number * 1e-4)
    assert len(joined) == (1 << 20) // Fragments.ENTRY_COST
    joined.expire(now=100.0)
    assert len(joined) == 0


def test_more_headers_than_feishu_ever_sends_are_refused():
    many = frames.Frame(headers=tuple(("k", "v") for _ in range(frames.MAX_HEADERS + 1)))
    with pytest.raises(FrameError, match="headers"):
        frames.decode(frames.encode(many))


@pytest.mark.parametrize(("total", "seq"), [(0, 0), (2, 2), (2, -1), (10_000, 0)])
def test_impossible_fragment_numbers_are_refused(total, seq):
    with pytest.raises(FrameError):
        Fragments().add("m1", total, seq, b"x", now=0)
