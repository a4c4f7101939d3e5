"""Images for cards: Feishu shows only keys uploaded through ``im/v1/images`` (§4.5), never
external URLs, and an unknown key makes it reject the whole card (200570). So every image URL
in a reply is downloaded and uploaded first, once per URL (cached); any failure leaves the URL
out and the renderer shows a link instead.

The URLs come from whatever a plugin replies (often text a user typed), and the bot host
fetches them, so the download is kept on a short leash: http(s) only, no credentials in the
URL, no private/loopback/link-local/multicast/reserved address (checked on every redirect hop,
which are followed by hand, and again by the connector's resolver so that a DNS answer cannot
change between the check and the connection), an explicit ``image/*`` type, 10 MB, at most
``MAX_IMAGES`` per message, ``MAX_CONCURRENT`` at a time, and a URL that failed is not
fetched again for ``FAILURE_TTL`` seconds. Logs name the host only: URLs may carry tokens.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from lark_cards.api.client import LarkClient
from lark_cards.api.errors import LarkAPIError

log = logging.getLogger(__name__)

# §4.5: ≤ 10 MB, not empty.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
DOWNLOAD_TIMEOUT = 10.0  # the whole download, redirects included
# The Feishu client's own timeout is meant for JSON calls; 10 MB on a slow uplink needs more.
UPLOAD_TIMEOUT = 60.0
MAX_IMAGES = 20  # per message (one ``keys`` call); the rest stay links
MAX_CONCURRENT = 4  # downloads + uploads in flight per uploader
MAX_REDIRECTS = 3
FAILURE_TTL = 300.0  # a URL that failed is left a link, without a new fetch, this long
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # IPv4 behind a NAT64 gateway

Fetch = Callable[[str], Awaitable[bytes]]


class ImageRefused(ValueError):
    """A URL, response or image the uploader will not use; the message never holds the URL."""


def is_public_address(address: str) -> bool:
    """Whether the bot may connect to ``address``: not private, loopback, link-local,
    multicast, reserved, unspecified or otherwise non-global, also when an IPv4 address is
    wrapped in IPv6 (``::ffff:10.0.0.1``, 6to4, NAT64)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return not any(
        c.is_private
        or c.is_loopback
        or c.is_link_local
        or c.is_multicast
        or c.is_reserved
        or c.is_unspecified
        or not c.is_global
        for c in candidates
    )


