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

from . import threads
from .rules import Refusal
from .state import StoredMessage


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


def message_json(message: StoredMessage, *, updated: bool = False) -> dict[str, Any]:
    """A message as create, reply and update answer it (§4.1 response ``data``), with its
    ``root_id`` / ``parent_id`` / ``thread_id`` (:mod:`.threads`)."""
    millis = str(int(message.create_time * 1000))
    return {
        "message_id": message.message_id,
        **threads.ids(message),
        "chat_id": message.chat_id,
        "msg_type": message.msg_type,
        "create_time": millis,
        "update_time": millis,
        "deleted": False,
        "updated": updated,
        "body": {"content": json.dumps(message.content, ensure_ascii=False)},
        "sender": {"id": message.sender_id, "id_type": "app_id", "sender_type": "app"},
        "mentions": [],
    }
