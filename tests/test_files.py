"""Files and images: multipart uploads as Feishu expects, Errbot streams, incoming keys."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses
from api_fakes import BASE, calls
from errbot.backends.base import (
    STREAM_ERROR,
    STREAM_SUCCESSFULLY_TRANSFERED,
    STREAM_TRANSFER_IN_PROGRESS,
    Message,
)

from lark_cards.api import LarkAPIError, LarkClient
from lark_cards.events import parse_callback
from lark_cards.files import (
    MAX_FILE_BYTES,
    UPLOAD_REQUEST_TIMEOUT,
    StreamSender,
    download_resource,
    file_type,
    incoming_file_extras,
    incoming_stream,
    send_file,
    upload_file,
)
from lark_cards.identifiers import LarkPerson, LarkRoom
from lark_cards.outbound import Target

GROUP = "oc_a0553eda9014c201e6969b478895c230"
ALICE = "ou_alice000000000000000000000000000"
MSG = "om_file000000000000000000000000001"
FIXTURES = Path(__file__).parent / "fixtures" / "events"
SEND_RE = re.compile(rf"^{re.escape(BASE)}/open-apis/im/v1/messages\?receive_id_type=")
SENT = {"code": 0, "msg": "success", "data": {"message_id": "om_sent"}}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


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


TO_GROUP = Target(receive_id=GROUP, receive_id_type="chat_id", chat_key=GROUP)


# ----- uploads --------------------------------------------------------------------------------


async def test_upload_file_is_the_multipart_form_feishu_documents(client, m):
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_v2_k"}})
    assert await upload_file(client, b"%PDF-1.7 ...", "report.pdf") == "file_v2_k"
    [call] = calls(m, "POST", "/open-apis/im/v1/files")
    assert form_fields(call.kwargs["data"]) == {
        "file_type": ("pdf", None),
        "file_name": ("report.pdf", None),
        "file": (b"%PDF-1.7 ...", "report.pdf"),
    }


async def test_uploads_have_their_own_longer_timeout(client, m):
    # The session's 10 s suit JSON calls; a 30 MB upload gets its own per-request timeout.
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_v2_k"}})
    m.post(f"{BASE}/open-apis/im/v1/images", payload={"code": 0, "data": {"image_key": "img_v2_k"}})
    m.post(SEND_RE, payload=SENT, repeat=True)
    await send_file(client, TO_GROUP, b"%PDF-1.7", "report.pdf")
    await send_file(client, TO_GROUP, PNG, "graph.png")
    [upload] = calls(m, "POST", "/open-apis/im/v1/files")
    assert upload.kwargs["timeout"] == aiohttp.ClientTimeout(total=UPLOAD_REQUEST_TIMEOUT)
    assert UPLOAD_REQUEST_TIMEOUT > 10
    [image] = calls(m, "POST", "/open-apis/im/v1/images")
    assert image.kwargs["timeout"].total > 10
    # ... while other calls keep the session's timeout
    assert all("timeout" not in c.kwargs for c in calls(m, "POST", "/open-apis/im/v1/messages"))


async def test_a_retried_upload_keeps_its_timeout(m):
    m.post(f"{BASE}/open-apis/im/v1/files", status=500, payload={"code": 1, "msg": "busy"})
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_v2_k"}})

    async def no_sleep(seconds: float) -> None:
        pass

    lark = LarkClient(app_id="cli_test", app_secret="s", base_url=BASE, sleep=no_sleep)
    await lark.start()
    try:
        assert await upload_file(lark, b"%PDF-1.7", "report.pdf") == "file_v2_k"
    finally:
        await lark.close()
    timeouts = [c.kwargs["timeout"] for c in calls(m, "POST", "/open-apis/im/v1/files")]
    assert timeouts == [aiohttp.ClientTimeout(total=UPLOAD_REQUEST_TIMEOUT)] * 2


async def test_images_upload_to_images_and_send_an_image_message(client, m):
    m.post(f"{BASE}/open-apis/im/v1/images", payload={"code": 0, "data": {"image_key": "img_v2_k"}})
    m.post(SEND_RE, payload=SENT)
    data = await send_file(client, TO_GROUP, PNG, "graph.png", None)
    assert data == {"message_id": "om_sent"}
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
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_k"}})
    m.post(SEND_RE, payload=SENT)
    await send_file(client, TO_GROUP, b"data", name, stream_type)
    [upload] = calls(m, "POST", "/open-apis/im/v1/files")
    fields = form_fields(upload.kwargs["data"])
    assert fields["file_type"] == (feishu_type, None)
    assert fields["file"] == (b"data", name)
    assert sent(m) == (msg_type, {"file_key": "file_k"})


async def test_an_image_over_ten_megabytes_goes_as_a_file(client, m):
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_k"}})
    m.post(SEND_RE, payload=SENT)
    await send_file(client, TO_GROUP, PNG + b"\x00" * (10 * 1024 * 1024), "huge.png", None)
    assert calls(m, "POST", "/open-apis/im/v1/images") == []
    assert sent(m) == ("file", {"file_key": "file_k"})


async def test_a_reply_target_replies_in_the_thread(client, m):
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_k"}})
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


def test_file_types_by_extension():
    assert [file_type(n) for n in ("a.PDF", "b", "c.tar.gz", "d.doc")] == [
        "pdf",
        "stream",
        "stream",
        "doc",
    ]


# ----- Errbot streams -------------------------------------------------------------------------


class Recorder:
    """Stands in for ``send_file`` on the loop: records, optionally waits or fails."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[tuple[Target, bytes, str, str | None, str]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = fail

    async def __call__(self, target: Target, data: bytes, name: str, kind: str | None) -> None:
        await asyncio.to_thread(self.release.wait, 5)
        self.sent.append((target, data, name, kind, threading.current_thread().name))
        if self.fail is not None:
            raise self.fail


