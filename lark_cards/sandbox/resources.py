"""Sandbox Open API routes around messages: reactions, uploads, downloads and people.

Split from :mod:`.openapi` (messages and tokens) and :mod:`.chats` (group chats) to keep each
module about one concern; the handlers read and change the same
:class:`~.openapi.FakeOpenPlatform` state. Uploads are read by :mod:`.forms`, which takes a
file part with or without a ``filename`` as Feishu does.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lark_cards.api.errors import (
    MESSAGE_GONE,
    NO_USER_AUTHORITY,
    REACTION_INVALID,
    UPLOAD_INVALID,
)

from .chats import bot_in, message_chat
from .forms import read_form
from .responses import authed, error, json_object, ok, refuse
from .rules import Refusal
from .state import Reaction, StoredMessage
from .uploads import FILE_LIMIT, IMAGE_LIMIT, Upload

if TYPE_CHECKING:
    from .openapi import FakeOpenPlatform

IM = "/open-apis/im/v1"
_EMOJI = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# message-resource/get error table (open.feishu.cn/document/server-docs/im-v1/message/get).
FILE_NOT_IN_MESSAGE = 234003  # "File not in message."
APP_NOT_IN_CHAT = 234004  # "App not in chat."
UNSUPPORTED_MESSAGE_TYPE = 234043  # "Unsupported message type." (cards, stickers, …)
RESOURCE_TYPES = ("image", "file")


class Resources:
    """Handlers for ``im/v1`` reactions, images, files, chats and ``contact/v3`` users."""

    def __init__(self, platform: FakeOpenPlatform) -> None:
        self.platform = platform

    def check_token(self, authorization: str) -> Refusal | None:
        return self.platform.check_token(authorization)

    def routes(self) -> list[web.RouteDef]:
        reactions = f"{IM}/messages/{{message_id}}/reactions"
        return [
            web.post(reactions, self._react),
            web.get(reactions, self._reactions),
            web.delete(reactions + "/{reaction_id}", self._unreact),
            web.post(f"{IM}/images", self._upload_image),
            web.get(f"{IM}/images/{{image_key}}", self._download_image),
            web.post(f"{IM}/files", self._upload_file),
            web.get(f"{IM}/messages/{{message_id}}/resources/{{file_key}}", self._resource),
            web.get("/open-apis/contact/v3/users/{open_id}", self._user),
        ]

    # ----- reactions -----

    def _message(self, request: web.Request) -> StoredMessage | None:
        """The message (no system notice: those are the page's, not Feishu's)."""
        return self.platform.conversations.find(request.match_info["message_id"])

    def _reachable(self, request: web.Request) -> StoredMessage | web.Response:
        return reachable(self.platform, request.match_info["message_id"])

    @authed
    async def _react(self, request: web.Request) -> web.Response:
        message = self._reachable(request)
        if isinstance(message, web.Response):
            return message
        kind = json_object(await request.read()).get("reaction_type")
        emoji = kind.get("emoji_type") if isinstance(kind, dict) else None
        if not isinstance(emoji, str) or not _EMOJI.fullmatch(emoji):
            return error(REACTION_INVALID, "reaction type is invalid")
        reaction = Reaction(
            reaction_id="ZCaCIjUBVVWSrm5L-3ZTw" + secrets.token_hex(8),
            emoji_type=emoji,
            operator_id=self.platform.app_id,
            operator_type="app",
            action_time=int(self.platform.clock() * 1000),
        )
        message.reactions.append(reaction)
        self.platform.conversations.touch(message)
        return ok(_reaction_json(reaction))

    @authed
    async def _reactions(self, request: web.Request) -> web.Response:
        message = self._reachable(request)
        if isinstance(message, web.Response):
            return message
        wanted = request.query.get("reaction_type")  # the list filter (message-reaction/list)
        items = [_reaction_json(r) for r in message.reactions if wanted in (None, r.emoji_type)]
        return ok({"items": items, "has_more": False, "page_token": ""})

    @authed
    async def _unreact(self, request: web.Request) -> web.Response:
        message = self._message(request)
        gone = message_chat(self.platform, message.chat_id) if message else None
        if gone:
            return refuse(gone)
        wanted = request.match_info["reaction_id"]
        found = [r for r in (message.reactions if message else []) if r.reaction_id == wanted]
        if message is None or not found:
            return error(REACTION_INVALID, "the reaction does not exist")
        message.reactions.remove(found[0])
        self.platform.conversations.touch(message)
        return ok(_reaction_json(found[0]))

    # ----- uploads (§4.5) -----

    @authed
    async def _upload_image(self, request: web.Request) -> web.Response:
        form = await read_form(request, IMAGE_LIMIT)
        if isinstance(form, Refusal):
            return refuse(form)
        result = self.platform.uploads.add_image(form.text("image_type"), form.data("image"))
        if isinstance(result, Refusal):
            return refuse(result)
        return ok({"image_key": result.key})

    @authed
    async def _download_image(self, request: web.Request) -> web.Response:
        upload = self.platform.uploads.images.get(request.match_info["image_key"])
        if upload is None:
            return error(UPLOAD_INVALID, "the image was not uploaded by this app")
        return image_response(upload)

    @authed
    async def _upload_file(self, request: web.Request) -> web.Response:
        """im/v1/files: the name is the ``file_name`` field (required by Feishu; the file
        part's own filename is only a fallback — the official SDK's sync client sends none)."""
        form = await read_form(request, FILE_LIMIT)
        if isinstance(form, Refusal):
            return refuse(form)
        result = self.platform.uploads.add_file(
            form.text("file_type"),
            form.text("file_name") or form.filenames.get("file"),
            form.data("file"),
            form.text("duration"),
        )
        if isinstance(result, Refusal):
            return refuse(result)
        return ok({"file_key": result.key})

    @authed
    async def _resource(self, request: web.Request) -> web.Response:
        """message-resource/get: an image or file of a message the bot can see, as bytes
        with its Content-Type; errors as JSON with the doc's codes."""
        message = self._reachable(request)
        kind = request.query.get("type")
        if isinstance(message, web.Response):
            return message
        if kind not in RESOURCE_TYPES:
            return error(UPLOAD_INVALID, "Invalid request param: type must be image or file.")
        chat = self.platform.chats.get(message.chat_id)
        if chat is not None and not bot_in(chat):
            return error(APP_NOT_IN_CHAT, "App not in chat.")
        if message.msg_type in ("interactive", "sticker", "system"):
            return error(UNSUPPORTED_MESSAGE_TYPE, "Unsupported message type.")
        key = request.match_info["file_key"]
        upload = self.platform.uploads.find(key) if (kind, key) in resource_keys(message) else None
        if upload is None:
            return error(FILE_NOT_IN_MESSAGE, "File not in message.")
        return image_response(upload)

    # ----- people -----

    @authed
    async def _user(self, request: web.Request) -> web.Response:
        user = self.platform.users.get(request.match_info["open_id"])
        if user is None:
            return error(NO_USER_AUTHORITY, "no user authority error")
        return ok({"user": user})


