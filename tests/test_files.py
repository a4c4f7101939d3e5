"""Files and images: multipart uploads as Feishu expects, the messages that show them, Errbot
streams over the delivery path, downloads. (The keys of incoming files are in test_events.py
and test_inbound_messages.py; a stream's place in its chat's order is in test_delivery.py.)"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses
from api_fakes import BASE, FakeOpenAPI, FakeTime, calls
from errbot.backends.base import (
    STREAM_ERROR,
    STREAM_SUCCESSFULLY_TRANSFERED,
    STREAM_TRANSFER_IN_PROGRESS,
    STREAM_WAITING_TO_START,
    Message,
    Stream,
)

from lark_cards.api.client import LarkClient, read_limited
from lark_cards.api.errors import ACCESS_TOKEN_INVALID, LarkAPIError
from lark_cards.api.files import (
    MAX_FILE_BYTES,
    TRANSFER_TIMEOUT,
    download_resource,
    file_type,
    is_image,
    upload_file,
)
from lark_cards.bridge import LoopBridge
from lark_cards.identifiers import LarkPerson, LarkRoom
from lark_cards.outbound import Delivery, Outbox, Target
from lark_cards.outbound.delivery import Sent
from lark_cards.outbound.files import file_message
from lark_cards.render import RenderOptions

GROUP = "oc_a0553eda9014c201e6969b478895c230"
ALICE = "ou_alice000000000000000000000000000"
MSG = "om_file000000000000000000000000001"
FILES = "/open-apis/im/v1/files"
SEND_RE = re.compile(rf"^{re.escape(BASE)}/open-apis/im/v1/messages\?receive_id_type=")
SENT = {"code": 0, "msg": "success", "data": {"message_id": "om_sent"}}
FILE_KEY = {"code": 0, "data": {"file_key": "file_k"}}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
TO_GROUP = Target(receive_id=GROUP, receive_id_type="chat_id", chat_key=GROUP)


def form_fields(form: aiohttp.FormData) -> dict[str, tuple[Any, str | None]]:
    """``name → (value, filename)`` of a multipart form as aiohttp will encode it."""
    assert form.is_multipart
    return {
        options["name"]: (value, options.get("filename"))
        for options, _headers, value in form._fields
    }


def sent(m: aioresponses) -> tuple[str, dict[str, Any]]:
    [call] = calls(m, "POST", "/open-apis/im/v1/messages")
    body = call.kwargs["json"]
    return body["msg_type"], json.loads(body["content"])


async def send_file(
    client: LarkClient, target: Target, data: bytes, name: str, stream_type: str | None = None
) -> Sent:
    """What a stream's send does once its bytes are read: upload, then the message."""
    delivery = Delivery(client, RenderOptions())
    item = await file_message(delivery, data, name, stream_type)
    [data_sent] = await delivery.send_items(target, [item])
    return data_sent


# ----- uploads and the messages that show them ------------------------------------------------


async def test_upload_file_is_the_multipart_form_feishu_documents(client, m):
    m.post(f"{BASE}{FILES}", payload={"code": 0, "data": {"file_key": "file_v2_k"}})
    assert await upload_file(client, b"%PDF-1.7 ...", "report.pdf") == "file_v2_k"
    [call] = calls(m, "POST", FILES)
    assert form_fields(call.kwargs["data"]) == {
        "file_type": ("pdf", None),
        "file_name": ("report.pdf", None),
        "file": (b"%PDF-1.7 ...", "report.pdf"),
    }
    m.post(f"{BASE}{FILES}", payload={"code": 0, "data": {}})
    with pytest.raises(ValueError, match="file_key"):
        await upload_file(client, b"x", "a.txt")


