"""Fake Feishu Open Platform (the Open API subset lark-cards calls), served by aiohttp.

It answers with Feishu's shapes and codes (reference/feishu-platform.md §3-§4): tenant tokens
that really expire, ``bot/v3/info``, send and reply with ``uuid`` idempotency, contact and chat
look-ups. Everything it receives is kept in ``messages`` so tests can assert on it.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Feishu: a request with the same uuid succeeds at most once within an hour (§4.1).
UUID_WINDOW = 3600.0


@dataclass
class SentMessage:
    """One message the bot sent, as the platform stored it."""

    message_id: str
    chat_id: str
    msg_type: str
    content: dict[str, Any]
    uuid: str | None
    reply_to: str | None = None
    reply_in_thread: bool = False


@dataclass
class FakeOpenPlatform:
    """The state behind the fake API; ``app()`` serves it."""

    app_id: str
    app_secret: str
    bot_open_id: str = "ou_bot00000000000000000000000000000"
    bot_name: str = "ChatOps Bot"
    token_ttl: int = 7200
    clock: Callable[[], float] = time.time
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: list[SentMessage] = field(default_factory=list)
    user_messages: dict[str, str] = field(default_factory=dict)  # message_id → chat_id
    _tokens: dict[str, float] = field(default_factory=dict)
    _by_uuid: dict[str, tuple[float, SentMessage]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post("/open-apis/auth/v3/tenant_access_token/internal", self._token),
                web.get("/open-apis/bot/v3/info", self._bot_info),
                web.post("/open-apis/im/v1/messages", self._send),
                web.post("/open-apis/im/v1/messages/{message_id}/reply", self._reply),
                web.get("/open-apis/contact/v3/users/{open_id}", self._user),
                web.get("/open-apis/im/v1/chats/{chat_id}", self._chat),
                web.get("/open-apis/im/v1/chats", self._chat_list),
            ]
        )
        return app

    # ----- auth -----

    async def _token(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return _error(10014, "app secret invalid", status=400)
        token = "t-" + secrets.token_hex(16)
        self._tokens[token] = self.clock() + self.token_ttl
        return web.json_response(
            {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_ttl}
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        expires = self._tokens.get(header.removeprefix("Bearer "))
        return expires is not None and expires > self.clock()

    # ----- API -----

    async def _bot_info(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _invalid_token()
        bot = {"activate_status": 2, "app_name": self.bot_name, "open_id": self.bot_open_id}
        return web.json_response({"code": 0, "msg": "ok", "bot": bot})

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _invalid_token()
        body = await _json(request)
        id_type = request.query.get("receive_id_type")
        if id_type not in ("open_id", "user_id", "union_id", "email", "chat_id"):
            return _error(99992402, "field validation failed: receive_id_type", status=400)
        receive_id = body.get("receive_id")
        chat_id = receive_id if id_type == "chat_id" else f"oc_p2p_{receive_id}"
        return self._store(body, chat_id=chat_id)

    async def _reply(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _invalid_token()
        body = await _json(request)
        target = request.match_info["message_id"]
        chat_id = self.chat_of(target)
        if chat_id is None:
            return _error(230011, "The message was withdrawn or does not exist.", status=400)
        return self._store(
            body,
            chat_id=chat_id,
            reply_to=target,
            reply_in_thread=bool(body.get("reply_in_thread")),
        )

    def _store(self, body: dict[str, Any], *, chat_id: str, **reply: Any) -> web.Response:
        uuid = body.get("uuid")
        now = self.clock()
        if uuid and uuid in self._by_uuid and self._by_uuid[uuid][0] > now:
            return _message_response(self._by_uuid[uuid][1])
        try:
            content = json.loads(body["content"])
        except (KeyError, TypeError, ValueError):
            return _error(230001, "Your request contains an invalid request parameter.", 400)
        message = SentMessage(
            message_id=f"om_fake{next(self._ids):08d}",
            chat_id=chat_id,
            msg_type=str(body.get("msg_type")),
            content=content,
            uuid=uuid,
            **reply,
        )
        self.messages.append(message)
        if uuid:
            self._by_uuid[uuid] = (now + UUID_WINDOW, message)
        return _message_response(message)

    def chat_of(self, message_id: str) -> str | None:
        """Chat of a message the platform knows: one the bot sent, or one a user sent."""
        for message in self.messages:
            if message.message_id == message_id:
                return message.chat_id
        return self.user_messages.get(message_id)

    async def _user(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _invalid_token()
        user = self.users.get(request.match_info["open_id"])
        if user is None:
            return _error(41050, "no user authority error", status=400)
        return web.json_response({"code": 0, "msg": "success", "data": {"user": user}})

    async def _chat(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _invalid_token()
        chat = self.chats.get(request.match_info["chat_id"])
        if chat is None:
            return _error(232011, "Operator can NOT be out of the chat.", status=400)
        return web.json_response({"code": 0, "msg": "success", "data": chat})

    async def _chat_list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _invalid_token()
        items = [{"chat_id": chat_id, **chat} for chat_id, chat in self.chats.items()]
        data = {"items": items, "page_token": "", "has_more": False}
        return web.json_response({"code": 0, "msg": "success", "data": data})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message_response(message: SentMessage) -> web.Response:
    data = {
        "message_id": message.message_id,
        "chat_id": message.chat_id,
        "msg_type": message.msg_type,
        "body": {"content": json.dumps(message.content, ensure_ascii=False)},
        "sender": {"id": "cli_fake", "id_type": "app_id", "sender_type": "app"},
    }
    return web.json_response({"code": 0, "msg": "success", "data": data})


def _error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"code": code, "msg": msg}, status=status, headers={"X-Tt-Logid": secrets.token_hex(8)}
    )


def _invalid_token() -> web.Response:
    return _error(
        99991663,
        "Invalid access token for authorization. Please make a request with token attached.",
    )