def sender_for(loop: asyncio.AbstractEventLoop, send: Any) -> StreamSender:
    return StreamSender(lambda coro: asyncio.run_coroutine_threadsafe(coro, loop), send)


def wait_until_done(stream: Any) -> None:
    for _ in range(500):
        if stream.status not in ("pending", STREAM_TRANSFER_IN_PROGRESS):
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"stream stuck in {stream.status}")


def test_send_stream_request_returns_at_once_and_uploads_on_the_loop(loop):
    send = Recorder()
    send.release.clear()
    streams = sender_for(loop, send)
    fsource = io.BytesIO(b"%PDF-1.7")
    fsource.name = "/tmp/reports/weekly.pdf"  # type: ignore[attr-defined]
    stream = streams.send_stream_request(LarkRoom(GROUP), fsource)
    assert stream.status in ("pending", STREAM_TRANSFER_IN_PROGRESS)
    assert send.sent == []
    send.release.set()
    wait_until_done(stream)
    assert stream.status == STREAM_SUCCESSFULLY_TRANSFERED
    assert stream.transfered == 8
    [(target, data, name, kind, thread)] = send.sent
    assert (target.receive_id, target.receive_id_type) == (GROUP, "chat_id")
    assert (data, name, kind, thread) == (b"%PDF-1.7", "weekly.pdf", "application/pdf", "lark-loop")
    streams.close()


def test_a_failed_upload_ends_the_stream_in_error(loop):
    streams = sender_for(loop, Recorder(fail=LarkAPIError(234006, "file too large")))
    stream = streams.send_stream_request(LarkPerson(ALICE), io.BytesIO(b"x"), "a.bin")
    wait_until_done(stream)
    assert stream.status == STREAM_ERROR
    assert "234006" in stream._reason
    empty = streams.send_stream_request(LarkPerson(ALICE), io.BytesIO(b""), "empty.txt")
    wait_until_done(empty)
    assert empty.status == STREAM_ERROR
    streams.close()


