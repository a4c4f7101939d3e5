"""The long connection's wire format: the one protobuf message ``pbbp2.Frame``, and fragments.

Pure: bytes in, values out. Feishu's long connection (docs/feishu-platform.md §2.2) sends
every WebSocket binary message as one ``pbbp2.Frame`` (proto2)::

    message Header { required string key = 1; required string value = 2; }
    message Frame {
      required uint64 SeqID = 1;   required uint64 LogID = 2;
      required int32 service = 3;  required int32 method = 4;   // 0 CONTROL, 1 DATA
      repeated Header headers = 5;
      optional string payload_encoding = 6;  optional string payload_type = 7;
      optional bytes payload = 8;            optional string LogIDNew = 9;
    }

One message with nine fields does not need the protobuf runtime (a compiled extension plus
generated code), so this module encodes and decodes it by hand: varints (wire type 0) and
length-delimited fields (wire type 2), unknown fields skipped as the protobuf spec says
(https://protobuf.dev/programming-guides/encoding/). The tests hold byte vectors made by
lark-oapi 1.7.5's generated ``pbbp2_pb2``. An ack is the pushed frame sent back, so decoding
keeps which optional fields were present and encoding writes exactly those again.

:class:`Fragments` joins a payload Feishu split over several frames (headers ``sum`` and
``seq``, 0-based), as bytes, so a UTF-8 character cut in two is decoded whole.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

CONTROL = 0
DATA = 1

# Header keys (§2.2).
TYPE = "type"
MESSAGE_ID = "message_id"
SUM = "sum"
SEQ = "seq"
TRACE_ID = "trace_id"
BIZ_RT = "biz_rt"

# ``type`` values: control frames are ping / pong, data frames event / card.
PING = "ping"
PONG = "pong"
EVENT = "event"
CARD = "card"

_VARINT = 0
_FIXED64 = 1
_LENGTH = 2
_FIXED32 = 5
_UINT64 = (1 << 64) - 1
MAX_HEADERS = 64  # Feishu sends about six; a frame of millions of headers is an attack


class FrameError(ValueError):
    """Bytes that are not a well-formed ``pbbp2.Frame``."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One ``pbbp2.Frame``. ``None`` marks an optional field the frame did not carry."""

    seq_id: int = 0
    log_id: int = 0
    service: int = 0
    method: int = CONTROL
    headers: tuple[tuple[str, str], ...] = ()
    payload_encoding: str | None = None
    payload_type: str | None = None
    payload: bytes | None = None
    log_id_new: str | None = None

    def header(self, key: str) -> str | None:
        """The first value of header ``key``; None when the frame has none."""
        for name, value in self.headers:
            if name == key:
                return value
        return None

    @property
    def type(self) -> str | None:
        return self.header(TYPE)


def ping(service: int) -> Frame:
    """The keep-alive a client sends every ``PingInterval`` (§2.2: SeqID and LogID 0)."""
    return Frame(service=service, method=CONTROL, headers=((TYPE, PING),))


def ack(frame: Frame, code: int, *, elapsed_ms: int, data: Any = None) -> Frame:
    """The answer to a data frame: the same frame (SeqID, LogID, service, headers) with a
    ``biz_rt`` header and the payload ``{"code": code}``, plus ``data`` (base64 of its JSON)
    when there is an answer to carry: a card callback's toast and card (§2.2, §6.1)."""
    body: dict[str, Any] = {"code": code}
    if data is not None:
        answer = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        body["data"] = base64.b64encode(answer).decode("ascii")
    return replace(
        frame,
        headers=(*frame.headers, (BIZ_RT, str(max(0, int(elapsed_ms))))),
        payload=json.dumps(body, separators=(",", ":")).encode(),
    )


# ----- encoding -----------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    """The protobuf bytes of ``frame`` (required fields always, optional ones when set)."""
    out = bytearray()
    _put_varint_field(out, 1, frame.seq_id & _UINT64)
    _put_varint_field(out, 2, frame.log_id & _UINT64)
    _put_varint_field(out, 3, frame.service & _UINT64)  # negative int32 → 10-byte varint
    _put_varint_field(out, 4, frame.method & _UINT64)
    for key, value in frame.headers:
        header = bytearray()
        _put_bytes_field(header, 1, key.encode())
        _put_bytes_field(header, 2, value.encode())
        _put_bytes_field(out, 5, bytes(header))
    for number, text in ((6, frame.payload_encoding), (7, frame.payload_type)):
        if text is not None:
            _put_bytes_field(out, number, text.encode())
    if frame.payload is not None:
        _put_bytes_field(out, 8, frame.payload)
    if frame.log_id_new is not None:
        _put_bytes_field(out, 9, frame.log_id_new.encode())
    return bytes(out)


def _put_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_varint_field(out: bytearray, number: int, value: int) -> None:
    _put_varint(out, number << 3 | _VARINT)
    _put_varint(out, value)


def _put_bytes_field(out: bytearray, number: int, value: bytes) -> None:
    _put_varint(out, number << 3 | _LENGTH)
    _put_varint(out, len(value))
    out += value


# ----- decoding -----------------------------------------------------------------------------


