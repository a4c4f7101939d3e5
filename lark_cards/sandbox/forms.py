"""Multipart upload bodies read the way Feishu reads them: every part by its name, files or not.

aiohttp's ``request.post()`` keeps a part as a file only when its ``Content-Disposition`` has a
``filename``, and decodes every other part as text. The official Python SDK's sync client
(lark-oapi, ``requests_toolbelt.MultipartEncoder`` over a plain dict) sends the file part
*without* a filename, so ``post()`` tried to decode a JPEG as UTF-8 and the sandbox answered
500. Feishu takes the bytes of the part named ``file`` / ``image`` whatever its headers say,
and the name from the ``file_name`` field (§4.5, im/v1/files). This reader does the same and
turns a malformed body into Feishu's 234001 refusal instead of an exception.
"""

from __future__ import annotations

import binascii
import zlib
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

from lark_cards.api.errors import UPLOAD_INVALID, UPLOAD_TOO_LARGE

from .rules import Refusal

MAX_PARTS = 16  # an upload has 2-4 fields; more is not a Feishu upload
# What aiohttp's reader raises on a missing boundary, broken framing or a bad encoding.
_UNREADABLE = (ValueError, AssertionError, RuntimeError, LookupError, binascii.Error, zlib.error)


@dataclass
class Form:
    """The parts of a multipart body: raw bytes by name, plus each part's own filename."""

    parts: dict[str, bytes] = field(default_factory=dict)
    filenames: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A text field, or None when it is missing or not UTF-8."""
        value = self.parts.get(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def data(self, name: str) -> bytes | None:
        return self.parts.get(name)


FORM_FIELDS_BYTES = 64 * 1024  # file_type, file_name, duration…: a form is one file + these


async def read_form(request: web.Request, max_bytes: int) -> Form | Refusal:
    """The request's multipart parts; a refusal when the body is no multipart form Feishu
    would read (wrong content type, broken framing, more than ``max_bytes`` in one part)."""
    if request.content_type != "multipart/form-data":
        return Refusal(UPLOAD_INVALID, "the request must be multipart/form-data")
    form = Form()
    left = max_bytes + FORM_FIELDS_BYTES  # the whole form: one file and its small fields
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                return form
            if not isinstance(part, BodyPartReader) or not part.name:
                continue  # a nested multipart, or a part without a name: Feishu ignores it
            data = await _read_part(part, min(max_bytes, left))
            if data is None:
                return Refusal(UPLOAD_TOO_LARGE, f"the part {part.name!r} is too large")
            left -= len(data)
            form.parts.setdefault(part.name, data)
            if part.filename:
                form.filenames.setdefault(part.name, part.filename)
    except _UNREADABLE as error:
        return Refusal(UPLOAD_INVALID, f"the multipart body cannot be read: {error}")
    return Refusal(UPLOAD_INVALID, f"more than {MAX_PARTS} parts in the form")


async def _read_part(part: BodyPartReader, max_bytes: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return bytes(part.decode(b"".join(chunks)))
