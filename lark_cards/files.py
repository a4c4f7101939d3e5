"""Files and images, out and in: Errbot's ``send_stream_request`` and attachments of incoming
messages.

Out: images go through ``im/v1/images`` (reference/feishu-platform.md §4.5, ≤ 10 MB) and are
sent as an ``image`` message; anything else through ``POST /open-apis/im/v1/files``
(open.feishu.cn/document/server-docs/im-v1/file/create: multipart ``file_type`` = opus | mp4 |
pdf | doc | xls | ppt | stream, ``file_name``, ``file``; ≤ 30 MB, not empty; → ``data.file_key``)
and sent as ``file`` (``audio`` for opus, ``media`` for mp4 — the message content is
``{"file_key": …}``; a video cover ``image_key`` is optional per third-party senders, not an
official text). Errbot hands us a blocking file object from a plugin thread, so
``StreamSender`` reads it on its own worker thread and only the upload runs on the loop.

In: ``incoming_file_extras`` lists the keys of image/file/audio/media/post messages (received
content shapes: feishu-platform.md §1.4); ``download_resource`` fetches one with
``GET /open-apis/im/v1/messages/:message_id/resources/:file_key?type=image|file``
(open.feishu.cn/document/server-docs/im-v1/message/get — "获取消息中的资源文件", ≤ 100 MB,
binary body, errors as JSON).
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import mimetypes
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, BinaryIO
from urllib.parse import quote

import aiohttp
from errbot.backends.base import Identifier, Message, Stream

from lark_cards.api import LarkAPIError, LarkClient, decode_response
from lark_cards.api.images import MAX_IMAGE_BYTES, ImageUploader
from lark_cards.outbound import Target, target_of

log = logging.getLogger(__name__)

FILES_PATH = "/open-apis/im/v1/files"
MAX_FILE_BYTES = 30 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
# One upload attempt (the client's own timeout, 10 s, is meant for JSON calls): 30 MB in two
# minutes needs ~2 Mbit/s. UPLOAD_TIMEOUT is how long a stream waits for the whole send.
UPLOAD_REQUEST_TIMEOUT = 120.0
UPLOAD_TIMEOUT = 300.0
DOWNLOAD_TIMEOUT = 120.0

_FILE_TYPES = {
    ".pdf": "pdf",
    ".doc": "doc",
    ".docx": "doc",
    ".xls": "xls",
    ".xlsx": "xls",
    ".ppt": "ppt",
    ".pptx": "ppt",
    ".mp4": "mp4",
    ".opus": "opus",
}
_MESSAGE_TYPES = {"mp4": "media", "opus": "audio"}
# §4.5: JPEG, PNG, WEBP, GIF, TIFF, BMP, ICO — anything else goes as a file.
_IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp"}
    | {"image/x-icon", "image/vnd.microsoft.icon", "image/x-ms-bmp"}
)


def file_type(name: str) -> str:
    """Feishu's ``file_type`` for a file name; ``stream`` when no other type fits."""
    return _FILE_TYPES.get(os.path.splitext(name)[1].lower(), "stream")


def is_image(name: str, stream_type: str | None) -> bool:
    mime = stream_type or mimetypes.guess_type(name)[0] or ""
    return mime.split(";")[0].strip().lower() in _IMAGE_TYPES


async def upload_file(client: LarkClient, data: bytes, name: str, kind: str | None = None) -> str:
    """Upload a non-image file; returns its ``file_key``."""
    if not data or len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file of {len(data)} bytes (Feishu takes 1 B to 30 MB)")
    form = aiohttp.FormData()
    form.add_field("file_type", kind or file_type(name))
    form.add_field("file_name", name)
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    body = await client.request(
        "POST", FILES_PATH, data=form, timeout=aiohttp.ClientTimeout(total=UPLOAD_REQUEST_TIMEOUT)
    )
    key = (body.get("data") or {}).get("file_key")
    if not isinstance(key, str) or not key:
        raise ValueError("upload answered without a file_key")
    return key


async def send_file(
    client: LarkClient, target: Target, data: bytes, name: str, stream_type: str | None = None
) -> dict[str, Any]:
    """Upload ``data`` and send it to ``target``; returns Feishu's message ``data``."""
    if is_image(name, stream_type) and len(data) <= MAX_IMAGE_BYTES:
        key = await ImageUploader(client).upload(data, name)
        msg_type, content = "image", {"image_key": key}
    else:
        kind = file_type(name)
        key = await upload_file(client, data, name, kind)
        msg_type, content = _MESSAGE_TYPES.get(kind, "file"), {"file_key": key}
    if target.reply_to is not None:
        return await client.reply_message(
            target.reply_to,
            msg_type,
            content,
            chat_id=target.chat_key,
            reply_in_thread=target.reply_in_thread,
        )
    return await client.send_message(
        target.receive_id, msg_type, content, receive_id_type=target.receive_id_type
    )


SendFile = Callable[[Target, bytes, str, "str | None"], Coroutine[Any, Any, Any]]
Submit = Callable[[Coroutine[Any, Any, Any]], "concurrent.futures.Future[Any]"]