def decode(data: bytes) -> Frame:
    """Parse one frame; :class:`FrameError` for anything malformed (never another error)."""
    fields: dict[str, Any] = {}
    headers: list[tuple[str, str]] = []
    for number, wire, value in _fields(data):
        if number in (1, 2) and wire == _VARINT:
            fields["seq_id" if number == 1 else "log_id"] = value
        elif number in (3, 4) and wire == _VARINT:
            fields["service" if number == 3 else "method"] = _int32(value)
        elif number == 5 and wire == _LENGTH:
            if len(headers) == MAX_HEADERS:
                raise FrameError(f"more than {MAX_HEADERS} headers")
            headers.append(_header(value))
        elif number in (6, 7, 9) and wire == _LENGTH:
            name = {6: "payload_encoding", 7: "payload_type", 9: "log_id_new"}[number]
            fields[name] = _text(value, name)
        elif number == 8 and wire == _LENGTH:
            fields["payload"] = bytes(value)
        elif number <= 9:
            raise FrameError(f"field {number} has wire type {wire}")
        # Higher numbers are fields a newer Feishu may add: skipped, as protobuf does.
    return Frame(headers=tuple(headers), **fields)


def _header(data: memoryview) -> tuple[str, str]:
    key = value = ""
    for number, wire, field_value in _fields(data):
        if number in (1, 2) and wire == _LENGTH:
            text = _text(field_value, "header")
            if number == 1:
                key = text
            else:
                value = text
        elif number <= 2:
            raise FrameError(f"header field {number} has wire type {wire}")
    return key, value


def _fields(data: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    view = memoryview(data)
    position = 0
    while position < len(view):
        tag, position = _varint(view, position)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise FrameError("field number 0")
        if wire == _VARINT:
            value, position = _varint(view, position)
            yield number, wire, value
        elif wire == _LENGTH:
            length, position = _varint(view, position)
            end = position + length
            if end > len(view):
                raise FrameError("length runs past the end")
            yield number, wire, view[position:end]
            position = end
        elif wire in (_FIXED64, _FIXED32):
            position += 8 if wire == _FIXED64 else 4
            if position > len(view):
                raise FrameError("fixed-width field runs past the end")
            yield number, wire, None
        else:
            raise FrameError(f"unsupported wire type {wire}")


def _varint(view: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    for index in range(position, min(position + 10, len(view))):
        byte = view[index]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _UINT64, index + 1
        shift += 7
    raise FrameError("truncated or overlong varint")


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF  # protobuf keeps the low 32 bits of an int32 varint
    return value - (1 << 32) if value >= 1 << 31 else value


def _text(view: memoryview, what: str) -> str:
    try:
        return bytes(view).decode()
    except UnicodeDecodeError:
        raise FrameError(f"{what} is not UTF-8") from None


# ----- fragments ----------------------------------------------------------------------------


class Fragments:
    """Joins the parts of a payload split over frames (``sum`` > 1, ``seq`` 0..sum-1).

    Memory is bounded: a message not complete within ``ttl`` seconds is dropped (Feishu
    redelivers it, since it was never acked), and when ``max_bytes`` would be exceeded the
    oldest partial messages go first (each counts at least ``ENTRY_COST``, so a flood of empty
    parts is bounded too). Work is bounded: expiry looks at the oldest entries only. Times come
    from the caller (never going back), so tests need no clock.
    """

    ENTRY_COST = 1024  # what one partial message counts for, beyond its parts' bytes

    def __init__(self, *, ttl: float = 5.0, max_bytes: int = 8 << 20, max_parts: int = 256):
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_parts = max_parts
        self._partial: dict[str, tuple[float, list[bytes | None]]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._partial)

    def add(self, message_id: str, total: int, seq: int, part: bytes, now: float) -> bytes | None:
        """Keep one part; the whole payload once every part is here, else None.

        Raises :class:`FrameError` for a ``sum``/``seq`` that cannot be right.
        """
        if not 1 <= total <= self.max_parts or not 0 <= seq < total:
            raise FrameError(f"fragment {seq} of {total} is out of range")
        self.expire(now)
        known = self._partial.get(message_id)
        if known is not None and len(known[1]) != total:  # started over with another split
            self._drop(message_id)
            known = None
        if known is None:
            known = (now, [None] * total)
            self._bytes += self.ENTRY_COST
        started, parts = known
        old = parts[seq]
        self._bytes += len(part) - (len(old) if old is not None else 0)
        parts[seq] = part
        self._partial[message_id] = (started, parts)
        if all(piece is not None for piece in parts):
            self._drop(message_id)
            return b"".join(piece for piece in parts if piece is not None)
        while self._bytes > self.max_bytes and self._partial:
            self._drop(next(iter(self._partial)))  # the oldest first (insertion order)
        return None

    def expire(self, now: float) -> None:
        """Drop partial messages older than ``ttl`` (they are kept oldest first)."""
        while self._partial:
            message_id, (started, _) = next(iter(self._partial.items()))
            if now - started <= self.ttl:
                return
            self._drop(message_id)

    def _drop(self, message_id: str) -> None:
        dropped = self._partial.pop(message_id, None)
        if dropped is not None:
            parts = dropped[1]
            self._bytes -= self.ENTRY_COST + sum(len(p) for p in parts if p is not None)
