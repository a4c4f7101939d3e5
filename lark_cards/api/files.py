"""Files and message resources: upload a file to send, download one a user sent.

- Upload: ``POST /open-apis/im/v1/files``
  (https://open.feishu.cn/document/server-docs/im-v1/file/create): multipart ``file_type`` =
  opus | mp4 | pdf | doc | xls | ppt | stream, ``file_name``, ``file``; 1 B to 30 MB →
  ``data.file_key``. The message that carries it is ``file`` (``audio`` for opus, ``media``
  for mp4) with content ``{"file_key": …}``. Images go through ``api.images`` instead (§4.5).
- Download: ``GET /open-apis/im/v1/messages/:message_id/resources/:file_key?type=image|file``
  (https://open.feishu.cn/document/server-docs/im-v1/message/get — "获取消息中的资源文件"):
  up to 100 MB, a binary body, errors as JSON.
"""

from __future__ import annotations

import mimetypes
import os
from urllib.parse import quote

import aiohttp

from lark_cards.api.client import LarkClient

FILES_PATH = "/open-apis/im/v1/files"
MAX_FILE_BYTES = 30 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
# One upload or download attempt (the client's own timeout, 10 s, is meant for JSON calls):
# 30 MB in two minutes needs ~2 Mbit/s.
TRANSFER_TIMEOUT = 120.0
# A download is waited for by a plugin thread: retries may start within two minutes, so with
# one last slow attempt the answer comes within DOWNLOAD_DEADLINE + TRANSFER_TIMEOUT.
DOWNLOAD_DEADLINE = 120.0

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
MESSAGE_TYPES = {"mp4": "media", "opus": "audio"}  # file_type → msg_type when not "file"
# §4.5: JPEG, PNG, WEBP, GIF, TIFF, BMP, ICO — anything else goes as a file.
_IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp"}
    | {"image/x-icon", "image/vnd.microsoft.icon", "image/x-ms-bmp"}
)


def file_type(name: str) -> str:
    """Feishu's ``file_type`` for a file name; ``stream`` when no other type fits."""
    return _FILE_TYPES.get(os.path.splitext(name)[1].lower(), "stream")


def is_image(name: str, stream_type: str | None) -> bool:
    """Whether Feishu takes this file as an image (by its MIME type, else its name)."""
    mime = stream_type or mimetypes.guess_type(name)[0] or ""
    return mime.split(";")[0].strip().lower() in _IMAGE_TYPES


async def upload_file(client: LarkClient, data: bytes, name: str, kind: str | None = None) -> str:
    """Upload a non-image file; returns its ``file_key``."""
    if not data or len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file of {len(data)} bytes (Feishu takes 1 B to 30 MB)")

    def form() -> aiohttp.FormData:
        made = aiohttp.FormData()
        made.add_field("file_type", kind or file_type(name))
        made.add_field("file_name", name)
        made.add_field("file", data, filename=name, content_type="application/octet-stream")
        return made

    timeout = aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT)
    body = await client.request(
        "POST", FILES_PATH, data=form, timeout=timeout, deadline=client.send_deadline
    )
    key = (body.get("data") or {}).get("file_key")
    if not isinstance(key, str) or not key:
        raise ValueError("upload answered without a file_key")
    return key


async def download_resource(
    client: LarkClient,
    message_id: str,
    file_key: str,
    kind: str,
    *,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
) -> bytes:
    """The bytes of an image or file in a received message (``kind`` "image" or "file")."""
    if kind not in ("image", "file"):
        raise ValueError("kind must be 'image' or 'file'")
    path = (
        f"/open-apis/im/v1/messages/{quote(message_id, safe='')}"
        f"/resources/{quote(file_key, safe='')}"
    )
    return await client.request_bytes(
        "GET",
        path,
        params={"type": kind},
        max_bytes=max_bytes,
        timeout=aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT),
        deadline=DOWNLOAD_DEADLINE,
    )