async def test_uploads_have_their_own_longer_timeout(client, m):
    # The session's 10 s suit JSON calls; a 30 MB upload gets its own per-request timeout.
    m.post(f"{BASE}{FILES}", payload=FILE_KEY)
    m.post(f"{BASE}/open-apis/im/v1/images", payload={"code": 0, "data": {"image_key": "img_v2_k"}})
    m.post(SEND_RE, payload=SENT, repeat=True)
    await send_file(client, TO_GROUP, b"%PDF-1.7", "report.pdf")
    await send_file(client, TO_GROUP, PNG, "graph.png")
    [upload] = calls(m, "POST", FILES)
    assert upload.kwargs["timeout"] == aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)
    assert TRANSFER_TIMEOUT > 10
    [image] = calls(m, "POST", "/open-apis/im/v1/images")
    assert image.kwargs["timeout"].total > 10
    # ... while other calls keep the session's timeout
    assert all("timeout" not in c.kwargs for c in calls(m, "POST", "/open-apis/im/v1/messages"))


async def test_a_retried_upload_keeps_its_timeout(m):
    m.post(f"{BASE}{FILES}", status=500, payload={"code": 1, "msg": "busy"})
    m.post(f"{BASE}{FILES}", payload=FILE_KEY)
    lark = LarkClient(app_id="cli_test", app_secret="s", base_url=BASE, sleep=FakeTime().sleep)
    await lark.start()
    try:
        assert await upload_file(lark, b"%PDF-1.7", "report.pdf") == "file_k"
    finally:
        await lark.close()
    timeouts = [c.kwargs["timeout"] for c in calls(m, "POST", FILES)]
    assert timeouts == [aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)] * 2


async def test_images_upload_to_images_and_send_an_image_message(client, m):
    m.post(f"{BASE}/open-apis/im/v1/images", payload={"code": 0, "data": {"image_key": "img_v2_k"}})
    m.post(SEND_RE, payload=SENT)
    assert await send_file(client, TO_GROUP, PNG, "graph.png", None) == {"message_id": "om_sent"}
    [upload] = calls(m, "POST", "/open-apis/im/v1/images")
    assert form_fields(upload.kwargs["data"]) == {
        "image_type": ("message", None),
        "image": (PNG, "graph.png"),
    }
    assert sent(m) == ("image", {"image_key": "img_v2_k"})
    [call] = calls(m, "POST", "/open-apis/im/v1/messages")
    assert call.kwargs["params"] == {"receive_id_type": "chat_id"}


@pytest.mark.parametrize(
    ("name", "stream_type", "feishu_type", "msg_type"),
    [
        ("report.pdf", "application/pdf", "pdf", "file"),
        ("notes.docx", None, "doc", "file"),
        ("sheet.XLSX", None, "xls", "file"),
        ("deck.pptx", None, "ppt", "file"),
        ("build.log", "text/plain", "stream", "file"),
        ("drawing.svg", "image/svg+xml", "stream", "file"),  # not an image Feishu accepts
        ("demo.mp4", "video/mp4", "mp4", "media"),
        ("voice.opus", "audio/ogg", "opus", "audio"),
    ],
)
async def test_other_files_upload_to_files_with_their_type(
    client, m, name, stream_type, feishu_type, msg_type
):
    m.post(f"{BASE}{FILES}", payload=FILE_KEY)
    m.post(SEND_RE, payload=SENT)
    await send_file(client, TO_GROUP, b"data", name, stream_type)
    [upload] = calls(m, "POST", FILES)
    fields = form_fields(upload.kwargs["data"])
    assert fields["file_type"] == (feishu_type, None)
    assert fields["file"] == (b"data", name)
    assert sent(m) == (msg_type, {"file_key": "file_k"})


async def test_an_image_over_ten_megabytes_goes_as_a_file(client, m):
    m.post(f"{BASE}{FILES}", payload=FILE_KEY)
    m.post(SEND_RE, payload=SENT)
    await send_file(client, TO_GROUP, PNG + b"\x00" * (10 * 1024 * 1024), "huge.png", None)
    assert calls(m, "POST", "/open-apis/im/v1/images") == []
    assert sent(m) == ("file", {"file_key": "file_k"})


