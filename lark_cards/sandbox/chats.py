"""Sandbox Open API routes for group chats: profiles, members, and the bot's own membership.

Everything ``lark_cards.rooms`` does through ``lark_cards.api.chats`` lands here: read a chat,
list chats and members, ``is_in_chat``, add and remove members, leave (the bot removing its
own App ID), ``me_join``, create, disband and update (the topic is the description). Shapes
and codes follow Feishu's chat and chat-member docs, cited per handler
(open.feishu.cn/document/server-docs/group/chat/…, …/group/chat-member/…; response fields as in
lark-oapi's ``api/im/v1/model``).

A chat is a dict in ``platform.chats``: its public profile plus the sandbox's own keys
(:data:`PRIVATE_KEYS`) — ``members`` (user open_ids; Feishu lists no bots), ``bot_member``
(absent means the bot is in it, as in the default chats) and ``bot_owner`` (a chat the bot
created). A disbanded chat leaves ``chats`` and is remembered in ``platform.dissolved``, so
later calls get 232009 as on Feishu.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from lark_cards.api.errors import (
    BOT_NOT_IN_CHAT,
    FIELD_VALIDATION_FAILED,
    INVALID_PARAM,
    OPERATOR_NOT_IN_CHAT,
)

from .responses import authed, error, json_object, ok, refuse
from .rules import Refusal
from .state import find_user

if TYPE_CHECKING:
    from .openapi import FakeOpenPlatform

CHATS = "/open-apis/im/v1/chats"
PRIVATE_KEYS = frozenset({"members", "bot_member", "bot_owner"})

# The chat APIs' codes (error tables of the chat and chat-member docs).
CHAT_INVALID_PARAM = 232001  # "Your request contains an invalid request parameter."
CHAT_ID_INVALID = 232006  # "Your request specifies a chat_id which is invalid."
CHAT_TYPE_UNSUPPORTED = 232008  # "… a chat whose type is NOT supported currently." (me_join)
CHAT_DISSOLVED = 232009
DISSOLVED = "Your request specifies a chat which has already been dissolved."
NO_PERMISSION = 232014  # "The token used in the request does NOT have the permissions …"
USERS_NOT_VISIBLE = 232024  # "Users do not have the visibility of the app, or …"
NO_VALID_MEMBERS = 232027  # "There are no valid members in the ID list …"
# chat-member create/delete and chat/update on a direct (p2p) chat: those docs give 232008
# for an "unsupported chat_mode or chat_type"; UNCONFIRMED that a p2p chat answers exactly it.
P2P_REFUSED = Refusal(
    CHAT_TYPE_UNSUPPORTED, "Your request specifies a chat whose type is NOT supported currently."
)
JOIN_NEEDS_APPROVAL = 232075  # a public chat that asks for approval cannot be joined by API
INVALID_RECEIVE_ID = "Your request contains an invalid request parameter, ext=invalid receive_id."
MAX_IDS = 50  # users per create / add / remove call
MAX_CHAT_UUID = 50  # create: ``uuid``, "最大长度：50 字符"
CHAT_UUID_WINDOW = 10 * 3600.0  # create: the same uuid makes one chat in 10 hours
MEMBER_ID_TYPES = frozenset({"open_id", "user_id", "union_id"})
# PUT /chats/:chat_id: the text fields the sandbox keeps (the rest are settings it ignores),
# and the values the enumerated ones take (chat create/update docs).
UPDATABLE = ("name", "description", "chat_type", "group_message_type", "edit_permission")
CHOICES = {
    "chat_type": ("private", "public"),
    "group_message_type": ("chat", "thread"),
    "edit_permission": ("only_owner", "all_members"),
}


def public(chat: dict[str, Any]) -> dict[str, Any]:
    """The chat as Feishu shows it (without the sandbox's own keys)."""
    return {k: v for k, v in chat.items() if k not in PRIVATE_KEYS}


def bot_in(chat: dict[str, Any]) -> bool:
    return bool(chat.get("bot_member", True))


def is_topic_chat(chat: dict[str, Any] | None) -> bool:
    """A chat where every message is in a thread: a topic group, or a group created with
    ``group_message_type = "thread"``."""
    if not chat:
        return False
    return chat.get("chat_mode") == "topic" or chat.get("group_message_type") == "thread"


def group_chat(platform: FakeOpenPlatform, chat_id: str) -> dict[str, Any] | Refusal:
    """:func:`find_chat` for the calls only groups take (members, chat/update): a direct
    chat has no members to add or remove, no bot that can leave it, nothing to update."""
    chat = find_chat(platform, chat_id)
    if not isinstance(chat, Refusal) and chat.get("chat_mode") == "p2p":
        return P2P_REFUSED
    return chat


def message_chat(platform: FakeOpenPlatform, chat_id: str) -> Refusal | None:
    """232009 when a message's chat was disbanded (its messages went with it), else None."""
    return Refusal(CHAT_DISSOLVED, DISSOLVED) if chat_id in platform.dissolved else None


def find_chat(
    platform: FakeOpenPlatform, chat_id: str, *, member: bool = True
) -> dict[str, Any] | Refusal:
    """The chat, or Feishu's refusal: dissolved (232009), unknown (232006), or — when
    ``member`` — a chat the bot is not in (232011)."""
    if chat_id in platform.dissolved:
        return Refusal(CHAT_DISSOLVED, DISSOLVED)
    chat = platform.chats.get(chat_id)
    if chat is None:
        return Refusal(CHAT_ID_INVALID, "Your request specifies a chat_id which is invalid.")
    if member and not bot_in(chat):
        return Refusal(OPERATOR_NOT_IN_CHAT, "Operator can NOT be out of the chat.")
    return chat


def sendable(platform: FakeOpenPlatform, chat_id: str) -> str | Refusal:
    """``chat_id`` when the bot may post there; else dissolved, unknown, or 230002."""
    chat = find_chat(platform, chat_id, member=False)
    if isinstance(chat, Refusal):
        return chat
    if not bot_in(chat):
        return Refusal(BOT_NOT_IN_CHAT, "The bot is not in the chat.")
    return chat_id


def receiver_chat(platform: FakeOpenPlatform, id_type: str, receive_id: str) -> str | Refusal:
    """The chat a send goes to (§4.1): the chat itself, or the direct chat with the user that
    ``receive_id`` names as an ``open_id``, ``user_id``, ``union_id`` or ``email``. An id that
    names nobody is 230001 "invalid receive_id", as on Feishu. A platform without chats or
    users (bare tests) takes any chat id, and any open_id but no other kind of id."""
    if id_type == "chat_id":
        if receive_id in platform.dissolved or receive_id in platform.chats:
            return sendable(platform, receive_id)
        if platform.chats:
            return Refusal(BOT_NOT_IN_CHAT, "The bot is not in the chat.")
        return receive_id
    user = find_user(platform.users, id_type, receive_id)
    if user is not None:
        chat_id = platform.direct_chat(str(user["open_id"]))
    elif not platform.users and id_type == "open_id":
        chat_id = platform.direct_chat(receive_id)
    else:
        return Refusal(INVALID_PARAM, INVALID_RECEIVE_ID)
    # the same checks as a send by the direct chat's chat_id (one chat, one answer)
    return sendable(platform, chat_id) if chat_id in platform.chats else chat_id


class Chats:
    """Handlers for ``im/v1/chats`` and ``im/v1/chats/:chat_id/members``."""

    def __init__(self, platform: FakeOpenPlatform) -> None:
        self.platform = platform

    def check_token(self, authorization: str) -> Refusal | None:
        return self.platform.check_token(authorization)

    def routes(self) -> list[web.RouteDef]:
        chat = f"{CHATS}/{{chat_id}}"
        return [
            web.get(CHATS, self._list),
            web.post(CHATS, self._create),
            web.get(chat, self._get),
            web.put(chat, self._update),
            web.delete(chat, self._disband),
            web.get(f"{chat}/members", self._members),
            web.post(f"{chat}/members", self._add_members),
            web.delete(f"{chat}/members", self._remove_members),
            web.get(f"{chat}/members/is_in_chat", self._is_in_chat),
            web.patch(f"{chat}/members/me_join", self._me_join),
        ]

    # ----- reads -----

    @authed
    async def _list(self, request: web.Request) -> web.Response:
        """chat/list: the groups the bot is in (p2p chats are not listed)."""
        items = [
            {"chat_id": chat_id, **public(chat)}
            for chat_id, chat in self.platform.chats.items()
            if chat.get("chat_mode") != "p2p" and bot_in(chat)
        ]
        return ok({"items": items, "page_token": "", "has_more": False})

    @authed
    async def _get(self, request: web.Request) -> web.Response:
        """chat/get: a public chat shows its profile to a bot outside it, a private one not."""
        chat = find_chat(self.platform, request.match_info["chat_id"], member=False)
        if isinstance(chat, Refusal):
            return refuse(chat)
        if not bot_in(chat) and chat.get("chat_type") != "public":
            return error(OPERATOR_NOT_IN_CHAT, "Operator can NOT be out of the chat.")
        return ok(public(chat))

    @authed
    async def _members(self, request: web.Request) -> web.Response:
        chat = find_chat(self.platform, request.match_info["chat_id"])
        if isinstance(chat, Refusal):
            return refuse(chat)
        users = self.platform.users
        items = [
            {"member_id": m, "member_id_type": "open_id", "name": users.get(m, {}).get("name", m)}
            for m in chat.get("members", [])
        ]
        page = {"items": items, "member_total": len(items), "has_more": False, "page_token": ""}
        return ok(page)

    @authed
    async def _is_in_chat(self, request: web.Request) -> web.Response:
        """chat-member/is_in_chat → ``{"is_in_chat": bool}`` for the caller (the bot)."""
        chat = find_chat(self.platform, request.match_info["chat_id"], member=False)
        if isinstance(chat, Refusal):
            return refuse(chat)
        return ok({"is_in_chat": bot_in(chat)})

    # ----- membership -----

    @authed
    async def _add_members(self, request: web.Request) -> web.Response:
        """chat-member/create: ``?member_id_type=&succeed_type=`` with ``{"id_list": […]}``.

        succeed_type 1 adds every usable id and lists the others (``not_existed_id_list``);
        0 and 2 refuse the call when any id is unusable (232024, UNCONFIRMED which code
        Feishu gives for an id that does not exist).
        """
        chat = group_chat(self.platform, request.match_info["chat_id"])
        if isinstance(chat, Refusal):
            return refuse(chat)
        ids = _id_list(json_object(await request.read()))
        id_type = request.query.get("member_id_type", "open_id")
        if ids is None or id_type not in MEMBER_ID_TYPES:
            return error(FIELD_VALIDATION_FAILED, "field validation failed: id_list")
        if not ids:
            return error(NO_VALID_MEMBERS, "There are no valid members in the ID list.")
        found, missing = self._resolve(id_type, ids)
        if missing and request.query.get("succeed_type", "0") != "1":
            return error(USERS_NOT_VISIBLE, "Users do not have the visibility of the app.")
        members = chat.setdefault("members", [])
        members.extend(m for m in found if m not in members)
        chat["user_count"] = str(len(members))
        lists = {"invalid_id_list": [], "not_existed_id_list": missing}
        return ok({**lists, "pending_approval_id_list": []})

    @authed
    async def _remove_members(self, request: web.Request) -> web.Response:
        """chat-member/delete: users (owner only), or the bot itself by its App ID — which
        Feishu allows "under any conditions" — to leave. → ``{"invalid_id_list": […]}``."""
        chat = group_chat(self.platform, request.match_info["chat_id"])
        if isinstance(chat, Refusal):
            return refuse(chat)
        ids = _id_list(json_object(await request.read()))
        id_type = request.query.get("member_id_type", "open_id")
        if ids is None or id_type not in MEMBER_ID_TYPES | {"app_id"}:
            return error(FIELD_VALIDATION_FAILED, "field validation failed: id_list")
        if id_type == "app_id":
            invalid = [i for i in ids if i != self.platform.app_id]
            if len(invalid) < len(ids):
                chat["bot_member"] = False
            return ok({"invalid_id_list": invalid})
        if not chat.get("bot_owner"):
            return error(NO_PERMISSION, "only the chat's owner or admins can remove members")
        found, missing = self._resolve(id_type, ids)
        members = chat.setdefault("members", [])
        invalid = missing + [m for m in found if m not in members]
        chat["members"] = [m for m in members if m not in found]
        chat["user_count"] = str(len(chat["members"]))
        return ok({"invalid_id_list": invalid})

    @authed
    async def _me_join(self, request: web.Request) -> web.Response:
        """chat-member/me_join: only public chats, and not those asking for approval."""
        chat = find_chat(self.platform, request.match_info["chat_id"], member=False)
        if isinstance(chat, Refusal):
            return refuse(chat)
        if chat.get("chat_type") != "public":
            return error(CHAT_TYPE_UNSUPPORTED, "only public chats can be joined")
        if chat.get("membership_approval") == "approval_required":
            return error(JOIN_NEEDS_APPROVAL, "The public group needs to apply to join.")
        chat["bot_member"] = True
        return ok({})

    # ----- chat writes -----

    @authed
    async def _create(self, request: web.Request) -> web.Response:
        """chat/create: ``?user_id_type=&uuid=`` with ``name``, ``description``,
        ``user_id_list``, ``chat_type`` …; the bot is in it and owns it. The same ``uuid``
        within 10 hours answers with the chat it made (UNCONFIRMED: Feishu documents only
        that it creates one chat)."""
        body = json_object(await request.read())
        uuid = request.query.get("uuid", "")
        known = self.platform.chat_uuids.get(uuid) if uuid else None
        if known and known[0] > self.platform.clock() and known[1] in self.platform.chats:
            return ok({"chat_id": known[1], **public(self.platform.chats[known[1]])})
        if len(uuid) > MAX_CHAT_UUID:
            return error(CHAT_INVALID_PARAM, "uuid must be at most 50 characters")
        fields = _text_fields(body, UPDATABLE)
        raw_ids = body.get("user_id_list", [])
        ids = _id_list({"id_list": raw_ids})
        id_type = request.query.get("user_id_type", "open_id")
        if fields is None or ids is None or id_type not in MEMBER_ID_TYPES:
            return error(FIELD_VALIDATION_FAILED, "field validation failed")
        if _bad_choice(fields):
            return error(CHAT_INVALID_PARAM, _bad_choice(fields))
        found, missing = self._resolve(id_type, ids)
        if missing:
            return error(USERS_NOT_VISIBLE, "Users do not have the visibility of the app.")
        chat_id = "oc_" + secrets.token_hex(16)
        self.platform.chats[chat_id] = chat = {
            "name": "",
            "description": "",
            "chat_mode": "group",
            "chat_type": "private",
            "group_message_type": "chat",
            "external": False,
            "tenant_key": "sandbox",
            "user_count": str(len(found)),
            "bot_count": "1",
            **fields,
            "members": found,
            "bot_member": True,
            "bot_owner": True,  # Feishu omits owner_id when a bot owns the chat
        }
        if uuid:
            self.platform.chat_uuids[uuid] = (self.platform.clock() + CHAT_UUID_WINDOW, chat_id)
        return ok({"chat_id": chat_id, **public(chat)})

    @authed
    async def _update(self, request: web.Request) -> web.Response:
        """chat/update (PUT): changes only the fields given. A chat with
        ``edit_permission = only_owner`` takes changes from its owner only (232014)."""
        chat = group_chat(self.platform, request.match_info["chat_id"])
        if isinstance(chat, Refusal):
            return refuse(chat)
        fields = _text_fields(json_object(await request.read()), UPDATABLE)
        if fields is None:
            return error(FIELD_VALIDATION_FAILED, "field validation failed")
        if _bad_choice(fields):
            return error(CHAT_INVALID_PARAM, _bad_choice(fields))
        if chat.get("edit_permission") == "only_owner" and not chat.get("bot_owner"):
            return error(NO_PERMISSION, "only the chat's owner can edit its information")
        chat.update(fields)
        return ok({})

    @authed
    async def _disband(self, request: web.Request) -> web.Response:
        """chat/delete: only the owner — for a bot, a chat it created — may disband it."""
        chat_id = request.match_info["chat_id"]
        chat = find_chat(self.platform, chat_id)
        if isinstance(chat, Refusal):
            return refuse(chat)
        if not chat.get("bot_owner"):
            return error(NO_PERMISSION, "only the chat's owner can disband it")
        del self.platform.chats[chat_id]
        self.platform.dissolved.add(chat_id)
        return ok({})

    def _resolve(self, id_type: str, ids: list[str]) -> tuple[list[str], list[str]]:
        """(open_ids of the users found, the ids that name nobody)."""
        found: list[str] = []
        missing: list[str] = []
        for value in dict.fromkeys(ids):
            user = find_user(self.platform.users, id_type, value)
            if user is None:
                missing.append(value)
            elif user["open_id"] not in found:
                found.append(user["open_id"])
        return found, missing


def _id_list(body: dict[str, Any]) -> list[str] | None:
    """``id_list``: at most 50 non-empty strings, else None (field validation failed)."""
    ids = body.get("id_list")
    if not isinstance(ids, list) or len(ids) > MAX_IDS:
        return None
    if not all(isinstance(i, str) and i for i in ids):
        return None
    return list(ids)


def _text_fields(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, str] | None:
    """The named fields that are present; None when one of them is not a string."""
    fields = {name: body[name] for name in names if name in body}
    if not all(isinstance(value, str) for value in fields.values()):
        return None
    return fields


def _bad_choice(fields: dict[str, str]) -> str:
    """What is wrong with an enumerated field's value, or ""."""
    for name, allowed in CHOICES.items():
        if name in fields and fields[name] not in allowed:
            return f"{name} must be one of {', '.join(allowed)}"
    return ""
