"""ImageUploader against a faked Open Platform and image host (aioresponses); no network.

Feishu shows only images uploaded through ``im/v1/images`` (design.md §4): every image URL is
downloaded, uploaded as a message image and cached; anything that fails stays a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from lark_cards.api import LarkClient
from lark_cards.api.images import MAX_IMAGE_BYTES, ImageUploader
from lark_cards.outbound import Sender
from lark_cards.render import RenderOptions, render_markdown, render_reply

BASE = "https://open.feishu.test"
TOKEN_URL = f"{BASE}/open-apis/auth/v3/tenant_access_token/internal"
UPLOAD_URL = f"{BASE}/open-apis/im/v1/images"
IMAGE_URL = "https://cdn.example.com/charts/load.png"
OTHER_URL = "https://cdn.example.com/charts/errors.png"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
KEY = "img_v3_0a1b2c3d-load"


@pytest.fixture
def m(api_mock: aioresponses) -> aioresponses:
    return api_mock


@pytest.fixture
async def client() -> AsyncIterator[LarkClient]:
    c = LarkClient(app_id="cli_test", app_secret="s3cret", base_url=BASE, max_retries=0)
    await c.start()
    yield c
    await c.close()


@pytest.fixture
async def uploader(client: LarkClient) -> AsyncIterator[ImageUploader]:
    images = ImageUploader(client)
    yield images
    await images.close()


def token_ok(m: aioresponses) -> None:
    payload = {"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200}
    m.post(TOKEN_URL, payload=payload)


def image_ok(m: aioresponses, url: str = IMAGE_URL, body: bytes = PNG, **kwargs: Any) -> None:
    m.get(url, body=body, content_type="image/png", **kwargs)


def upload_ok(m: aioresponses, key: str = KEY, **kwargs: Any) -> None:
    m.post(UPLOAD_URL, payload={"code": 0, "msg": "success", "data": {"image_key": key}}, **kwargs)


def requests(m: aioresponses, method: str, url: str) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


def request_count(m: aioresponses) -> int:
    return sum(len(calls) for calls in m.requests.values())


async def multipart_fields(form: aiohttp.FormData) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart body as the server reads them: name → (filename, bytes)."""
    writer = form()
    raw = await writer.as_bytes()
    head = f"Content-Type: {writer.content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    assert message.is_multipart()
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields[name] = (part.get_filename(), part.get_payload(decode=True))
    return fields


# ----- download and upload ---------------------------------------------------------------------


async def test_a_url_is_downloaded_and_uploaded_as_a_message_image(m, uploader):
    token_ok(m)
    image_ok(m)
    upload_ok(m)
    assert await uploader.key(IMAGE_URL) == KEY

    [download] = requests(m, "GET", IMAGE_URL)
    assert "Authorization" not in (download.kwargs.get("headers") or {})  # no token to a CDN
    [upload] = requests(m, "POST", UPLOAD_URL)
    assert upload.kwargs["headers"]["Authorization"] == "Bearer t-1"
    fields = await multipart_fields(upload.kwargs["data"])
    assert set(fields) == {"image_type", "image"}
    assert fields["image_type"] == (None, b"message")
    assert fields["image"] == ("load.png", PNG)


async def test_the_key_is_cached_by_url(m, uploader):
    token_ok(m)
    image_ok(m, repeat=True)
    upload_ok(m, repeat=True)
    assert await uploader.key(IMAGE_URL) == KEY
    before = request_count(m)
    assert await uploader.key(IMAGE_URL) == KEY
    assert await uploader.keys([IMAGE_URL, IMAGE_URL]) == {IMAGE_URL: KEY}
    assert request_count(m) == before  # no new download, no new upload
    assert len(requests(m, "GET", IMAGE_URL)) == 1


