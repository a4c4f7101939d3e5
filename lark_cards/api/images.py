"""Images for cards: Feishu shows only keys uploaded through ``im/v1/images`` (§4.5), never
external URLs, and an unknown key makes it reject the whole card (200570). So every image URL
in a reply is downloaded and uploaded first, once per URL (cached); any failure leaves the URL
out and the renderer shows a link instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from lark_cards.api.client import LarkClient
from lark_cards.api.errors import LarkAPIError

log = logging.getLogger(__name__)

# §4.5: ≤ 10 MB, not empty.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
DOWNLOAD_TIMEOUT = 10.0

Fetch = Callable[[str], Awaitable[bytes]]


class ImageUploader:
    """URL → ``img_`` key, with an LRU cache so a repeated image is uploaded once."""

    def __init__(
        self, client: LarkClient, *, fetch: Fetch | None = None, cache_size: int = 512
    ) -> None:
        self._client = client
        self._fetch = fetch or self._download
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def keys(self, urls: Iterable[str]) -> dict[str, str]:
        """Keys for every URL that could be fetched and uploaded (in parallel)."""
        wanted = list(dict.fromkeys(urls))
        results = await asyncio.gather(*(self.key(url) for url in wanted))
        return {url: key for url, key in zip(wanted, results, strict=True) if key}

    async def key(self, url: str) -> str | None:
        if url in self._cache:
            self._cache.move_to_end(url)
            return self._cache[url]
        try:
            data = await self._fetch(url)
            key = await self.upload(data, url.rsplit("/", 1)[-1] or "image")
        except (aiohttp.ClientError, TimeoutError, LarkAPIError, ValueError) as error:
            log.info("Image %s stays a link: %s", url, error)
            return None
        self._cache[url] = key
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key

    async def upload(self, data: bytes, filename: str = "image") -> str:
        """Upload image bytes as a message image; return its ``img_`` key."""
        if not data or len(data) > MAX_IMAGE_BYTES:
            raise ValueError(f"image of {len(data)} bytes (Feishu takes 1 B to 10 MB)")
        form = aiohttp.FormData()
        form.add_field("image_type", "message")
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        body = await self._client.request("POST", "/open-apis/im/v1/images", data=form)
        key = (body.get("data") or {}).get("image_key")
        if not isinstance(key, str) or not key.startswith("img_"):
            raise ValueError("upload answered without an img_ key")
        return key

    async def _download(self, url: str) -> bytes:
        # Its own session: third-party hosts get neither the Feishu client's settings nor,
        # by construction, its Authorization header.
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT)
            self._session = aiohttp.ClientSession(timeout=timeout)
        async with self._session.get(url) as resp:
            resp.raise_for_status()
            if not resp.headers.get("Content-Type", "image/").startswith("image/"):
                raise ValueError(f"not an image ({resp.headers.get('Content-Type')})")
            data = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise ValueError("image larger than 10 MB")
        return bytes(data)
