"""ImageUploader against a faked Open Platform and image host (aioresponses); no network.

Feishu shows only images uploaded through ``im/v1/images`` (a card with any other image key is
rejected whole): every image URL is downloaded, uploaded as a message image and cached;
anything that fails stays a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import ipaddress
import itertools
import logging
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

from lark_cards.api.client import LarkClient
from lark_cards.api.images import (
    FAILURE_TTL,
    MAX_IMAGE_BYTES,
    UPLOAD_TIMEOUT,
    ImageUploader,
    PublicOnlyResolver,
    is_public_address,
)
from lark_cards.outbound.delivery import Delivery
from lark_cards.render import RenderOptions, render_markdown, render_reply

BASE = "https://open.feishu.test"
TOKEN_URL = f"{BASE}/open-apis/auth/v3/tenant_access_token/internal"
UPLOAD_URL = f"{BASE}/open-apis/im/v1/images"
IMAGE_URL = "https://cdn.example.com/charts/load.png"
OTHER_URL = "https://cdn.example.com/charts/errors.png"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
KEY = "img_v3_0a1b2c3d-load"


PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
DNS = {
    "cdn.example.com": [PUBLIC_V4, PUBLIC_V6],
    "intranet.example.com": ["10.20.30.40"],
    "v6-intranet.example.com": ["fd12:3456::1"],
    "half-private.example.com": [PUBLIC_V4, "127.0.0.1"],  # one bad answer is enough
}


def addrinfo(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """No real DNS in these tests: every loop resolves names from this table (and IP
    literals to themselves); tests may change it."""
    table = {name: list(addresses) for name, addresses in DNS.items()}

    async def getaddrinfo(
        loop: Any, host: Any, port: Any, *, family: int = 0, type: int = 0, **kwargs: Any
    ) -> list[tuple[Any, ...]]:
        host = host.decode() if isinstance(host, bytes) else host
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            addresses = table[host]
        infos = [addrinfo(address, int(port or 0)) for address in addresses]
        return [info for info in infos if family in (socket.AF_UNSPEC, info[0])]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    return table


@pytest.fixture
def m(api_mock: aioresponses) -> aioresponses:
    return api_mock


@pytest.fixture
async def client() -> AsyncIterator[LarkClient]:
    c = LarkClient(
        app_id="cli_test", app_secret="s3cret", base_url=BASE, send_deadline=0, request_deadline=0
    )
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


@pytest.mark.parametrize(
    ("bound", "download"),
    [
        pytest.param("cache_size", {"body": PNG, "content_type": "image/png"}, id="keys"),
        pytest.param("failure_cache_size", {"status": 404}, id="failures"),
    ],
)
async def test_the_key_and_failure_caches_are_bounded(m, client, bound, download):
    images = ImageUploader(client, **{bound: 1})
    try:
        token_ok(m)
        upload_ok(m, repeat=True)
        for url in (IMAGE_URL, OTHER_URL):
            m.get(url, repeat=True, **download)
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


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_failed_download_is_not_fetched_again_for_a_while(m, client):
    clock = Clock()
    images = ImageUploader(client, clock=clock)
    try:
        token_ok(m)
        m.get(IMAGE_URL, status=503)
        image_ok(m)
        upload_ok(m)
        assert await images.key(IMAGE_URL) is None
        clock.now = FAILURE_TTL - 1
        assert await images.keys([IMAGE_URL]) == {}
        assert len(requests(m, "GET", IMAGE_URL)) == 1
        clock.now = FAILURE_TTL
        assert await images.key(IMAGE_URL) == KEY
        assert len(requests(m, "GET", IMAGE_URL)) == 2
    finally:
        await images.close()


async def test_a_failing_url_is_fetched_once_across_two_renders(m, client):
    m.get(IMAGE_URL, status=404, repeat=True)
    sender = Delivery(client, RenderOptions())
    try:
        assert await sender.image_keys(f"![a]({IMAGE_URL})") == {}
        assert await sender.image_keys(f"again ![a]({IMAGE_URL})") == {}
    finally:
        await sender.close()
    assert len(requests(m, "GET", IMAGE_URL)) == 1


async def test_a_failed_upload_is_tried_again_next_time(m, uploader):
    # Feishu's trouble, not the URL's: no negative cache.
    token_ok(m)
    image_ok(m, repeat=True)
    m.post(UPLOAD_URL, status=500, payload={"code": 1, "msg": "busy"})
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

    def __init__(self, chunks: list[bytes], headers: dict[str, str] | None = None) -> None:
        self.chunks = chunks
        self.headers = {"Content-Type": "image/png"} if headers is None else headers

    @contextlib.asynccontextmanager
    async def get(self, url: Any, **kwargs: Any) -> AsyncIterator[Any]:
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
            status=200, headers=self.headers, raise_for_status=lambda: None, content=content
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
    sender = Delivery(client, RenderOptions())
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
    sender = Delivery(client, RenderOptions(), upload_images=False)
    assert await sender.image_keys(f"![x]({IMAGE_URL})") == {}
    assert m.requests == {}


async def test_only_http_images_are_fetched(m, client):
    sender = Delivery(client, RenderOptions())
    try:
        keys = await sender.image_keys("![a](file:///etc/passwd) ![b](javascript:alert(1))")
    finally:
        await sender.close()
    assert keys == {}
    assert m.requests == {}


# ----- what the bot host will not fetch --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://10.0.0.5/chart.png", id="private-10"),
        pytest.param("http://192.168.1.1/chart.png", id="private-192"),
        pytest.param("http://127.0.0.1:8080/chart.png", id="loopback"),
        pytest.param("http://[::1]/chart.png", id="loopback-v6"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="cloud-metadata"),
        pytest.param("http://[fe80::1]/chart.png", id="link-local-v6"),
        pytest.param("http://[fd00::5]/chart.png", id="unique-local-v6"),
        pytest.param("http://[::ffff:10.0.0.5]/chart.png", id="v4-mapped"),
        pytest.param("http://0.0.0.0/chart.png", id="unspecified"),
        pytest.param("http://224.0.0.1/chart.png", id="multicast"),
        pytest.param("http://240.0.0.1/chart.png", id="reserved"),
        pytest.param("http://100.64.0.1/chart.png", id="shared-cgnat"),
        pytest.param("https://intranet.example.com/chart.png", id="name-to-private"),
        pytest.param("https://v6-intranet.example.com/chart.png", id="name-to-private-v6"),
        pytest.param("https://half-private.example.com/chart.png", id="name-to-mixed"),
        pytest.param("https://unknown.example.com/chart.png", id="name-unresolvable"),
        pytest.param("https://user:pw@cdn.example.com/chart.png", id="userinfo"),
        pytest.param("https://token@cdn.example.com/chart.png", id="user-only"),
        pytest.param("ftp://cdn.example.com/chart.png", id="ftp"),
        pytest.param("file:///etc/passwd", id="file"),
    ],
)
async def test_urls_the_bot_must_not_fetch_are_refused_without_a_request(m, uploader, url):
    m.get(url, body=PNG, content_type="image/png")  # would answer, were it asked
    assert await uploader.key(url) is None
    assert m.requests == {}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC_V4, True),
        (PUBLIC_V6, True),
        ("8.8.8.8", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("127.0.0.53", False),
        ("169.254.1.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1%eth0", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("2002:a00:1::1", False),  # 6to4 around 10.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("192.0.2.1", False),  # documentation
        ("not an address", False),
    ],
)
def test_public_addresses(address, public):
    assert is_public_address(address) is public


async def test_private_addresses_can_be_allowed_for_a_local_sandbox(m, client):
    url = "http://127.0.0.1:3000/chart.png"
    images = ImageUploader(client, allow_private=True)
    try:
        token_ok(m)
        image_ok(m, url)
        upload_ok(m)
        assert await images.key(url) == KEY
        # the other checks still hold
        assert await images.key("http://user:pw@127.0.0.1:3000/chart.png") is None
    finally:
        await images.close()


@pytest.mark.parametrize(
    "inside",
    [
        pytest.param("http://10.0.0.5/admin.png", id="address"),
        pytest.param("http://[::1]:8080/admin.png", id="loopback-v6"),
        pytest.param("https://intranet.example.com/admin.png", id="name"),
    ],
)
async def test_a_redirect_to_a_private_address_is_refused(m, uploader, inside):
    token_ok(m)
    upload_ok(m)  # everything would succeed, were the redirect followed
    m.get(IMAGE_URL, status=302, headers={"Location": inside})
    image_ok(m, inside)
    assert await uploader.key(IMAGE_URL) is None
    assert len(requests(m, "GET", IMAGE_URL)) == 1
    # aioresponses records no hop it follows itself: the private address's answer still
    # waiting and the missing upload show it was never asked.
    assert any(match.match("GET", URL(inside)) for match in m._matches.values())
    assert requests(m, "POST", UPLOAD_URL) == []


async def test_redirects_to_public_hosts_are_followed_by_hand(m, uploader):
    token_ok(m)
    m.get(IMAGE_URL, status=302, headers={"Location": "/charts/moved.png"})  # relative
    m.get("https://cdn.example.com/charts/moved.png", status=307, headers={"Location": OTHER_URL})
    image_ok(m, OTHER_URL)
    upload_ok(m)
    assert await uploader.key(IMAGE_URL) == KEY
    [first] = requests(m, "GET", IMAGE_URL)
    assert first.kwargs["allow_redirects"] is False
    assert len(requests(m, "GET", OTHER_URL)) == 1


async def test_more_than_three_redirects_are_refused(m, uploader):
    hops = [f"https://cdn.example.com/hop/{n}.png" for n in range(5)]
    for here, there in itertools.pairwise(hops):
        m.get(here, status=302, headers={"Location": there})
    image_ok(m, hops[4])
    assert await uploader.key(hops[0]) is None
    assert [len(requests(m, "GET", hop)) for hop in hops] == [1, 1, 1, 1, 0]


async def test_three_redirects_are_fine(m, uploader):
    token_ok(m)
    hops = [f"https://cdn.example.com/hop/{n}.png" for n in range(4)]
    for here, there in itertools.pairwise(hops):
        m.get(here, status=302, headers={"Location": there})
    image_ok(m, hops[3])
    upload_ok(m)
    assert await uploader.key(hops[0]) == KEY


async def test_a_redirect_without_location_gives_no_key(m, uploader):
    m.get(IMAGE_URL, status=302)
    assert await uploader.key(IMAGE_URL) is None


async def test_an_image_without_a_content_type_is_refused(m, uploader):
    token_ok(m)
    upload_ok(m)
    uploader._session = TrickleSession([PNG[:700], PNG[700:]], headers={})  # type: ignore[assignment]
    assert await uploader.key(IMAGE_URL) is None
    assert requests(m, "POST", UPLOAD_URL) == []


@pytest.mark.parametrize("content_type", ["", "application/octet-stream", "text/plain"])
async def test_only_an_explicit_image_type_is_fetched(m, uploader, content_type):
    m.get(IMAGE_URL, body=PNG, content_type=content_type)
    assert await uploader.key(IMAGE_URL) is None
    assert requests(m, "POST", UPLOAD_URL) == []


async def test_at_most_twenty_images_per_message_are_fetched(m, uploader):
    token_ok(m)
    upload_ok(m, repeat=True)
    urls = [f"https://cdn.example.com/charts/{n}.png" for n in range(30)]
    for url in urls:
        image_ok(m, url)
    keys = await uploader.keys(urls)
    assert set(keys) == set(urls[:20])  # the rest stay links
    fetched = sum(len(requests(m, "GET", url)) for url in urls)
    assert fetched == 20


async def test_at_most_four_images_are_fetched_at_a_time(m, client):
    running = peak = 0

    async def fetch(url: str) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return PNG

    token_ok(m)
    upload_ok(m, repeat=True)
    images = ImageUploader(client, fetch=fetch)
    urls = [f"https://cdn.example.com/charts/{n}.png" for n in range(12)]
    assert len(await images.keys(urls)) == 12
    assert peak == 4


async def test_logs_name_the_host_never_the_url(m, uploader, caplog):
    secret = "https://cdn.example.com/private/q3.png?token=SECRET-TOKEN"
    broken = "https://cdn.example.com/private/q4.png?sig=SECRET-SIG"
    m.get(secret, status=403)
    m.get(broken, exception=aiohttp.ClientConnectionError(f"cannot reach {broken}"))
    with caplog.at_level(logging.INFO, logger="lark_cards.api.images"):
        assert await uploader.keys([secret, broken]) == {}
    assert "SECRET" not in caplog.text
    assert "/private/" not in caplog.text
    messages = [r.getMessage() for r in caplog.records if r.name == "lark_cards.api.images"]
    assert len(messages) == 2
    assert all("cdn.example.com" in message for message in messages)
    assert all(r.levelno == logging.INFO for r in caplog.records)


async def test_the_upload_file_name_leaves_the_query_out(m, uploader):
    token_ok(m)
    image_ok(m, f"{IMAGE_URL}?token=SECRET")
    upload_ok(m)
    assert await uploader.key(f"{IMAGE_URL}?token=SECRET") == KEY
    [upload] = requests(m, "POST", UPLOAD_URL)
    assert (await multipart_fields(upload.kwargs["data"]))["image"][0] == "load.png"


async def test_an_upload_has_its_own_longer_timeout(m, uploader):
    token_ok(m)
    upload_ok(m)
    await uploader.upload(PNG, "chart.png")
    [upload] = requests(m, "POST", UPLOAD_URL)
    assert upload.kwargs["timeout"] == aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT)


# The connector's own resolver, against a real server on 127.0.0.1 (no aioresponses here).


@pytest.fixture
async def local_image_server() -> AsyncIterator[int]:
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/chart.png", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def test_a_name_that_turns_private_after_the_check_is_not_connected_to(
    client, dns, local_image_server, monkeypatch
):
    # DNS rebinding: the check sees a public address, the connection would get 127.0.0.1.
    answers = iter([[PUBLIC_V4]])
    resolve = asyncio.BaseEventLoop.getaddrinfo

    async def rebinding(loop: Any, host: str, port: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.com":
            dns[host] = next(answers, ["127.0.0.1"])
        return await resolve(loop, host, port, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    images = ImageUploader(client)
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await images._download(f"http://rebind.example.com:{local_image_server}/chart.png")
    finally:
        await images.close()
    # The server answers when private addresses are allowed: the refusal above came from
    # the resolver, not from a dead server.
    allowed = ImageUploader(client, allow_private=True)
    try:
        assert await allowed._download(f"http://127.0.0.1:{local_image_server}/chart.png") == PNG
    finally:
        await allowed.close()


async def test_the_resolver_refuses_names_with_a_private_address(dns):
    resolver = PublicOnlyResolver()
    assert [r["host"] for r in await resolver.resolve("cdn.example.com", 443)] == [PUBLIC_V4]
    with pytest.raises(OSError, match=r"intranet\.example\.com"):
        await resolver.resolve("intranet.example.com", 443)
    with pytest.raises(OSError, match="not fetched from"):
        await resolver.resolve("half-private.example.com", 443, socket.AF_UNSPEC)