async def test_the_cache_is_bounded(m, client):
    images = ImageUploader(client, cache_size=1)
    try:
        token_ok(m)
        image_ok(m, repeat=True)
        image_ok(m, OTHER_URL)
        upload_ok(m, repeat=True)
        await images.key(IMAGE_URL)
        await images.key(OTHER_URL)  # pushes IMAGE_URL out
        await images.key(IMAGE_URL)
        assert len(requests(m, "GET", IMAGE_URL)) == 2
    finally:
        await images.close()


async def test_keys_for_several_urls_leave_out_the_failures(m, uploader):
    token_ok(m)
    image_ok(m)
    m.get(OTHER_URL, status=404)
    upload_ok(m)
    assert await uploader.keys([IMAGE_URL, OTHER_URL]) == {IMAGE_URL: KEY}


@pytest.mark.parametrize(
    "respond",
    [
        pytest.param({"status": 404}, id="not-found"),
        pytest.param({"status": 500}, id="server-error"),
        pytest.param({"exception": aiohttp.ClientConnectionError("refused")}, id="refused"),
        pytest.param({"exception": TimeoutError()}, id="timeout"),
        pytest.param({"body": b"<html>login</html>", "content_type": "text/html"}, id="html"),
        pytest.param({"body": b"{}", "content_type": "application/json"}, id="json"),
    ],
)
async def test_a_failed_download_or_a_non_image_gives_no_key(m, uploader, respond):
    m.get(IMAGE_URL, **respond)
    assert await uploader.key(IMAGE_URL) is None
    assert await uploader.keys([IMAGE_URL]) == {}
    assert requests(m, "POST", UPLOAD_URL) == []  # nothing was uploaded


async def test_a_failed_download_is_retried_next_time_not_cached(m, uploader):
    token_ok(m)
    m.get(IMAGE_URL, status=503)
    image_ok(m)
    upload_ok(m)
    assert await uploader.key(IMAGE_URL) is None
    assert await uploader.key(IMAGE_URL) == KEY


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"code": 234001, "msg": "invalid image"}, id="feishu-error"),
        pytest.param({"code": 0, "data": {"image_key": "file_v2_123"}}, id="not-an-img-key"),
        pytest.param({"code": 0, "data": {}}, id="no-key"),
    ],
)
async def test_a_failed_upload_gives_no_key(m, uploader, answer):
    token_ok(m)
    image_ok(m)
    m.post(UPLOAD_URL, payload=answer)
    assert await uploader.key(IMAGE_URL) is None


@pytest.mark.parametrize("size", [MAX_IMAGE_BYTES + 1, 0])
async def test_an_upload_over_10_mb_or_empty_is_refused_before_any_request(m, uploader, size):
    with pytest.raises(ValueError, match="10 MB"):
        await uploader.upload(b"\0" * size)
    assert m.requests == {}


async def test_an_image_over_10_mb_is_never_uploaded(m, client):
    async def fetch(url: str) -> bytes:
        return b"\0" * (MAX_IMAGE_BYTES + 1)

    images = ImageUploader(client, fetch=fetch)
    assert await images.key(IMAGE_URL) is None
    assert m.requests == {}


async def test_a_download_over_the_limit_is_dropped(m, uploader, monkeypatch):
    # aioresponses cannot serve 10 MB bodies (it feeds them past aiohttp's high-water mark),
    # so the limit itself is made small here.
    monkeypatch.setattr("lark_cards.api.images.MAX_IMAGE_BYTES", 1000)
    image_ok(m, body=b"\1" * 1001)
    assert await uploader.key(IMAGE_URL) is None
    assert requests(m, "POST", UPLOAD_URL) == []


async def test_a_download_at_the_limit_is_uploaded(m, uploader, monkeypatch):
    monkeypatch.setattr("lark_cards.api.images.MAX_IMAGE_BYTES", 1000)
    token_ok(m)
    image_ok(m, body=b"\1" * 1000)
    upload_ok(m)
    assert await uploader.key(IMAGE_URL) == KEY
    [upload] = requests(m, "POST", UPLOAD_URL)
    assert (await multipart_fields(upload.kwargs["data"]))["image"][1] == b"\1" * 1000


