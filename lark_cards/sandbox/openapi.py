"""Fake Feishu Open Platform: the Open API lark-cards calls, served by aiohttp.

It answers with Feishu's shapes and codes (docs/feishu-platform.md §3-§5): tenant tokens
that really expire, ``bot/v3/info``, send (to a chat, or a person by open_id, user_id,
union_id or email) / reply with ``uuid`` idempotency and Feishu's ``root_id`` / ``parent_id``
/ ``thread_id`` (:mod:`.threads`), PATCH of cards, PUT edits of text and posts; in
:mod:`.resources` uploads, downloads and reactions; in :mod:`.chats` every chat and
membership call of ``lark_cards.rooms``. What Feishu refuses it refuses with Feishu's code
(:mod:`.rules`): oversized bodies, cards the validator rejects, ``img_`` keys it never issued,
more than 5 messages a second to one chat, expired or unknown tokens. Everything it accepts
is kept in ``conversations`` so tests and the page can see it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from lark_cards.api.errors import (
    ACCESS_TOKEN_INVALID,
    APP_SECRET_INVALID,
    FIELD_VALIDATION_FAILED,
    INVALID_PARAM,
    MESSAGE_GONE,
    TOKEN_MISSING,
)
from lark_cards.render.cardspec import CardLimits

from . import rules, threads
from .chats import Chats, is_topic_chat, receiver_chat, sendable
from .resources import Resources, reachable
from .responses import authed, error, json_object, message_json, ok, refuse
from .rules import Refusal, SendLimits
from .state import BOT_NAME, BOT_OPEN_ID, Conversations, StoredMessage, p2p_chat_id
from .uploads import FILE_LIMIT, Uploads, sniff_image

__all__ = ["FakeOpenPlatform"]

# Feishu: a request with the same uuid succeeds at most once within an hour (§4.1).
UUID_WINDOW = 3600.0
# §4.3: only messages sent in the last 14 days can be updated.
PATCH_WINDOW = 14 * 86400.0
MAX_UUID_LEN = 50  # §4.1
MAX_EDITS = 20  # message/update: "一条消息最多可编辑 20 次"
EDITABLE_TYPES = ("text", "post")  # message/update edits only these (§4.3)
UNSUPPORTED_FOR_TYPE = 230054  # "This operation is not supported for this message type"


@dataclass
class FakeOpenPlatform:
    """The state behind the fake API; ``app()`` serves it."""

    app_id: str
    app_secret: str
    bot_open_id: str = BOT_OPEN_ID
    bot_name: str = BOT_NAME
    token_ttl: int = 7200
    clock: Callable[[], float] = time.time
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_messages: dict[str, str] = field(default_factory=dict)  # message_id → chat_id
    chat_qps: int = 5
    app_qps: int = 50
    card_limits: CardLimits = field(default_factory=CardLimits)
    refusals: list[tuple[str, Refusal]] = field(default_factory=list)  # (chat_id, refusal)
    conversations: Conversations = field(default_factory=Conversations)
    uploads: Uploads = field(default_factory=Uploads)
    dissolved: set[str] = field(default_factory=set)  # chats disbanded through the API
    chat_uuids: dict[str, tuple[float, str]] = field(default_factory=dict)  # uuid → chat
    _tokens: dict[str, float] = field(default_factory=dict)
    _by_uuid: dict[str, tuple[float, StoredMessage]] = field(default_factory=dict)
    _limits: SendLimits = field(init=False)

    def __post_init__(self) -> None:
        self._limits = SendLimits(self.clock, chat_qps=self.chat_qps, app_qps=self.app_qps)

    @property
    def messages(self) -> list[StoredMessage]:
        """Every message the bot sent, in order."""
        return self.conversations.bot_messages

    def app(self) -> web.Application:
        app = web.Application(client_max_size=FILE_LIMIT + (1 << 20))
        self.add_routes(app)
        return app

    def add_routes(self, app: web.Application) -> None:
        im = "/open-apis/im/v1"
        app.add_routes(
            [
                *Resources(self).routes(),
                *Chats(self).routes(),
                web.post("/open-apis/auth/v3/tenant_access_token/internal", self._token),
                web.get("/open-apis/bot/v3/info", self._bot_info),
                web.post(f"{im}/messages", self._send),
                web.post(f"{im}/messages/{{message_id}}/reply", self._reply),
                web.patch(f"{im}/messages/{{message_id}}", self._patch),
                web.put(f"{im}/messages/{{message_id}}", self._edit),
            ]
        )

    # ----- auth (§3) -----

    async def _token(self, request: web.Request) -> web.Response:
        """§3. Refused as Feishu refuses: an unknown app_id is 10003 "invalid param", a
        wrong secret 10014 "app secret invalid" (the bot stops on either, naming the key)."""
        from lark_cards.api.errors import APP_ID_INVALID

        body = json_object(await request.read())
        if body.get("app_id") != self.app_id:
            return error(APP_ID_INVALID, "invalid param")
        if body.get("app_secret") != self.app_secret:
            return error(APP_SECRET_INVALID, "app secret invalid")
        token = "t-" + secrets.token_hex(16)
        self._tokens[token] = self.clock() + self.token_ttl
        return web.json_response(
            {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": self.token_ttl}
        )

    def check_token(self, authorization: str) -> Refusal | None:
        if not authorization.startswith("Bearer "):
            return Refusal(TOKEN_MISSING, "Missing access token for authorization.")
        expires = self._tokens.get(authorization.removeprefix("Bearer "))
        if expires is None or expires <= self.clock():
            return Refusal(
                ACCESS_TOKEN_INVALID,
                "Invalid access token for authorization. Please make a request with token "
                "attached.",
            )
        return None

    # ----- messages (§4.1-4.3) -----

    @authed
    async def _bot_info(self, request: web.Request) -> web.Response:
        bot = {"activate_status": 2, "app_name": self.bot_name, "open_id": self.bot_open_id}
        return web.json_response({"code": 0, "msg": "ok", "bot": bot})

    @authed
    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json_object(raw)
        id_type = request.query.get("receive_id_type")
        if id_type not in rules.RECEIVE_ID_TYPES:
            return error(FIELD_VALIDATION_FAILED, "field validation failed: receive_id_type")
        receive_id = body.get("receive_id")
        if not isinstance(receive_id, str) or not receive_id:
            return error(FIELD_VALIDATION_FAILED, "field validation failed: receive_id")
        chat_id = receiver_chat(self, id_type, receive_id)
        if isinstance(chat_id, Refusal):
            return refuse(chat_id)
        return self._store(raw, body, chat_id=chat_id, parent=None)

    @authed
    async def _reply(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json_object(raw)
        target = request.match_info["message_id"]
        chat_id = self.chat_of(target)
        if chat_id is None:
            return error(MESSAGE_GONE, "The message was withdrawn or does not exist.")
        if chat_id in self.dissolved or chat_id in self.chats:
            checked = sendable(self, chat_id)
            if isinstance(checked, Refusal):
                return refuse(checked)
        parent = self._parent(target, chat_id)
        in_thread = body.get("reply_in_thread") is True
        return self._store(raw, body, chat_id=chat_id, parent=parent, in_thread=in_thread)

    def _store(
        self,
        raw: bytes,
        body: dict[str, Any],
        *,
        chat_id: str,
        parent: StoredMessage | None,
        in_thread: bool = False,
    ) -> web.Response:
        uuid = body.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or len(uuid) > MAX_UUID_LEN):
            return error(FIELD_VALIDATION_FAILED, "field validation failed: uuid")
        now = self.clock()
        if uuid and uuid in self._by_uuid and self._by_uuid[uuid][0] > now:
            return ok(message_json(self._by_uuid[uuid][1]))
        msg_type = body.get("msg_type")
        content = self._checked_content(msg_type, body.get("content"), raw)
        if isinstance(content, Refusal):
            return self._refused(chat_id, f"the {msg_type} message", content)
        refusal = self._limits.admit_send(chat_id)
        if refusal:
            return self._refused(chat_id, f"the {msg_type} message", refusal)
        message = StoredMessage(
            message_id=self.conversations.new_id(),
            chat_id=chat_id,
            msg_type=str(msg_type),
            content=content,
            uuid=uuid,
            sender_id=self.app_id,
            create_time=now,
        )
        self._place(message, parent, in_thread=in_thread)
        self.conversations.add(message)
        if uuid:
            self._by_uuid[uuid] = (now + UUID_WINDOW, message)
        return ok(message_json(message))

    def _parent(self, message_id: str, chat_id: str) -> StoredMessage:
        """The message replied to; one only ``user_messages`` knows (tests that skip the
        timeline) stands in as a parent without a thread."""
        return self.conversations.find(message_id) or StoredMessage(
            message_id=message_id, chat_id=chat_id, msg_type="text", content={}, uuid=None
        )

    def _place(self, message: StoredMessage, parent: StoredMessage | None, **how: bool) -> None:
        """Give ``message`` its reply and thread ids (a parent that starts a thread changes)."""
        had_thread = parent.thread_id if parent is not None else ""
        topic = is_topic_chat(self.chats.get(message.chat_id))
        roots = self.conversations.thread_roots
        threads.place(message, parent, topic_chat=topic, roots=roots, **how)
        if (
            parent is not None
            and parent.thread_id != had_thread
            and self.conversations.get(parent.message_id)
        ):
            self.conversations.touch(parent)

    def _checked_content(
        self, msg_type: Any, raw_content: Any, body: bytes
    ) -> dict[str, Any] | Refusal:
        content = rules.parse_content(
            msg_type, raw_content, image_keys=self.uploads.images, file_keys=self.uploads.files
        )
        if isinstance(content, Refusal):
            return content
        refusal = rules.check_body_size(str(msg_type), body)
        if refusal is None and msg_type == "interactive":
            refusal = rules.check_card(content, self.uploads.images, self.card_limits)
        return refusal or content

    @authed
    async def _patch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        message = reachable(self, request.match_info["message_id"])
        if isinstance(message, web.Response):
            return message
        if message.sender_type != "app" or message.msg_type != "interactive":
            return error(INVALID_PARAM, "only interactive messages the app sent can be updated")
        if self.clock() - message.create_time > PATCH_WINDOW:
            return error(INVALID_PARAM, "only messages sent in the last 14 days can be updated")
        content = self._checked_content("interactive", json_object(raw).get("content"), raw)
        if isinstance(content, Refusal):
            return self._refused(message.chat_id, "a card update", content)
        refusal = rules.check_patch(message.content, content) or self._limits.admit_patch(
            message.message_id
        )
        if refusal:
            return self._refused(message.chat_id, "a card update", refusal)
        self.update_card(message, content)
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    @authed
    async def _edit(self, request: web.Request) -> web.Response:
        """message/update (PUT): a text or post the app sent, at most 20 times, into new
        content of the same type (cards change by PATCH). → ``data``: the message."""
        raw = await request.read()
        body = json_object(raw)
        message = reachable(self, request.match_info["message_id"])
        if isinstance(message, web.Response):
            return message
        if message.sender_type != "app":
            return error(INVALID_PARAM, "only messages the app sent can be edited")
        if message.msg_type not in EDITABLE_TYPES:
            return error(UNSUPPORTED_FOR_TYPE, "only text and post messages can be edited")
        msg_type = body.get("msg_type")
        if msg_type != message.msg_type:
            return error(INVALID_PARAM, f"msg_type must stay {message.msg_type!r}")
        if message.edits >= MAX_EDITS:
            return error(INVALID_PARAM, f"a message can be edited at most {MAX_EDITS} times")
        content = self._checked_content(msg_type, body.get("content"), raw)
        if isinstance(content, Refusal):
            return self._refused(message.chat_id, "an edit", content)
        message.content = content
        message.edits += 1
        message.updates += 1
        self.conversations.touch(message)
        return ok(message_json(message, updated=True))

    def _refused(self, chat_id: str, what: str, refusal: Refusal) -> web.Response:
        """Answer with Feishu's refusal, and note it in the chat for the page to show."""
        self.refusals.append((chat_id, refusal))
        notice = StoredMessage(
            message_id=self.conversations.new_id(),
            chat_id=chat_id,
            msg_type="system",
            content={"text": f"Feishu refused {what}: {refusal.code} {refusal.msg}"},
            uuid=None,
            sender_type="system",
            create_time=self.clock(),
        )
        self.conversations.add(notice)
        return refuse(refusal)

    def update_card(self, message: StoredMessage, card: dict[str, Any]) -> None:
        """Replace a card in place (PATCH, or a card returned by a card callback)."""
        message.content = card
        message.updates += 1
        self.conversations.touch(message)

    def chat_of(self, message_id: str) -> str | None:
        """Chat of a message the platform knows: one the bot sent, or one a user sent (no
        system notice: there is no such message on Feishu)."""
        message = self.conversations.find(message_id)
        return message.chat_id if message else self.user_messages.get(message_id)

    def direct_chat(self, open_id: str) -> str:
        """The p2p chat between the bot and ``open_id`` (created on first use)."""
        chat_id = p2p_chat_id(open_id)
        if self.chats and chat_id not in self.chats:
            name = self.users.get(open_id, {}).get("name", open_id)
            self.chats[chat_id] = {"name": name, "chat_mode": "p2p", "members": [open_id]}
        return chat_id

    def post_user_message(
        self,
        chat_id: str,
        sender_open_id: str,
        text: str,
        *,
        reply_to: str | None = None,
        in_thread: bool = False,
        msg_type: str = "text",
        content: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """A message a simulated user sent (the page's composer; tests): text, or any
        ``msg_type`` with its received ``content`` (§1.4). ``reply_to`` makes it a reply to
        that message, ``in_thread`` a reply in its thread (:func:`.threads.place`); the
        event for it carries the ids (:func:`.threads.with_thread`)."""
        message = StoredMessage(
            message_id=self.conversations.new_id(),
            chat_id=chat_id,
            msg_type=msg_type,
            content=content if content is not None else {"text": text},
            uuid=None,
            sender_id=sender_open_id,
            sender_type="user",
            create_time=self.clock(),
        )
        if reply_to is not None and self.chat_of(reply_to) != chat_id:
            raise ValueError(f"{reply_to} is no message of {chat_id} to reply to")
        parent = self._parent(reply_to, chat_id) if reply_to is not None else None
        self._place(message, parent, in_thread=in_thread)
        self.user_messages[message.message_id] = chat_id
        return self.conversations.add(message)

    def post_user_file(
        self, chat_id: str, sender_open_id: str, data: bytes, name: str, **reply: Any
    ) -> StoredMessage:
        """An image (by its bytes) or a file a simulated user sent, with the content Feishu
        delivers (``{"image_key"}`` / ``{"file_key", "file_name"}``); the bot can download it
        through message-resource/get."""
        image = sniff_image(data) is not None
        upload = self.uploads.receive(data, name, image=image)
        if image:
            kind, content = "image", {"image_key": upload.key}
        else:
            kind, content = "file", {"file_key": upload.key, "file_name": name}
        return self.post_user_message(
            chat_id, sender_open_id, "", msg_type=kind, content=content, **reply
        )