def image_response(upload: Upload) -> web.Response:
    return web.Response(body=upload.data, content_type=upload.content_type)


def resource_keys(message: StoredMessage) -> set[tuple[str, str]]:
    """``(type, key)`` of every resource in a message, ``type`` as the download names it:
    "image" for images (a post's ``img``, a video's cover), "file" for files, audio, video."""
    content = message.content
    nodes: list[Mapping[str, Any]] = [content]
    if message.msg_type == "post":
        nodes = list(_post_nodes(content))
    keys: set[tuple[str, str]] = set()
    for node in nodes:
        for kind, name in (("image", "image_key"), ("file", "file_key")):
            value = node.get(name)
            if isinstance(value, str) and value:
                keys.add((kind, value))
    return keys


def _post_nodes(post: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The nodes of a post as sent (``{locale: {title, content}}``) or received (unwrapped)."""
    bodies = [post] if isinstance(post.get("content"), list) else list(post.values())
    for body in bodies:
        paragraphs = body.get("content") if isinstance(body, Mapping) else None
        for paragraph in paragraphs if isinstance(paragraphs, list) else ():
            for node in paragraph if isinstance(paragraph, list) else ():
                if isinstance(node, Mapping):
                    yield node


def reachable(platform: FakeOpenPlatform, message_id: str) -> StoredMessage | web.Response:
    """The message an API call names, or the refusal: gone or a system notice (230011), or
    its chat disbanded (232009) — for reactions, downloads, PATCH and edits alike."""
    message = platform.conversations.find(message_id)
    if message is None:
        return error(MESSAGE_GONE, "The message was withdrawn or does not exist.")
    gone = message_chat(platform, message.chat_id)
    return refuse(gone) if gone else message


def _reaction_json(reaction: Reaction) -> dict[str, Any]:
    return {
        "reaction_id": reaction.reaction_id,
        "operator": {"operator_id": reaction.operator_id, "operator_type": reaction.operator_type},
        "action_time": str(reaction.action_time),
        "reaction_type": {"emoji_type": reaction.emoji_type},
    }
