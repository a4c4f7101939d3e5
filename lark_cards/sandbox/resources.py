"""Sandbox Open API routes around messages: reactions, uploads, people and chats.

Split from :mod:`.openapi` (messages and tokens) to keep each module about one concern; the
handlers read and change the same :class:`~.openapi.FakeOpenPlatform` state.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lark_cards.api.errors import (
    MESSAGE_GONE,
    NO_USER_AUTHORITY,
    OPERATOR_NOT_IN_CHAT,
    REACTION_INVALID,
    UPLOAD_INVALID,
)

from .responses import authed, error, json_object, ok, refuse
from .rules import Refusal
from .state import Reaction, StoredMessage
from .uploads import Upload

if TYPE_CHECKING:
    from .openapi import FakeOpenPlatform

IM = "/open-apis/im/v1"
_EMOJI = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


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
            web.get("/open-apis/contact/v3/users/{open_id}", self._user),
            web.get(f"{IM}/chats/{{chat_id}}", self._chat),
            web.get(f"{IM}/chats/{{chat_id}}/members", self._members),
            web.get(f"{IM}/chats", self._chat_list),
        ]

    # ----- reactions -----

    def _message(self, request: web.Request) -> StoredMessage | None:
        return self.platform.conversations.get(request.match_info["message_id"])

    @authed
    async def _react(self, request: web.Request) -> web.Response:
        message = self._message(request)
        if message is None:
            return _gone()
        emoji = (json_object(await request.read()).get("reaction_type") or {}).get("emoji_type")
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
        message = self._message(request)
        if message is None:
            return _gone()
        items = [_reaction_json(r) for r in message.reactions]
        return ok({"items": items, "has_more": False, "page_token": ""})

    @authed
    async def _unreact(self, request: web.Request) -> web.Response:
        message = self._message(request)
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
        form = await _form(request)
        result = self.platform.uploads.add_image(_text(form, "image_type"), _bytes(form, "image"))
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
        form = await _form(request)
        result = self.platform.uploads.add_file(
            _text(form, "file_type"), _text(form, "file_name"), _bytes(form, "file")
        )
        if isinstance(result, Refusal):
            return refuse(result)
        return ok({"file_key": result.key})

    # ----- people and chats -----

    @authed
    async def _user(self, request: web.Request) -> web.Response:
        user = self.platform.users.get(request.match_info["open_id"])
        if user is None:
            return error(NO_USER_AUTHORITY, "no user authority error")
        return ok({"user": user})

    @authed
    async def _chat(self, request: web.Request) -> web.Response:
        chat = self.platform.chats.get(request.match_info["chat_id"])
        if chat is None:
            return _not_member()
        return ok(_public(chat))

    @authed
    async def _members(self, request: web.Request) -> web.Response:
        chat = self.platform.chats.get(request.match_info["chat_id"])
        if chat is None:
            return _not_member()
        users = self.platform.users
        items = [
            {"member_id": m, "member_id_type": "open_id", "name": users.get(m, {}).get("name", m)}
            for m in chat.get("members", [])
        ]
        page = {"items": items, "member_total": len(items), "has_more": False, "page_token": ""}
        return ok(page)

    @authed
    async def _chat_list(self, request: web.Request) -> web.Response:
        items = [
            {"chat_id": chat_id, **_public(chat)}
            for chat_id, chat in self.platform.chats.items()
            if chat.get("chat_mode") != "p2p"
        ]
        return ok({"items": items, "page_token": "", "has_more": False})


def image_response(upload: Upload) -> web.Response:
    return web.Response(body=upload.data, content_type=upload.content_type)


def _public(chat: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in chat.items() if k != "members"}


def _gone() -> web.Response:
    return error(MESSAGE_GONE, "The message was withdrawn or does not exist.")


def _not_member() -> web.Response:
    return error(OPERATOR_NOT_IN_CHAT, "Operator can NOT be out of the chat.")


async def _form(request: web.Request) -> dict[str, Any]:
    if not request.content_type.startswith("multipart/"):
        return {}
    return dict(await request.post())


def _text(form: dict[str, Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _bytes(form: dict[str, Any], name: str) -> bytes | None:
    value = form.get(name)
    if isinstance(value, web.FileField):
        return value.file.read()
    return value.encode() if isinstance(value, str) else None


def _reaction_json(reaction: Reaction) -> dict[str, Any]:
    return {
        "reaction_id": reaction.reaction_id,
        "operator": {"operator_id": reaction.operator_id, "operator_type": reaction.operator_type},
        "action_time": str(reaction.action_time),
        "reaction_type": {"emoji_type": reaction.emoji_type},
    }
