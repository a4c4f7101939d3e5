"""A sandbox Open Platform served on the test loop's thread, for synchronous tests.

The bot's room operations and plugin calls block an Errbot thread while the request runs on
the backend's loop; these tests do the same: the sandbox and the bot's own ``LarkClient`` live
on the ``loop`` fixture's thread, and the test thread waits for each call. Hypothesis tests
(which cannot be coroutines) drive the sandbox this way too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp.test_utils import TestServer

from lark_cards.api.client import LarkClient
from lark_cards.sandbox.delivery import message_envelope
from lark_cards.sandbox.openapi import FakeOpenPlatform
from lark_cards.sandbox.state import default_chats, default_users
from lark_cards.sandbox.threads import with_thread
from lark_cards.transport.envelope import Envelope, parse_callback

APP_ID = "cli_live"
SECRET = "live-secret"
T = TypeVar("T")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class LiveSandbox:
    """The platform, its server and a session on ``loop``; ``call`` waits for one request."""

    loop: asyncio.AbstractEventLoop
    platform: FakeOpenPlatform = field(init=False)
    base: str = ""
    token: str = ""
    _server: TestServer | None = None
    _session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self.platform = FakeOpenPlatform(
            app_id=APP_ID,
            app_secret=SECRET,
            users=default_users(),
            chats=default_chats(),
            chat_qps=1000,
            app_qps=1000,
        )

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> LiveSandbox:
        async def start() -> None:
            self._server = TestServer(self.platform.app())
            await self._server.start_server()
            self._session = aiohttp.ClientSession()

        self.run(start())
        assert self._server is not None
        self.base = str(self._server.make_url("")).rstrip("/")
        answer = self.call(
            "POST",
            "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": APP_ID, "app_secret": SECRET},
        )
        self.token = answer.json()["tenant_access_token"]
        return self

    def stop(self) -> None:
        async def stop() -> None:
            if self._session is not None:
                await self._session.close()
            if self._server is not None:
                await self._server.close()

        self.run(stop())

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Response:
        """One HTTP request to the sandbox (``kwargs`` as for aiohttp), bearing the token."""
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Authorization", f"Bearer {self.token if token is None else token}")

        async def call() -> Response:
            assert self._session is not None
            async with self._session.request(
                method, self.base + path, headers=headers, **kwargs
            ) as answer:
                return Response(answer.status, await answer.read(), answer.content_type)

        return self.run(call())

    def client(self) -> LarkClient:
        """The bot's own API client, started on the loop, pointed at the sandbox."""
        client = LarkClient(app_id=APP_ID, app_secret=SECRET, base_url=self.base)
        self.run(client.start())
        return client


def delivered_event(message: Any) -> Envelope:
    """The event the page pushes for a user's ``message``, with its thread ids, as the bot
    reads it."""
    payload = message_envelope(
        message.content.get("text", ""),
        chat_id=message.chat_id,
        sender_open_id=message.sender_id,
        message_id=message.message_id,
        app_id=APP_ID,
    )
    parsed = parse_callback(with_thread(payload, message))
    assert isinstance(parsed, Envelope)
    return parsed
