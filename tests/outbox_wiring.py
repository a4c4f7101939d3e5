"""The outgoing side wired as in the backend, for tests that send from another thread the way
Errbot does: a fake Open Platform, the delivery path on a loop thread, the thread-side door."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from api_fakes import Call, FakeOpenAPI

from lark_cards.api.images import ImageUploader
from lark_cards.bridge import LoopBridge
from lark_cards.outbound import Outbox
from lark_cards.outbound.delivery import Delivery
from lark_cards.render import RenderOptions

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class Wiring:
    """A fake Open Platform, the delivery path on a loop thread, and the thread-side door."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fake = FakeOpenAPI()

        async def fetch(url: str) -> bytes:
            return PNG

        uploader = ImageUploader(self.fake, fetch=fetch)
        self.delivery = Delivery(self.fake, RenderOptions(), uploader=uploader)
        self.bridge = LoopBridge()
        self.bridge.attach(loop)
        self.outbox = Outbox(self.bridge, lambda: self.delivery, progress_rate=50.0)

    def hold(self, method: str, path: str) -> Callable[[], None]:
        """Hold a route; returns the function that lets it go."""
        gate = self._on_loop(lambda: self.fake.hold(method, path))
        return lambda: self.loop.call_soon_threadsafe(gate.set)

    def _on_loop(self, make: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(5)

    def messages(self, count: int, timeout: float = 5.0) -> list[Call]:
        """Wait until ``count`` messages were created or PATCHed; return them."""
        deadline = time.monotonic() + timeout
        while len(self.fake.messages()) < count:
            assert time.monotonic() < deadline, f"only {self.fake.messages()} arrived"
            time.sleep(0.01)
        return self.fake.messages()

    def quiet(self, count: int) -> None:
        """Give a message that could overtake the chance to; none beyond ``count`` arrived."""
        time.sleep(0.2)
        assert len(self.fake.messages()) == count