class StreamSender:
    """Errbot's ``send_stream_request`` contract, as slackv3 and telegram implement it: return
    a ``Stream`` at once, transfer in a worker, move the stream through accept → success or
    error. ``submit`` runs a coroutine on the backend loop (``backend._submit``); ``send``
    does the upload there (``send_file`` with the connected client)."""

    def __init__(
        self, submit: Submit, send: SendFile, *, timeout: float = UPLOAD_TIMEOUT, workers: int = 2
    ) -> None:
        self._submit = submit
        self._send = send
        self._timeout = timeout
        self._executor = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="lark-upload"
        )

    def send_stream_request(
        self,
        identifier: Identifier,
        fsource: BinaryIO,
        name: str | None = None,
        size: int | None = None,
        stream_type: str | None = None,
        *,
        in_reply_to: Message | None = None,
    ) -> Stream:
        """Start sending ``fsource`` to a person or chat (under ``in_reply_to`` if given)."""
        name = name or os.path.basename(str(getattr(fsource, "name", "") or "")) or "file"
        stream_type = stream_type or mimetypes.guess_type(name)[0]
        target = target_of(Message(to=identifier, parent=in_reply_to))  # bad identifier: now
        stream = Stream(identifier, fsource, name, size, stream_type)
        self._executor.submit(self._transfer, stream, target)
        return stream

    def _transfer(self, stream: Stream, target: Target) -> None:
        try:
            stream.accept()
            data = stream.read(MAX_FILE_BYTES + 1)
            if not data or len(data) > MAX_FILE_BYTES:
                raise ValueError(f"{len(data)} bytes: Feishu takes 1 B to 30 MB")
            stream.ack_data(len(data))
            future = self._submit(self._send(target, data, stream.name, stream.stream_type))
            try:
                future.result(self._timeout)
            except TimeoutError:
                future.cancel()  # the stream says "error": the file must not arrive later
                raise
        except Exception as error:  # every failure ends the stream in "error", never hangs
            log.error("Sending %s to %s failed: %s", stream.name, stream.identifier, error)
            stream.error(str(error) or type(error).__name__)
        else:
            stream.success()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def incoming_file_extras(message_type: str, content: Any) -> dict[str, Any]:
    """Attachment keys of a received message for ``msg.extras``; ``{}`` when it has none.

    Flat keys (``image_key``, ``file_key``, ``file_name``, ``duration``) plus ``attachments``:
    ``[{"key", "type" ("image" | "file", the download ``type``), "name"}]``.
    """
    try:
        body = json.loads(content) if isinstance(content, str) else content
    except ValueError:
        return {}
    if not isinstance(body, Mapping):
        return {}
    if message_type == "post":
        keys = [node["image_key"] for node in _post_nodes(body) if _is_str(node.get("image_key"))]
        if not keys:
            return {}
        return {"image_keys": keys, "attachments": [_attachment(k, "image") for k in keys]}
    if message_type not in ("image", "file", "audio", "media"):
        return {}
    extras = {
        field: body[field]
        for field in ("image_key", "file_key", "file_name", "duration")
        if field in body
    }
    attachments = []
    if _is_str(body.get("file_key")):
        attachments.append(_attachment(body["file_key"], "file", body.get("file_name")))
    if _is_str(body.get("image_key")):
        attachments.append(_attachment(body["image_key"], "image"))
    return {**extras, "attachments": attachments} if attachments else {}


def _post_nodes(post: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = post.get("content")
    return [
        node
        for row in (rows if isinstance(rows, list) else ())
        if isinstance(row, list)
        for node in row
        if isinstance(node, Mapping) and node.get("tag") in ("img", "media")
    ]


def _attachment(key: str, kind: str, name: Any = None) -> dict[str, Any]:
    return {"key": key, "type": kind, "name": name if _is_str(name) else None}


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


async def download_resource(
    client: LarkClient,
    message_id: str,
    file_key: str,
    kind: str,
    *,
    base_url: str,
    session: aiohttp.ClientSession | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> bytes:
    """The bytes of an image or file in a received message (``kind`` "image" or "file").

    The body is binary, which ``LarkClient.request`` (JSON only) cannot return, so this makes
    the one GET itself with the client's cached tenant token. ``base_url`` is the same
    Open Platform base the client uses (``settings.base_url``).
    """
    if kind not in ("image", "file"):
        raise ValueError("kind must be 'image' or 'file'")
    token = await client.tenant_token()
    url = (
        f"{base_url.rstrip('/')}/open-apis/im/v1/messages/{quote(message_id, safe='')}"
        f"/resources/{quote(file_key, safe='')}"
    )
    own = session is None
    http = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT))
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(url, params={"type": kind}, headers=headers) as resp:
            # read(n) returns only what is buffered, so a big body would come back cut short.
            body = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    break
            data = bytes(body)
            status, resp_headers = resp.status, resp.headers
    finally:
        if own:
            await http.close()
    if status >= 400 or _is_error_body(resp_headers, data):
        decode_response(status, resp_headers, data)  # raises LarkAPIError with Feishu's code
        raise LarkAPIError(-1, f"download failed (HTTP {status})", http_status=status)
    if len(data) > max_bytes:
        raise ValueError(f"resource larger than {max_bytes} bytes")
    return data


def _is_error_body(headers: Mapping[str, str], data: bytes) -> bool:
    """A JSON ``{"code": ≠0, "msg": …}`` body is an error even with HTTP 200; a JSON *file*
    (no such code) is data."""
    if not headers.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] != 0


def incoming_stream(
    identifier: Identifier, data: bytes, name: str | None, stream_type: str | None = None
) -> Stream:
    """A finished download as the ``Stream`` Errbot's ``callback_stream`` hands to plugins."""
    stream_type = stream_type or (mimetypes.guess_type(name)[0] if name else None)
    return Stream(identifier, io.BytesIO(data), name, len(data), stream_type)