async def test_a_reply_target_replies_in_the_thread(client, m):
    m.post(f"{BASE}{FILES}", payload=FILE_KEY)
    m.post(f"{BASE}/open-apis/im/v1/messages/om_question/reply", payload=SENT)
    target = Target(GROUP, "chat_id", GROUP, reply_to="om_question", reply_in_thread=True)
    await send_file(client, target, b"x", "a.txt")
    [reply] = calls(m, "POST", "/open-apis/im/v1/messages/om_question/reply")
    assert reply.kwargs["json"]["msg_type"] == "file"
    assert reply.kwargs["json"]["reply_in_thread"] is True


async def test_empty_and_oversized_files_are_refused_before_any_call(client, m):
    with pytest.raises(ValueError, match="30 MB"):
        await upload_file(client, b"", "empty.txt")
    with pytest.raises(ValueError, match="30 MB"):
        await upload_file(client, b"x" * (MAX_FILE_BYTES + 1), "big.bin")
    assert [url.path for (_, url) in m.requests] == []


def test_file_types_by_extension_and_images_by_type():
    names = ("a.PDF", "b", "c.tar.gz", "d.doc")
    assert [file_type(name) for name in names] == ["pdf", "stream", "stream", "doc"]
    assert is_image("graph.png", None)
    assert is_image("upload", "image/JPEG; q=1")  # the stream's type wins over the name
    assert not is_image("drawing.svg", None)
    assert not is_image("graph.png", "application/octet-stream")


# ----- Errbot streams: send_stream_request ------------------------------------------------------


def wait_until_done(stream: Stream) -> None:
    for _ in range(500):
        if stream.status not in (STREAM_WAITING_TO_START, STREAM_TRANSFER_IN_PROGRESS):
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"stream stuck in {stream.status}")


def test_send_stream_request_returns_at_once_and_uploads_on_the_loop(connected, loop):
    fake: FakeOpenAPI = connected.client
    gate = fake.hold("POST", FILES)
    fsource = io.BytesIO(b"%PDF-1.7")
    fsource.name = "/tmp/reports/weekly.pdf"  # type: ignore[attr-defined]
    stream = connected.send_stream_request(LarkRoom(GROUP), fsource)
    assert stream.status in (STREAM_WAITING_TO_START, STREAM_TRANSFER_IN_PROGRESS)
    assert fake.messages() == []
    loop.call_soon_threadsafe(gate.set)
    wait_until_done(stream)
    assert stream.status == STREAM_SUCCESSFULLY_TRANSFERED
    assert stream.transfered == 8
    assert (stream.name, stream.stream_type) == ("weekly.pdf", "application/pdf")
    [upload] = [call for call in fake.calls if call.path == FILES]
    assert upload.form == {"file_type": "pdf", "file_name": "weekly.pdf", "file": b"%PDF-1.7"}
    assert upload.thread == "lark-loop"
    [message] = fake.messages()
    assert (message.json["receive_id"], message.params) == (GROUP, {"receive_id_type": "chat_id"})
    assert (message.json["msg_type"], message.content) == ("file", {"file_key": "file_1"})


def test_an_image_stream_is_an_image_message(connected):
    stream = connected.send_stream_request(LarkPerson(ALICE), io.BytesIO(PNG), "graph.png")
    wait_until_done(stream)
    assert stream.status == STREAM_SUCCESSFULLY_TRANSFERED
    [message] = connected.client.messages()
    assert (message.json["msg_type"], message.content) == ("image", {"image_key": "img_1"})
    assert message.params == {"receive_id_type": "open_id"}


def test_a_failed_upload_ends_the_stream_in_error(connected, caplog):
    fake: FakeOpenAPI = connected.client
    fake.on("POST", FILES, lambda _: (400, {"code": 234006, "msg": "file too large"}))
    caplog.set_level(logging.ERROR, logger="lark_cards")
    stream = connected.send_stream_request(LarkPerson(ALICE), io.BytesIO(b"x"), "a.bin")
    wait_until_done(stream)
    assert stream.status == STREAM_ERROR
    assert any("234006" in record.getMessage() for record in caplog.records)
    empty = connected.send_stream_request(LarkPerson(ALICE), io.BytesIO(b""), "empty.txt")
    wait_until_done(empty)
    assert empty.status == STREAM_ERROR
    assert len([call for call in fake.calls if call.path == FILES]) == 1  # not for the empty one
    assert fake.messages() == []


