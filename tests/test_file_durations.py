"""Audio and video uploads carry ``duration`` (ms), read from the file itself: the mp4
``moov/mvhd`` box (ISO/IEC 14496-12 §8.2.2) and the Ogg Opus granule position (RFC 7845).
The files here are built byte by byte from those specs; the upload goes through the bot's own
client to the sandbox, which keeps what Feishu would receive."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest
from sandbox_live import LiveSandbox

from lark_cards.api.files import media_duration, upload_file


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version == 1:
        times = struct.pack(">QQIQ", 1, 2, timescale, duration)
    else:
        times = struct.pack(">IIII", 1, 2, timescale, duration)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + b"\x00" * 80)


def mp4(moov_payload: bytes, *, big_mdat: bool = False) -> bytes:
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
    media = b"\x00" * 32
    if big_mdat:  # a 64-bit box size, as long recordings have
        mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(media)) + media
    else:
        mdat = box(b"mdat", media)
    return ftyp + mdat + box(b"moov", moov_payload + box(b"trak", b"\x00" * 16))


def ogg_page(granule: int, payload: bytes, *, kind: int = 0) -> bytes:
    header = b"OggS" + bytes([0, kind]) + struct.pack("<qIII", granule, 7, 0, 0)
    return header + bytes([1, len(payload)]) + payload


def opus(samples_48k: int, pre_skip: int = 312) -> bytes:
    head = b"OpusHead" + bytes([1, 2]) + struct.pack("<HIhB", pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 0) + struct.pack("<I", 0)
    return (
        ogg_page(0, head, kind=2)
        + ogg_page(0, tags)
        + ogg_page(pre_skip + samples_48k // 2, b"\xfc" * 40)
        + ogg_page(pre_skip + samples_48k, b"\xfc" * 40, kind=4)
    )


@pytest.mark.parametrize(
    ("data", "millis"),
    [
        (mp4(mvhd(1000, 2500)), 2500),
        (mp4(mvhd(90000, 90000 * 61)), 61000),
        (mp4(mvhd(600, 600 * 3, version=1), big_mdat=True), 3000),
    ],
)
def test_an_mp4s_duration_comes_from_its_movie_header(data: bytes, millis: int):
    assert media_duration(data, "mp4") == millis


def test_an_opus_duration_is_its_last_granule_minus_the_pre_skip():
    assert media_duration(opus(48000 * 7 // 2), "opus") == 3500


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "mp4"),
        (b"\x00\x00\x00\x08free", "mp4"),  # no moov
        (mp4(box(b"mvhd", b"\x00")), "mp4"),  # a truncated movie header
        (mp4(mvhd(0, 100)), "mp4"),  # no timescale
        (b"OggS\x00", "opus"),
        (b"RIFF....WAVE", "opus"),
        (mp4(mvhd(1000, 5)), "pdf"),
    ],
)
def test_a_file_that_cannot_be_read_has_no_duration(data: bytes, kind: str):
    assert media_duration(data, kind) is None


@pytest.fixture
def live(loop: asyncio.AbstractEventLoop) -> Iterator[LiveSandbox]:
    sandbox = LiveSandbox(loop).start()
    yield sandbox
    sandbox.stop()


def uploaded_duration(live: LiveSandbox, data: bytes, name: str, **kwargs: int) -> int | None:
    client = live.client()
    try:
        key = live.run(upload_file(client, data, name, **kwargs))
    finally:
        live.run(client.close())
    return live.platform.uploads.files[key].duration


def test_uploads_of_mp4_and_opus_send_their_duration(live: LiveSandbox):
    assert uploaded_duration(live, mp4(mvhd(1000, 4200)), "clip.mp4") == 4200
    assert uploaded_duration(live, opus(48000), "voice.opus") == 1000


def test_a_given_duration_wins_and_other_files_send_none(live: LiveSandbox):
    assert uploaded_duration(live, mp4(mvhd(1000, 4200)), "clip.mp4", duration=99) == 99
    assert uploaded_duration(live, b"not a movie", "clip.mp4") is None  # sent without one
    assert uploaded_duration(live, b"%PDF-1.7", "report.pdf", duration=5) is None
