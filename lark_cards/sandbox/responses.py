"""Feishu's response shapes, shared by every sandbox Open API handler.

Success is HTTP 200 ``{"code": 0, "msg": "success", "data": …}``; a refusal is HTTP 400 (429
for the gateway limit) ``{"code": <Feishu code>, "msg": …}`` with an ``X-Tt-Logid`` header,
as Feishu answers (docs/feishu-platform.md §4.4).
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web

from .rules import Refusal


class TokenChecker(Protocol):
    def check_token(self, authorization: str) -> Refusal | None: ...


Owner = TypeVar("Owner", bound=TokenChecker)
Handler = Callable[[Owner, web.Request], Awaitable[web.Response]]


def authed(handler: Handler[Owner]) -> Handler[Owner]:
    """Refuse the request unless it carries a live tenant token (§3)."""

    @functools.wraps(handler)
    async def wrapped(self: Owner, request: web.Request) -> web.Response:
        refusal = self.check_token(request.headers.get("Authorization", ""))
        return refuse(refusal) if refusal else await handler(self, request)

    return wrapped


def ok(data: dict[str, Any]) -> web.Response:
    return web.json_response({"code": 0, "msg": "success", "data": data})


def refuse(refusal: Refusal) -> web.Response:
    return error(refusal.code, refusal.msg, refusal.status, dict(refusal.headers))


def error(
    code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None
) -> web.Response:
    headers = {"X-Tt-Logid": secrets.token_hex(8), **(headers or {})}
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; anything else reads as ``{}``."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
