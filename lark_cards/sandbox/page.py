"""The browser page's HTTP API: the conversation, the composer, button clicks, preview.

The page itself is plain HTML/CSS/JS in ``static/`` (no build step). It loads ``/api/state``
once, then long-polls ``/api/updates?since=N`` for messages that changed (new ones, PATCHed
cards, reactions) and redraws them in place. What a user types goes through ``/api/send``:
the platform stores it and the deliverer pushes the ``im.message.receive_v1`` event to the bot,
acked and retried like Feishu (:mod:`.delivery`): over the long connection when there is a
hub (:mod:`.longconn`, whose connections the page lists and can drop or make half-open),
else by an encrypted, signed POST.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path
from typing import Any

from aiohttp import web
from yarl import URL

from . import actions
from .delivery import Attempt, Deliverer, message_envelope
from .longconn import LongConnHub
from .openapi import FakeOpenPlatform
from .preview import preview, samples
from .resources import image_response
from .state import StoredMessage
from .threads import with_thread

STATIC_DIR = Path(__file__).parent / "static"
MAX_TEXT = 150 * 1024  # what a text message may carry (§4.1)
LONG_POLL = 20.0


def _local_host(host: str) -> bool:
    """An IP literal or localhost: never a DNS name that could be rebound to 127.0.0.1."""
    try:
        name = URL(f"http://{host}").host or ""
        return name == "localhost" or bool(ipaddress.ip_address(name))
    except ValueError:
        return False


@web.middleware
async def local_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """Keep other web pages out: the page's API acts as the simulated users (BOT_ADMINS in the
    demo), so a cross-site form post or a DNS-rebound name must not reach it."""
    if not _local_host(request.host):
        return _refused(403, "the sandbox answers only on IP addresses and localhost")
    if request.method != "GET" and request.path.startswith("/api/"):
        origin = request.headers.get("Origin")
        if origin and URL(origin).raw_authority != request.host:
            return _refused(403, "cross-origin requests are not allowed")
        if request.content_type != "application/json":  # forces a CORS preflight elsewhere
            return _refused(415, "send application/json")
    return await handler(request)


class Page:
    """Routes for the page; ``verification_token`` goes into the events it delivers; ``hub``
    is the long connection the deliverer pushes through, if it does (else webhook mode);
    ``templates_dir`` the user's card templates the preview renders with."""

    def __init__(
        self,
        platform: FakeOpenPlatform,
        deliverer: Deliverer,
        *,
        verification_token: str | None = None,
        hub: LongConnHub | None = None,
        templates_dir: str | None = None,
    ) -> None:
        self.platform = platform
        self.templates_dir = templates_dir
        self.deliverer = deliverer
        self.verification_token = verification_token
        self.hub = hub
        # message_id → how its last unacked push went ("the bot answered 401: {…}").
        self.delivery_details: dict[str, str] = {}

    def add_routes(self, app: web.Application) -> None:
        app.add_routes(
            [
                web.get("/", self._index),
                web.static("/static", STATIC_DIR, append_version=False),
                web.get("/api/state", self._state),
                web.get("/api/updates", self._updates),
                web.post("/api/send", self._send),
                web.post("/api/action", self._action),
                web.post("/api/preview", self._preview),
                web.get("/api/samples", self._samples),
                web.get("/api/images/{image_key}", self._image),
                *(self.hub.page_routes() if self.hub else ()),
            ]
        )
        app.middlewares.append(local_only)
        app.on_shutdown.append(self._wake_pollers)

    async def _wake_pollers(self, _app: web.Application) -> None:
        self.platform.conversations.wake_all()

    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _state(self, _request: web.Request) -> web.Response:
        platform = self.platform
        chats = [{"chat_id": cid, **chat} for cid, chat in platform.chats.items()]
        return web.json_response(
            {
                "bot": {"open_id": platform.bot_open_id, "name": platform.bot_name},
                "users": list(platform.users.values()),
                "chats": chats,
                "mode": "webhook" if self.hub is None else "websocket",
                "bot_url": self.deliverer.url,
                "encrypted": bool(self.deliverer.encrypt_key),
                "connections": [c.to_json() for c in self.hub.connections] if self.hub else [],
                "seq": platform.conversations.seq,
                "messages": [self._view(m) for m in platform.conversations.timeline],
            }
        )

    async def _updates(self, request: web.Request) -> web.Response:
        since = _int(request.query.get("since"), 0)
        wait = min(LONG_POLL, max(0.0, _float(request.query.get("wait"), LONG_POLL)))
        conversations = self.platform.conversations
        changed = await conversations.wait(since, wait)
        chats = [{"chat_id": cid, **chat} for cid, chat in self.platform.chats.items()]
        return web.json_response(
            {"seq": conversations.seq, "messages": [self._view(m) for m in changed], "chats": chats}
        )

    def _view(self, message: StoredMessage) -> dict[str, Any]:
        """A message as the page gets it: with why its delivery failed, when it did."""
        view = message.to_json()
        detail = self.delivery_details.get(message.message_id)
        if detail is not None:
            view["delivery_detail"] = detail
        return view

    async def _send(self, request: web.Request) -> web.Response:
        body = await _body(request)
        chat_id, sender, text = _str(body, "chat_id"), _str(body, "sender"), body.get("text")
        chat = self.platform.chats.get(chat_id)
        if chat is None or sender not in chat.get("members", []):
            return _bad("unknown chat, or the sender is not a member of it")
        if not isinstance(text, str) or not text.strip() or len(text.encode()) > MAX_TEXT:
            return _bad("the text must be non-empty and at most 150 KB")
        reply_to, in_thread = body.get("reply_to"), body.get("in_thread") is True
        try:  # a reply (in its thread): the event carries root_id, parent_id, thread_id
            message = self.platform.post_user_message(
                chat_id, sender, text, reply_to=_str(body, "reply_to") or None, in_thread=in_thread
            )
        except ValueError as error:
            return _bad(f"reply_to {reply_to!r}: {error}")
        if chat.get("bot_member", True):  # a chat the bot has left hears nothing
            self._deliver(message, chat)
        return web.json_response(message.to_json())

    def _deliver(self, message: StoredMessage, chat: dict[str, Any]) -> None:
        """Push ``im.message.receive_v1`` for ``message`` and track its delivery state."""
        text, mentions = self._mentions(message.content["text"])
        payload = with_thread(
            message_envelope(
                text,
                chat_id=message.chat_id,
                sender_open_id=message.sender_id,
                chat_type="p2p" if chat.get("chat_mode") == "p2p" else "group",
                message_id=message.message_id,
                mentions=mentions,
                app_id=self.platform.app_id,
                token=self.verification_token,
            ),
            message,
        )
        message.delivery = "pending"
        last = len(self.deliverer.retry_delays)

        def record(attempt: Attempt) -> None:
            if attempt.acked:
                message.delivery = "delivered"
                self.delivery_details.pop(message.message_id, None)
            else:
                message.delivery = "failed" if attempt.number >= last else "retrying"
                self.delivery_details[message.message_id] = attempt.outcome
            self.platform.conversations.touch(message)

        self.deliverer.push(payload, on_attempt=record)

    def _mentions(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """``@Name`` of the bot or a user → Feishu's ``@_user_N`` placeholders (§1.4)."""
        people = {
            self.platform.bot_name: self.platform.bot_open_id,
            "bot": self.platform.bot_open_id,
        }
        people |= {u["name"]: open_id for open_id, u in self.platform.users.items()}
        names = sorted(people, key=len, reverse=True)
        pattern = re.compile("@(" + "|".join(re.escape(n) for n in names) + r")\b", re.IGNORECASE)
        mentions: list[dict[str, Any]] = []

        def placeholder(match: re.Match[str]) -> str:
            name = next(n for n in names if n.lower() == match.group(1).lower())
            key = f"@_user_{len(mentions) + 1}"
            shown = self.platform.bot_name if people[name] == self.platform.bot_open_id else name
            mentions.append(
                {
                    "key": key,
                    "id": {"open_id": people[name], "union_id": "", "user_id": ""},
                    "name": shown,
                    "tenant_key": "sandbox",
                }
            )
            return key

        return pattern.sub(placeholder, text), mentions

    async def _action(self, request: web.Request) -> web.Response:
        body = await _body(request)
        message_id, operator, action = (
            body.get("message_id"),
            body.get("operator"),
            body.get("action"),
        )
        if not isinstance(message_id, str) or operator not in self.platform.users:
            return _bad("message_id and a known operator are required")
        if not isinstance(action, dict):
            return _bad("action must be an object")
        shown = await actions.click(
            self.platform,
            self.deliverer,
            message_id=message_id,
            operator_open_id=operator,
            action=action,
            verification_token=self.verification_token,
        )
        return web.json_response(shown)

    async def _preview(self, request: web.Request) -> web.Response:
        markdown = (await _body(request)).get("markdown")
        if not isinstance(markdown, str):
            return _bad("markdown must be a string")
        keys = frozenset(self.platform.uploads.images)
        # Off the loop: a heavy template must not stall the fake Feishu the bot is calling.
        shown = await asyncio.to_thread(
            preview, markdown, image_keys=keys, templates_dir=self.templates_dir
        )
        return web.json_response(shown)

    async def _samples(self, _request: web.Request) -> web.Response:
        return web.json_response(samples())

    async def _image(self, request: web.Request) -> web.Response:
        upload = self.platform.uploads.images.get(request.match_info["image_key"])
        if upload is None:
            raise web.HTTPNotFound()
        return image_response(upload)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _bad(reason: str) -> web.Response:
    return _refused(400, reason)


def _refused(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _str(body: dict[str, Any], key: str) -> str:
    """``body[key]`` when it is a string, else "" (which names no chat and no user)."""
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default