def test_a_stream_that_times_out_cancels_the_send(connected):
    started, cancelled = threading.Event(), threading.Event()

    async def never_done(call: Any) -> Any:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fake: FakeOpenAPI = connected.client
    fake.on("POST", FILES, never_done)
    outbox = Outbox(connected.bridge, connected.connected_delivery, upload_timeout=0.2)
    stream = outbox.send_stream(LarkPerson(ALICE), io.BytesIO(b"x"), "a.bin")
    wait_until_done(stream)
    assert stream.status == STREAM_ERROR
    assert started.is_set()
    assert cancelled.wait(5)  # the file does not arrive after the stream said "error"
    outbox.send_reply(Message("next", to=LarkPerson(ALICE)))  # the chat's turn was let go
    [message] = fake.wait_messages(1)
    assert message.json["msg_type"] != "file"
    outbox.close()


def test_a_stream_can_answer_under_a_question_and_fails_at_once_when_it_cannot_go(connected):
    question = Message("!report", extras={"message_id": "om_q", "chat_id": GROUP})
    stream = connected.outbox.send_stream(
        LarkRoom(GROUP), io.BytesIO(b"x"), "r.csv", in_reply_to=question
    )
    wait_until_done(stream)
    [reply] = connected.client.messages()
    assert reply.path == "/open-apis/im/v1/messages/om_q/reply"
    with pytest.raises(ValueError, match="not a Feishu identifier"):
        connected.send_stream_request("alice", io.BytesIO(b"x"), "r.csv")
    connected.bridge.detach()
    unsent = connected.send_stream_request(LarkRoom(GROUP), io.BytesIO(b"x"), "r.csv")
    assert unsent.status == STREAM_ERROR  # not connected: told at once


def test_a_stream_through_the_real_client_sends_a_file_message(loop, m):
    m.post(f"{BASE}{FILES}", payload=FILE_KEY)
    m.post(SEND_RE, payload=SENT)
    client = LarkClient(app_id="cli_test", app_secret="s", base_url=BASE)
    asyncio.run_coroutine_threadsafe(client.start(), loop).result(5)
    bridge = LoopBridge()
    bridge.attach(loop)
    delivery = Delivery(client, RenderOptions())
    outbox = Outbox(bridge, lambda: delivery)
    stream = outbox.send_stream(LarkPerson(ALICE), io.BytesIO(b"a,b\n1,2\n"), "t.csv")
    wait_until_done(stream)
    assert stream.status == STREAM_SUCCESSFULLY_TRANSFERED
    [upload] = calls(m, "POST", FILES)
    assert form_fields(upload.kwargs["data"])["file"] == (b"a,b\n1,2\n", "t.csv")
    assert sent(m) == ("file", {"file_key": "file_k"})
    [call] = calls(m, "POST", "/open-apis/im/v1/messages")
    assert call.kwargs["params"] == {"receive_id_type": "open_id"}
    asyncio.run_coroutine_threadsafe(client.close(), loop).result(5)
    outbox.close()


# ----- downloads ------------------------------------------------------------------------------


RESOURCE_PATH = f"/open-apis/im/v1/messages/{MSG}/resources/file_k"
RESOURCE = f"{BASE}{RESOURCE_PATH}"


async def test_download_resource_returns_the_bytes(client, m):
    m.get(f"{RESOURCE}?type=file", body=b"%PDF-1.7 bytes", content_type="application/pdf")
    assert await download_resource(client, MSG, "file_k", "file") == b"%PDF-1.7 bytes"
    [call] = calls(m, "GET", RESOURCE_PATH)
    assert call.kwargs["params"] == {"type": "file"}
    assert call.kwargs["headers"] == {"Authorization": "Bearer t-1"}
    assert call.kwargs["timeout"] == aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)


