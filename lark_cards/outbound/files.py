"""Files and images a plugin sends: Errbot's ``send_stream_request`` over the delivery path.

Errbot hands over a blocking file object on a plugin thread and expects a ``Stream`` back at
once, moved through accept → success or error as the transfer goes (as err-backend-slackv3
and Errbot's Telegram backend do). The file is read on a worker thread of its own; the send
takes its chat turn when the plugin asks, so a later reply never overtakes the file while it
is still being read or uploaded. Images go as ``image`` messages (≤ 10 MB, §4.5), other files
through ``api.files`` as ``file`` / ``audio`` / ``media`` messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import mimetypes
import os
from typing import Any, BinaryIO

from errbot.backends.base import Identifier, Stream

from lark_cards.api.files import MAX_FILE_BYTES, MESSAGE_TYPES, file_type, is_image, upload_file
from lark_cards.api.images import MAX_IMAGE_BYTES
from lark_cards.outbound.delivery import Compose, Delivery
from lark_cards.render import Outgoing

log = logging.getLogger(__name__)

UPLOAD_TIMEOUT = 300.0  # how long a stream may take, once its turn comes, to be sent


async def file_message(
    delivery: Delivery, data: bytes, name: str, stream_type: str | None
) -> Outgoing:
    """Upload ``data`` and return the message that shows it."""
    if is_image(name, stream_type) and len(data) <= MAX_IMAGE_BYTES:
        key = await delivery.uploader.upload(data, name, deadline=delivery.client.send_deadline)
        return Outgoing("image", {"image_key": key})
    kind = file_type(name)
    key = await upload_file(delivery.client, data, name, kind)
    return Outgoing(MESSAGE_TYPES.get(kind, "file"), {"file_key": key})


class StreamReader:
    """Reads plugins' file objects on worker threads (never on the loop)."""

    def __init__(self, workers: int = 2) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="lark-upload"
        )

    def open(
        self,
        identifier: Identifier,
        fsource: BinaryIO,
        name: str | None,
        size: int | None,
        stream_type: str | None,
    ) -> tuple[Stream, Compose, concurrent.futures.Future[bytes]]:
        """The Errbot ``Stream``, the composer of its message, and the read, which starts
        now (cancel it if the message cannot be sent after all)."""
        name = name or os.path.basename(str(getattr(fsource, "name", "") or "")) or "file"
        stream_type = stream_type or mimetypes.guess_type(name)[0]
        stream = Stream(identifier, fsource, name, size, stream_type)
        read = self._executor.submit(_read, stream)

        async def compose(delivery: Delivery) -> list[Outgoing]:
            data = await asyncio.wrap_future(read)
            return [await file_message(delivery, data, name, stream_type)]

        return stream, compose, read

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def settle(stream: Stream, sent: concurrent.futures.Future[Any]) -> None:
    """End ``stream`` in success or error once its send is done; never leave it hanging."""
    if sent.cancelled():
        error: BaseException | None = RuntimeError("cancelled at shutdown")
    else:
        error = sent.exception()
    if error is None:
        stream.success()
        return
    reason = str(error) or type(error).__name__
    log.error("Sending %s to %s failed: %s", stream.name, stream.identifier, reason)
    stream.error(reason)


def _read(stream: Stream) -> bytes:
    stream.accept()
    data = stream.read(MAX_FILE_BYTES + 1)
    if not data or len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{len(data)} bytes: Feishu takes 1 B to 30 MB")
    stream.ack_data(len(data))
    return data
