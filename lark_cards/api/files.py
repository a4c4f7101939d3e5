"""Files and message resources: upload a file to send, download one a user sent.

- Upload: ``POST /open-apis/im/v1/files``
  (https://open.feishu.cn/document/server-docs/im-v1/file/create): multipart ``file_type`` =
  opus | mp4 | pdf | doc | xls | ppt | stream, ``file_name``, ``file``; 1 B to 30 MB →
  ``data.file_key``. The message that carries it is ``file`` (``audio`` for opus, ``media``
  for mp4) with content ``{"file_key": …}``. Images go through ``api.images`` instead (§4.5).
  For opus and mp4 the form also carries ``duration`` (ms): the doc makes it optional but
  "不填充时无法显示具体时长" — without it the client cannot show the length. It is read from
  the file itself (:func:`media_duration`: the mp4 ``mvhd`` box, the Ogg Opus granule
  position), so nobody has to pass it; a file it cannot read goes without one.
- Download: ``GET /open-apis/im/v1/messages/:message_id/resources/:file_key?type=image|file``
  (https://open.feishu.cn/document/server-docs/im-v1/message/get — "获取消息中的资源文件"):
  up to 100 MB, a binary body, errors as JSON.
"""

from __future__ import annotations

import mimetypes
import os
import struct
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


async def upload_file(
    client: LarkClient,
    data: bytes,
    name: str,
    kind: str | None = None,
    *,
    duration: int | None = None,
) -> str:
    """Upload a non-image file; returns its ``file_key``. ``duration`` (ms) is sent for opus
    and mp4 files: the one given, else the one :func:`media_duration` reads from ``data``."""
    if not data or len(data) > MAX_FILE_BYTES:
        raise ValueError(f"file of {len(data)} bytes (Feishu takes 1 B to 30 MB)")
    kind = kind or file_type(name)
    if kind in MESSAGE_TYPES and duration is None:
        duration = media_duration(data, kind)

    def form() -> aiohttp.FormData:
        made = aiohttp.FormData()
        made.add_field("file_type", kind)
        made.add_field("file_name", name)
        if kind in MESSAGE_TYPES and duration is not None:
            made.add_field("duration", str(duration))
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


def media_duration(data: bytes, kind: str) -> int | None:
    """The length in ms of an mp4 or Ogg Opus file, or None when it cannot be read."""
    try:
        if kind == "mp4":
            return _mp4_duration(data)
        if kind == "opus":
            return _opus_duration(data)
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _boxes(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """The ISO BMFF boxes between ``start`` and ``end``: type → (payload start, box end)."""
    found: dict[bytes, tuple[int, int]] = {}
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:  # a 64-bit size follows
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:  # to the end of the enclosing box
            size = end - at
        if size < header:
            break
        found.setdefault(kind, (at + header, min(at + size, end)))
        at += size
    return found


def _mp4_duration(data: bytes) -> int | None:
    """``moov/mvhd``: duration / timescale, the movie's length (ISO/IEC 14496-12 §8.2.2)."""
    moov = _boxes(data, 0, len(data)).get(b"moov")
    mvhd = _boxes(data, *moov).get(b"mvhd") if moov else None
    if mvhd is None:
        return None
    at, end = mvhd
    version = data[at]
    if end - at < (32 if version == 1 else 20):
        return None  # a truncated movie header
    if version == 1:  # 64-bit times and duration
        timescale, length = struct.unpack_from(">IQ", data, at + 20)
    else:
        timescale, length = struct.unpack_from(">II", data, at + 12)
    if not timescale or length in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
        return None  # unknown duration
    return length * 1000 // timescale


def _opus_duration(data: bytes) -> int | None:
    """Ogg Opus (RFC 7845): the last page's granule position, minus the header's pre-skip,
    counts 48 kHz samples."""
    if not data.startswith(b"OggS"):
        return None
    head = data.find(b"OpusHead")
    if head < 0:
        return None
    (pre_skip,) = struct.unpack_from("<H", data, head + 10)
    page = data.rfind(b"OggS")
    while page >= 0:
        (granule,) = struct.unpack_from("<q", data, page + 6)
        if data[page + 4] == 0 and granule >= 0:
            return max(0, granule - pre_skip) * 1000 // 48000
        page = data.rfind(b"OggS", 0, page)
    return None


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