def test_a_stream_that_times_out_cancels_the_send(loop):
    started, cancelled = threading.Event(), threading.Event()

    async def never_done(*args: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    streams = StreamSender(
        lambda coro: asyncio.run_coroutine_threadsafe(coro, loop), never_done, timeout=0.2
    )
    stream = streams.send_stream_request(LarkPerson(ALICE), io.BytesIO(b"x"), "a.bin")
    wait_until_done(stream)
    assert stream.status == STREAM_ERROR
    assert started.is_set()
    assert cancelled.wait(5)  # the file does not arrive after the stream said "error"
    streams.close()


def test_a_stream_can_answer_under_a_question(loop):
    send = Recorder()
    streams = sender_for(loop, send)
    question = Message("!report", extras={"message_id": "om_q", "chat_id": GROUP})
    stream = streams.send_stream_request(
        LarkRoom(GROUP), io.BytesIO(b"x"), "r.csv", in_reply_to=question
    )
    wait_until_done(stream)
    assert send.sent[0][0].reply_to == "om_q"
    with pytest.raises(ValueError, match="not a Feishu identifier"):
        streams.send_stream_request("alice", io.BytesIO(b"x"), "r.csv")  # type: ignore[arg-type]
    streams.close()


def test_a_stream_through_the_real_client_sends_a_file_message(loop, m):
    m.post(f"{BASE}/open-apis/im/v1/files", payload={"code": 0, "data": {"file_key": "file_k"}})
    m.post(SEND_RE, payload=SENT)
    client = LarkClient(app_id="cli_test", app_secret="s", base_url=BASE)
    asyncio.run_coroutine_threadsafe(client.start(), loop).result(5)
    streams = sender_for(loop, lambda *args: send_file(client, *args))
    stream = streams.send_stream_request(LarkPerson(ALICE), io.BytesIO(b"a,b\n1,2\n"), "t.csv")
    wait_until_done(stream)
    assert stream.status == STREAM_SUCCESSFULLY_TRANSFERED
    assert sent(m) == ("file", {"file_key": "file_k"})
    [call] = calls(m, "POST", "/open-apis/im/v1/messages")
    assert call.kwargs["params"] == {"receive_id_type": "open_id"}
    asyncio.run_coroutine_threadsafe(client.close(), loop).result(5)
    streams.close()


# ----- incoming -------------------------------------------------------------------------------


def message_content(name: str) -> tuple[str, str]:
    envelope = parse_callback(json.loads((FIXTURES / f"{name}.json").read_text()))
    message = envelope.event["message"]
    return message["message_type"], message["content"]


def test_incoming_image_file_and_media_keys():
    assert incoming_file_extras(*message_content("group_image")) == {
        "image_key": "img_v2_041b28e3-5680-48c2-9af2-497ace79333g",
        "attachments": [
            {"key": "img_v2_041b28e3-5680-48c2-9af2-497ace79333g", "type": "image", "name": None}
        ],
    }
    extras = incoming_file_extras(*message_content("group_file"))
    assert extras["file_key"] == "file_v2_9a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5g"
    assert extras["file_name"] == "deploy-report.pdf"
    assert extras["attachments"][0]["type"] == "file"
    media = incoming_file_extras(*message_content("group_media"))
    assert [a["type"] for a in media["attachments"]] == ["file", "image"]
    assert media["duration"] == 2000


def test_incoming_post_images_and_messages_without_files():
    assert incoming_file_extras(*message_content("group_post"))["image_keys"] == [
        "img_v2_041b28e3-5680-48c2-9af2-497ace79333g"
    ]
    assert incoming_file_extras(*message_content("p2p_text")) == {}
    assert incoming_file_extras("image", "not json") == {}
    assert incoming_file_extras("sticker", '{"file_key": "x"}') == {}


RESOURCE = f"{BASE}/open-apis/im/v1/messages/{MSG}/resources/file_k"


async def test_download_resource_returns_the_bytes(client, m):
    m.get(f"{RESOURCE}?type=file", body=b"%PDF-1.7 bytes", content_type="application/pdf")
    data = await download_resource(client, MSG, "file_k", "file", base_url=BASE)
    assert data == b"%PDF-1.7 bytes"
    [call] = calls(m, "GET", f"/open-apis/im/v1/messages/{MSG}/resources/file_k")
    assert call.kwargs["params"] == {"type": "file"}
    assert call.kwargs["headers"] == {"Authorization": "Bearer t-1"}


async def test_download_errors_carry_feishu_codes_but_json_files_are_data(client, m):
    m.get(f"{RESOURCE}?type=file", status=400, payload={"code": 234003, "msg": "File not in msg."})
    with pytest.raises(LarkAPIError, match="234003"):
        await download_resource(client, MSG, "file_k", "file", base_url=BASE)
    m.get(f"{RESOURCE}?type=file", payload={"code": 234043, "msg": "unsupported message"})
    with pytest.raises(LarkAPIError, match="234043"):
        await download_resource(client, MSG, "file_k", "file", base_url=BASE)
    m.get(f"{RESOURCE}?type=file", payload={"name": "config", "debug": True})
    data = await download_resource(client, MSG, "file_k", "file", base_url=BASE)
    assert json.loads(data) == {"name": "config", "debug": True}


async def test_download_limits(client, m):
    m.get(f"{RESOURCE}?type=image", body=b"x" * 11, content_type="image/png")
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        await download_resource(client, MSG, "file_k", "image", base_url=BASE, max_bytes=10)
    with pytest.raises(ValueError, match="kind"):
        await download_resource(client, MSG, "file_k", "sticker", base_url=BASE)


class TrickleSession:
    """An in-memory stand-in for the download session whose body arrives in several network
    chunks through aiohttp's own StreamReader, as from a real server (aioresponses hands the
    whole body over at once, so ``read(n)`` would seem to return all of it)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    @contextlib.asynccontextmanager
    async def get(self, url: str, **kwargs: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        content = aiohttp.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=loop)
        content.feed_data(self.chunks[0])

        def deliver(rest: list[bytes]) -> None:
            if rest:
                content.feed_data(rest[0])
                loop.call_soon(deliver, rest[1:])
            else:
                content.feed_eof()

        loop.call_soon(deliver, self.chunks[1:])
        headers = {"Content-Type": "application/octet-stream"}
        yield SimpleNamespace(status=200, headers=headers, content=content)


async def test_a_download_arriving_in_several_chunks_is_returned_whole(client):
    body = bytes(range(256)) * 40
    chunks = [body[:1000], body[1000:5000], body[5000:9000], body[9000:]]
    session = TrickleSession(chunks)
    fake: Any = session
    data = await download_resource(client, MSG, "file_k", "file", base_url=BASE, session=fake)
    assert data == body


async def test_a_download_over_the_limit_in_later_chunks_is_refused(client):
    def get(session: Any, max_bytes: int = 10) -> Any:
        return download_resource(
            client, MSG, "file_k", "file", base_url=BASE, session=session, max_bytes=max_bytes
        )

    with pytest.raises(ValueError, match="larger than 10 bytes"):
        await get(TrickleSession([b"x" * 6, b"x" * 6, b"x" * 6]))  # 18 bytes, the first 6 fit
    assert await get(TrickleSession([b"x" * 5, b"x" * 5])) == b"x" * 10


def test_incoming_stream_is_readable_by_plugins():
    stream = incoming_stream(LarkPerson(ALICE), b"hello", "hi.txt")
    assert (stream.name, stream.size, stream.stream_type) == ("hi.txt", 5, "text/plain")
    assert stream.read() == b"hello"
