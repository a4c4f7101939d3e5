"""Shared bits of the Open API tests: the fake base URL, its token answer, recorded calls,
a fake clock, and ``FakeOpenAPI`` — the one fake Open Platform behind ``LarkClient._request``.
Fault tests have theirs in ``fault_fakes``."""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import inspect
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aioresponses import aioresponses
from yarl import URL

from lark_cards.api.client import LarkClient
from lark_cards.outbound.delivery import Delivery

BASE = "https://open.feishu.test"
TOKEN_URL = f"{BASE}/open-apis/auth/v3/tenant_access_token/internal"
TOKEN_BODY = {"code": 0, "msg": "ok", "tenant_access_token": "t-1", "expire": 7200}


def calls(m: aioresponses, method: str, path: str) -> list[Any]:
    """Recorded requests to ``path`` (query ignored)."""
    return [
        call
        for (verb, url), recorded in m.requests.items()
        if verb == method and url.path == path
        for call in recorded
    ]


class FakeTime:
    """A clock that only moves when someone sleeps; sleeps are recorded.

    ``sleep`` moves the clock at once: right while one task at a time sleeps (the client, a
    limiter). ``wait`` is the sleep for several tasks on one timeline (a plugin's updates and
    the pacing of their PATCHes): it lasts until ``advance`` brings the clock to its end.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    async def wait(self, seconds: float) -> None:
        """Sleep until ``advance`` has moved the clock ``seconds`` on."""
        self.sleeps.append(seconds)
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (self.now + max(seconds, 0.0), next(self._order), wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, waking every ``wait`` at its own end, in order."""
        end = self.now + seconds
        while True:
            await _settle()
            if not self._waiting or self._waiting[0][0] > end:
                break
            self.now, _, wake = heapq.heappop(self._waiting)
            wake.set_result(None)
        self.now = end
        await _settle()


async def _settle() -> None:
    """Let every task that can run reach its next wait."""
    for _ in range(20):
        await asyncio.sleep(0)


@dataclasses.dataclass
class Call:
    """One request the fake Open Platform received."""

    method: str
    path: str
    params: dict[str, Any]
    json: Any
    form: dict[str, Any]
    thread: str = dataclasses.field(default_factory=lambda: threading.current_thread().name)
    at: float = 0.0  # when it arrived, on the client's clock (pacing checks)
    code: int | None = None  # the Feishu code it was answered with (0: done); None: no answer

    @property
    def content(self) -> Any:
        """A message's or a PATCH's ``content``, decoded (Feishu wants it as a JSON string)."""
        return json.loads(self.json["content"])


Handler = Callable[[Call], Awaitable[Any] | Any]


