"""Images and files the bot uploaded (``im/v1/images``, ``im/v1/files``, §4.5).

Feishu only accepts ``img_…`` keys it issued itself in cards and image messages, so the
sandbox remembers every upload: the keys make the card checks exact, the ``file_type`` lets
a send check that an mp4 goes as ``media`` and an opus as ``audio`` (230055), and the bytes
let the page draw the images and the bot download what users sent.

``duration`` (ms) is optional for every type, mp4 and opus included: the upload doc
(open.feishu.cn/document/server-docs/im-v1/file/create) marks it "否" (not required) and only
says that without it the client cannot show the length. So it is not demanded here either;
when given it must be a non-negative integer.
"""

from __future__ import annotations

import mimetypes
import secrets
from dataclasses import dataclass, field

from lark_cards.api.errors import UPLOAD_INVALID, UPLOAD_TOO_LARGE

from .rules import Refusal

IMAGE_LIMIT = 10 * 1024 * 1024  # §4.5: ≤ 10 MB, not 0 bytes
FILE_LIMIT = 30 * 1024 * 1024  # im/v1/files: ≤ 30 MB
IMAGE_TYPES = frozenset({"message", "avatar"})
FILE_TYPES = frozenset({"opus", "mp4", "pdf", "doc", "xls", "ppt", "stream"})

# §4.5: JPEG, PNG, WEBP, GIF, TIFF, BMP, ICO — recognised by their first bytes.
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
)


def sniff_image(data: bytes) -> str | None:
    """The image's MIME type from its magic bytes, or None for what Feishu would refuse."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return None


@dataclass
class Upload:
    key: str
    data: bytes
    content_type: str
    name: str = ""
    file_type: str = ""  # files only: what ``file_type`` said (opus, mp4, pdf, …)
    duration: int | None = None  # files only: ms, when the upload gave it


@dataclass
class Uploads:
    """What the bot uploaded (``images``, ``files``: keys it may send) and what simulated
    users sent (``received``: keys the bot may only download)."""

    images: dict[str, Upload] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    received: dict[str, Upload] = field(default_factory=dict)

    def find(self, key: str) -> Upload | None:
        """Any stored resource by key (for message-resource downloads)."""
        return self.images.get(key) or self.files.get(key) or self.received.get(key)

    def receive(self, data: bytes, name: str, *, image: bool) -> Upload:
        """Store a file a simulated user sent; its key is what the received message carries."""
        if image:
            key = "img_v3_sbxu_" + secrets.token_hex(12)
            upload = Upload(key, data, sniff_image(data) or "application/octet-stream", name)
        else:
            upload = Upload("file_v3_sbxu_" + secrets.token_hex(12), data, _mime(name), name)
        self.received[upload.key] = upload
        return upload

    def add_image(self, image_type: str | None, data: bytes | None) -> Upload | Refusal:
        if image_type not in IMAGE_TYPES:
            return Refusal(UPLOAD_INVALID, "image_type must be 'message' or 'avatar'")
        if not data:
            return Refusal(UPLOAD_INVALID, "the image is missing or empty")
        if len(data) > IMAGE_LIMIT:
            return Refusal(UPLOAD_TOO_LARGE, "the image exceeds 10 MB")
        mime = sniff_image(data)
        if mime is None:
            return Refusal(UPLOAD_INVALID, "the image format is not supported")
        upload = Upload("img_v3_sbx_" + secrets.token_hex(12), data, mime)
        self.images[upload.key] = upload
        return upload

    def add_file(
        self,
        file_type: str | None,
        name: str | None,
        data: bytes | None,
        duration: str | None = None,
    ) -> Upload | Refusal:
        if file_type not in FILE_TYPES:
            return Refusal(
                UPLOAD_INVALID, f"file_type must be one of {', '.join(sorted(FILE_TYPES))}"
            )
        if not name:
            return Refusal(UPLOAD_INVALID, "file_name is required")
        if not data:
            return Refusal(UPLOAD_INVALID, "the file is missing or empty")
        if len(data) > FILE_LIMIT:
            return Refusal(UPLOAD_TOO_LARGE, "the file exceeds 30 MB")
        millis = _duration(duration)
        if isinstance(millis, Refusal):
            return millis
        upload = Upload(
            "file_v3_sbx_" + secrets.token_hex(12),
            data,
            "application/octet-stream",
            name,
            file_type=file_type,
            duration=millis,
        )
        self.files[upload.key] = upload
        return upload


def _duration(value: str | None) -> int | Refusal | None:
    """The ``duration`` form field (ms): absent is fine, anything but a whole number is not."""
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit():
        return Refusal(UPLOAD_INVALID, "duration must be a whole number of milliseconds")
    return int(value)


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