class PublicOnlyResolver(ThreadedResolver):
    """The download connector's resolver: refuses a name with any non-public address, so the
    connection goes only where ``ImageUploader`` checked (no DNS rebinding in between)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        if not results or not all(is_public_address(r["host"]) for r in results):
            raise OSError(f"{host} resolves to an address images are not fetched from")
        return results


class ImageUploader:
    """URL → ``img_`` key, with an LRU cache so a repeated image is uploaded once.

    ``allow_private=True`` lifts the address check (for a local sandbox serving images on
    127.0.0.1, or tests); the scheme, credential, type and size checks always apply.
    """

    def __init__(
        self,
        client: LarkClient,
        *,
        fetch: Fetch | None = None,
        cache_size: int = 512,
        allow_private: bool = False,
        max_images: int = MAX_IMAGES,
        max_concurrent: int = MAX_CONCURRENT,
        failure_ttl: float = FAILURE_TTL,
        failure_cache_size: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._fetch = fetch or self._download
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._allow_private = allow_private
        self._max_images = max_images
        self._limit = asyncio.Semaphore(max_concurrent)
        self._failed: OrderedDict[str, float] = OrderedDict()  # url → retry after (clock)
        self._failure_ttl = failure_ttl
        self._failure_cache_size = failure_cache_size
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def keys(self, urls: Iterable[str]) -> dict[str, str]:
        """Keys for the URLs (the first ``max_images`` distinct ones) that could be fetched
        and uploaded, at most ``max_concurrent`` at a time."""
        wanted = list(dict.fromkeys(urls))
        if len(wanted) > self._max_images:
            log.info(
                "%d images in one message: the %d after the first %d stay links",
                len(wanted), len(wanted) - self._max_images, self._max_images,
            )  # fmt: skip
            wanted = wanted[: self._max_images]
        results = await asyncio.gather(*(self.key(url) for url in wanted))
        return {url: key for url, key in zip(wanted, results, strict=True) if key}

    async def key(self, url: str) -> str | None:
        if url in self._cache:
            self._cache.move_to_end(url)
            return self._cache[url]
        if self._failed_recently(url):
            return None
        async with self._limit:
            try:
                data = await self._fetch(url)
                key = await self.upload(data, _filename(url))
            except LarkAPIError as error:  # Feishu's trouble, not the URL's: try again next time
                log.info("Image from %s stays a link: upload failed: %s", _host(url), error)
                return None
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
                self._remember_failure(url)
                log.info("Image from %s stays a link: %s", _host(url), _reason(error))
                return None
        self._cache[url] = key
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key

    async def upload(
        self, data: bytes, filename: str = "image", *, deadline: float | None = None
    ) -> str:
        """Upload image bytes as a message image; return its ``img_`` key. ``deadline``
        bounds the retries: an image that *is* the message gets the send deadline; one
        inside a reply only the request deadline (it can stay a link)."""
        if not data or len(data) > MAX_IMAGE_BYTES:
            raise ImageRefused(f"image of {len(data)} bytes (Feishu takes 1 B to 10 MB)")

        def form() -> aiohttp.FormData:
            made = aiohttp.FormData()
            made.add_field("image_type", "message")
            made.add_field(
                "image", data, filename=filename, content_type="application/octet-stream"
            )
            return made

        body = await self._client.request(
            "POST",
            "/open-apis/im/v1/images",
            data=form,
            timeout=aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT),
            deadline=deadline,
        )
        key = (body.get("data") or {}).get("image_key")
        if not isinstance(key, str) or not key.startswith("img_"):
            raise ImageRefused("upload answered without an img_ key")
        return key

    # -- failures --------------------------------------------------------------------------

    def _failed_recently(self, url: str) -> bool:
        until = self._failed.get(url)
        if until is None:
            return False
        if self._clock() < until:
            self._failed.move_to_end(url)
            return True
        del self._failed[url]
        return False

    def _remember_failure(self, url: str) -> None:
        self._failed[url] = self._clock() + self._failure_ttl
        self._failed.move_to_end(url)
        while len(self._failed) > self._failure_cache_size:
            self._failed.popitem(last=False)

    # -- download --------------------------------------------------------------------------

    async def _download(self, url: str) -> bytes:
        # Its own session: third-party hosts get neither the Feishu client's settings nor,
        # by construction, its Authorization header.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT),
                connector=aiohttp.TCPConnector(
                    resolver=None if self._allow_private else PublicOnlyResolver()
                ),
            )
        target = URL(url)
        async with asyncio.timeout(DOWNLOAD_TIMEOUT):
            for _hop in range(MAX_REDIRECTS + 1):
                await self._check_url(target)
                async with self._session.get(target, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise ImageRefused(f"HTTP {resp.status} without a Location")
                        target = target.join(URL(location))
                        continue
                    return await _image_body(resp)
        raise ImageRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _check_url(self, url: URL) -> None:
        """Refuse a URL the bot must not fetch, before any connection is made."""
        if url.scheme not in ("http", "https") or not url.host:
            raise ImageRefused("only http(s) URLs with a host are fetched")
        if url.user is not None or url.password is not None:
            raise ImageRefused("URLs with credentials are not fetched")
        if self._allow_private:
            return
        host = url.host.strip("[]")
        try:
            addresses = [str(ipaddress.ip_address(host.split("%", 1)[0]))]
        except ValueError:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, url.port or 0, type=socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
        if not addresses or not all(is_public_address(a) for a in addresses):
            raise ImageRefused("the host has a private, local or reserved address")


async def _image_body(resp: Any) -> bytes:
    if resp.status != 200:
        raise ImageRefused(f"HTTP {resp.status}")
    mime = (resp.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if not mime.startswith("image/"):
        raise ImageRefused(f"not an image (Content-Type {mime or 'missing'})")
    data = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageRefused("image larger than 10 MB")
    return bytes(data)


def _host(url: str) -> str:
    try:
        return URL(url).host or "?"
    except ValueError:
        return "?"


def _filename(url: str) -> str:
    """The last path segment; never the query, which may hold a token."""
    try:
        return URL(url).name or "image"
    except ValueError:
        return "image"


def _reason(error: BaseException) -> str:
    """Why, without the URL: aiohttp's messages include it (and so any token in it)."""
    if isinstance(error, ImageRefused):
        return str(error)
    if isinstance(error, aiohttp.ClientResponseError):
        return f"HTTP {error.status}"
    if isinstance(error, TimeoutError):
        return "timed out"
    return type(error).__name__