class TrickleSession:
    """An in-memory stand-in for the download session whose body arrives in several network
    chunks, as from a real server (aioresponses hands over the whole body at once)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    @contextlib.asynccontextmanager
    async def get(self, url: str) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        protocol = mock.Mock(_reading_paused=False)
        content = aiohttp.StreamReader(protocol, 2**16, loop=loop)
        content.feed_data(self.chunks[0])

        def deliver(rest: list[bytes]) -> None:
            if rest:
                content.feed_data(rest[0])
                loop.call_soon(deliver, rest[1:])
            else:
                content.feed_eof()

        loop.call_soon(deliver, self.chunks[1:])
        yield SimpleNamespace(
            headers={"Content-Type": "image/png"}, raise_for_status=lambda: None, content=content
        )

    async def close(self) -> None:
        pass


async def test_an_image_arriving_in_several_chunks_is_uploaded_whole(m, uploader):
    token_ok(m)
    upload_ok(m)
    chunks = [PNG[:700], PNG[700:1400], PNG[1400:]]
    uploader._session = TrickleSession(chunks)  # type: ignore[assignment]
    assert await uploader.key(IMAGE_URL) == KEY
    [upload] = requests(m, "POST", UPLOAD_URL)
    assert (await multipart_fields(upload.kwargs["data"]))["image"][1] == PNG


async def test_exactly_10_mb_is_accepted(m, uploader):
    token_ok(m)
    upload_ok(m)
    assert await uploader.upload(b"\1" * MAX_IMAGE_BYTES, "big.png") == KEY


# ----- into the card ---------------------------------------------------------------------------


def test_an_image_paragraph_with_a_key_becomes_an_img_component():
    [card] = render_markdown(
        "![load chart](https://cdn.example.com/charts/load.png)", images={IMAGE_URL: KEY}
    )
    [element] = card["body"]["elements"]
    assert element == {
        "tag": "img",
        "img_key": KEY,
        "alt": {"tag": "plain_text", "content": "load chart"},
    }


def test_an_image_without_a_key_is_a_link():
    [card] = render_markdown(f"![load chart]({IMAGE_URL})")
    [element] = card["body"]["elements"]
    assert element == {"tag": "markdown", "content": f"[load chart]({IMAGE_URL})"}


def test_an_image_inside_text_uses_the_key_in_markdown():
    [card] = render_markdown(f"see ![chart]({IMAGE_URL}) here", images={IMAGE_URL: KEY})
    [element] = card["body"]["elements"]
    assert element == {"tag": "markdown", "content": f"see ![chart]({KEY}) here"}


async def test_end_to_end_upload_then_render(m, client):
    token_ok(m)
    image_ok(m)
    m.get(OTHER_URL, status=404)
    upload_ok(m)
    text = f"Load today:\n\n![load]({IMAGE_URL})\n\n![errors]({OTHER_URL})"
    sender = Sender(client, RenderOptions())
    try:
        keys = await sender.image_keys(text)
        assert keys == {IMAGE_URL: KEY}
        [item] = render_reply(text, images=keys)
    finally:
        await sender.close()
    elements = item.content["body"]["elements"]
    images = [e for e in elements if e["tag"] == "img"]
    assert [e["img_key"] for e in images] == [KEY]
    # the image that could not be fetched is a link, never a non-img_ key
    assert any(f"[errors]({OTHER_URL})" in e.get("content", "") for e in elements)


async def test_no_uploads_when_images_are_turned_off(m, client):
    sender = Sender(client, RenderOptions(), upload_images=False)
    assert await sender.image_keys(f"![x]({IMAGE_URL})") == {}
    assert m.requests == {}


async def test_only_http_images_are_fetched(m, client):
    sender = Sender(client, RenderOptions())
    try:
        keys = await sender.image_keys("![a](file:///etc/passwd) ![b](javascript:alert(1))")
    finally:
        await sender.close()
    assert keys == {}
    assert m.requests == {}