class FakeOpenAPI(LarkClient):
    """A ``LarkClient`` whose one network method, ``_request``, answers from memory.

    Out of the box it answers the token, bot info, message create / reply / PATCH and image
    and file uploads the way Feishu does (ids ``om_1``, ``img_1``, ``file_1`` …), and records
    every call in ``calls``. ``on(method, path, handler)`` replaces one route (a handler
    returns the body, or a ``(status, body)`` pair, and may raise or be slow); ``hold`` makes
    a route wait until the test opens it; ``refuse`` answers message sends with an error code.
    Routes match the path as sent (escapes kept) exactly, or a ``*`` segment.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("jitter", lambda: 0.0)
        super().__init__(app_id="cli_test", app_secret="s", base_url=BASE, **kwargs)
        self.calls: list[Call] = []
        self._ids = itertools.count(1)
        self._routes: dict[tuple[str, str], Handler] = {
            ("POST", "/open-apis/auth/v3/tenant_access_token/internal"): lambda _: TOKEN_BODY,
            ("GET", "/open-apis/bot/v3/info"): lambda _: {
                "code": 0,
                "bot": {"open_id": "ou_bot", "app_name": "Deploy Bot"},
            },
            ("POST", "/open-apis/im/v1/messages"): self._created,
            ("POST", "/open-apis/im/v1/messages/*/reply"): self._created,
            ("PATCH", "/open-apis/im/v1/messages/*"): lambda _: {"code": 0, "data": {}},
            ("POST", "/open-apis/im/v1/images"): lambda _: self._data(image_key=self._id("img")),
            ("POST", "/open-apis/im/v1/files"): lambda _: self._data(file_key=self._id("file")),
        }

    def on(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = handler

    def hold(self, method: str, path: str) -> asyncio.Event:
        """Make ``method path`` wait for the returned event (set it on the client's loop)."""
        gate = asyncio.Event()
        answer = self._route(method, path)

        async def held(call: Call) -> Any:
            await gate.wait()
            result = answer(call)
            return await result if inspect.isawaitable(result) else result

        self.on(method, path, held)
        return gate

    def refuse(self, decide: Callable[[Call], int | tuple[int, str] | None]) -> None:
        """Answer each message send or reply with the Feishu code ``decide`` picks for it
        (HTTP 400), or as before where it picks None. A ``(code, msg)`` pair is answered
        with that ``msg`` and a ``log_id``, as Feishu's error bodies carry one."""
        for path in ("/open-apis/im/v1/messages", "/open-apis/im/v1/messages/*/reply"):
            self.on("POST", path, _refusing(decide, self._route("POST", path)))

    def messages(self) -> list[Call]:
        """Messages created (sent or replied) and cards PATCHed, in the order they arrived."""
        return [
            call
            for call in self.calls
            if call.path.startswith("/open-apis/im/v1/messages")
            and call.method in ("POST", "PATCH")
        ]

    def texts(self) -> list[str]:
        """What each created or PATCHed message shows, as one string (for order checks)."""
        return [json.dumps(call.content, ensure_ascii=False) for call in self.messages()]

    def delivered(self) -> list[Call]:
        """The ``messages()`` Feishu accepted."""
        return [call for call in self.messages() if call.code == 0]

    def wait_messages(self, count: int, timeout: float = 5.0) -> list[Call]:
        """``messages()`` once ``count`` have arrived; from a thread other than the loop's."""
        deadline = time.monotonic() + timeout
        while len(self.messages()) < count:
            assert time.monotonic() < deadline, f"expected {count} message(s): {self.texts()}"
            time.sleep(0.01)
        return self.messages()

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: aiohttp.FormData | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout | None,  # noqa: ASYNC109 - mirrors the real signature
        max_bytes: int,
    ) -> tuple[int, Mapping[str, str], bytes]:
        path = URL(url).raw_path  # as Feishu sees it: an escaped "/" stays in its segment
        form = {field[0]["name"]: field[2] for field in data._fields} if data is not None else {}
        call = Call(method, path, dict(params or {}), json_body, form, at=self._clock())
        self.calls.append(call)
        result = self._route(method, path)(call)
        if inspect.isawaitable(result):
            result = await result
        status, body = result if isinstance(result, tuple) else (200, result)
        call.code = body.get("code", 0) if isinstance(body, dict) else 0
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        content_type = "application/octet-stream" if isinstance(body, bytes) else "application/json"
        return status, {"Content-Type": content_type}, raw[: max_bytes + 1]

    def _route(self, method: str, path: str) -> Handler:
        parts = path.split("/")
        for (verb, pattern), handler in self._routes.items():
            wanted = pattern.split("/")
            if verb != method or len(wanted) != len(parts):
                continue
            if all(w in ("*", p) for w, p in zip(wanted, parts, strict=True)):
                return handler
        return lambda _: (404, {"code": 404, "msg": f"no fake for {method} {path}"})

    def _created(self, call: Call) -> dict[str, Any]:
        return self._data(message_id=self._id("om"), create_time=str(int(time.time() * 1000)))

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    @staticmethod
    def _data(**data: Any) -> dict[str, Any]:
        return {"code": 0, "msg": "success", "data": data}


def _refusing(decide: Callable[[Call], int | tuple[int, str] | None], answer: Handler) -> Handler:
    def refusing(call: Call) -> Any:
        code = decide(call)
        if code is None:
            return answer(call)
        if isinstance(code, tuple):
            error = {"log_id": "20250101000000LOGID0000000000000"}
            return 400, {"code": code[0], "msg": code[1], "error": error}
        return 400, {"code": code, "msg": f"refused: {code}"}

    return refusing


def connect(
    bot: Any, loop: asyncio.AbstractEventLoop, fake: FakeOpenAPI | None = None
) -> FakeOpenAPI:
    """Wire a ``LarkCardsBackend`` as ``serve_once`` does, without a server: its bridge on
    ``loop`` (the ``loop`` fixture), its client and delivery path answering from ``fake``."""

    fake = fake or FakeOpenAPI()
    bot.bridge.attach(loop)
    bot.client = fake
    bot.delivery = Delivery(fake, bot.render_options, upload_images=False)
    return fake