async def test_download_errors_carry_feishu_codes_but_json_files_are_data(client, m):
    m.get(f"{RESOURCE}?type=file", status=400, payload={"code": 234003, "msg": "File not in msg."})
    with pytest.raises(LarkAPIError, match="234003"):
        await download_resource(client, MSG, "file_k", "file")
    m.get(f"{RESOURCE}?type=file", payload={"code": 234043, "msg": "unsupported message"})
    with pytest.raises(LarkAPIError, match="234043"):
        await download_resource(client, MSG, "file_k", "file")
    m.get(f"{RESOURCE}?type=file", payload={"name": "config", "debug": True})
    data = await download_resource(client, MSG, "file_k", "file")
    assert json.loads(data) == {"name": "config", "debug": True}


async def test_download_limits(client, m):
    m.get(f"{RESOURCE}?type=image", body=b"x" * 11, content_type="image/png")
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        await download_resource(client, MSG, "file_k", "image", max_bytes=10)
    with pytest.raises(ValueError, match="kind"):
        await download_resource(client, MSG, "file_k", "sticker")


@pytest.mark.parametrize("token_status", [200, 400])
async def test_a_download_is_retried_after_a_5xx_and_an_invalid_token(token_status):
    time = FakeTime()
    fake = FakeOpenAPI(clock=time.clock, sleep=time.sleep)
    invalid = {"code": ACCESS_TOKEN_INVALID, "msg": "Invalid access token for authorization."}
    answers = iter([(503, {"code": 1, "msg": "busy"}), (token_status, invalid), b"%PDF-1.7"])
    fake.on("GET", RESOURCE_PATH, lambda _: next(answers))
    assert await download_resource(fake, MSG, "file_k", "file") == b"%PDF-1.7"
    paths = [call.path.rsplit("/", 1)[-1] for call in fake.calls]
    assert paths == ["internal", "file_k", "file_k", "internal", "file_k"]  # token fetched anew
    assert time.sleeps == [1.0]  # one backoff, for the 5xx; a new token is tried at once


def test_plugins_download_attachments_through_the_backend(connected):
    fake: FakeOpenAPI = connected.client
    fake.on("GET", f"/open-apis/im/v1/messages/{MSG}/resources/*", lambda call: call.path.encode())
    attachments = [{"key": "img_k", "type": "image"}, {"key": "file_k", "type": "file"}]
    msg = Message("see attached", extras={"message_id": MSG, "attachments": attachments})
    assert connected.download_file(msg).endswith(b"/resources/img_k")
    assert connected.download_file(msg, attachments[1]) == RESOURCE_PATH.encode()
    assert [call.params for call in fake.calls[1:]] == [{"type": "image"}, {"type": "file"}]
    with pytest.raises(ValueError, match="no attachment"):
        connected.download_file(Message("text only", extras={"message_id": MSG}))


async def trickled(chunks: list[bytes], max_bytes: int) -> bytes:
    """``read_limited`` of a body arriving in network chunks, one per loop turn, as from a
    real server (aioresponses hands a body over at once)."""
    loop = asyncio.get_running_loop()
    content = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=loop)

    async def arrive() -> None:
        for chunk in chunks:
            content.feed_data(chunk)
            await asyncio.sleep(0)
        content.feed_eof()

    arriving = asyncio.create_task(arrive())
    try:
        return await read_limited(content, max_bytes)
    finally:
        await arriving


async def test_a_body_arriving_in_several_chunks_is_read_whole_up_to_one_byte_past_the_limit():
    body = bytes(range(256)) * 40
    chunks = [body[:1000], body[1000:5000], body[5000:9000], body[9000:]]
    assert await trickled(chunks, len(body)) == body
    # One byte past the limit tells request_bytes "too big" (see test_download_limits).
    assert await trickled([b"x" * 6, b"x" * 6, b"x" * 6], 10) == b"x" * 11
    assert await trickled([b"x" * 5, b"x" * 5], 10) == b"x" * 10
