"""Group chats and their members: the Feishu calls behind Errbot's Room methods.

Each function is one Open API call (or one paginated walk) with the exact shape Feishu
documents; caching and Errbot semantics live in ``lark_cards.rooms``. Sources, cited per
endpoint below:

[CM] chat-members: open.feishu.cn/document/server-docs/group/chat-member/{create,delete,get,
     me_join}; parameters as generated into larksuite/lark-openapi-mcp
     ``src/mcp-tool/tools/zh/gen-tools/zod/im_v1.ts`` (im.v1.chatMembers.*) and
     larksuite/oapi-sdk-python ``lark_oapi/api/im/v1/model/*_chat_members_*``.
[CH] chats: open.feishu.cn/document/server-docs/group/chat/{create,delete,update}; same zod
     file (im.v1.chat.create / delete / update) and oapi-sdk-python ``create_chat_*``.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from .client import LarkClient

CHATS_PATH = "/open-apis/im/v1/chats"
# [CM] "每次请求最多拉 50 个用户" / "最多移除 50 个用户或者 5 个机器人".
MAX_USERS_PER_CALL = 50
PAGE_SIZE = 100
MAX_CHAT_UUID_LEN = 50  # [CH] create: ``uuid`` (query), "最大长度：50 字符"


def _chat(chat_id: str) -> str:
    return f"{CHATS_PATH}/{quote(chat_id, safe='')}"


async def chat_info(client: LarkClient, chat_id: str) -> dict[str, Any]:
    """A chat's profile (name, description, chat_mode, …): ``GET /open-apis/im/v1/chats/:id``."""
    return (await client.request("GET", _chat(chat_id))).get("data") or {}


async def list_chats(client: LarkClient) -> list[dict[str, Any]]:
    """Every chat the bot is in: ``GET /open-apis/im/v1/chats``, paginated."""
    return [chat async for chat in client.paginate(CHATS_PATH, page_size=PAGE_SIZE)]


async def members(client: LarkClient, chat_id: str) -> list[dict[str, Any]]:
    """Every *user* in the chat: ``[{member_id, member_id_type, name, tenant_key}]``.

    [CM] ``GET /open-apis/im/v1/chats/:chat_id/members?member_id_type=open_id`` (paginated by
    ``page_token``/``has_more``). Feishu filters bots out of this list, so the bot itself and
    other apps never appear.
    """
    params = {"member_id_type": "open_id"}
    path = f"{_chat(chat_id)}/members"
    return [item async for item in client.paginate(path, params, page_size=PAGE_SIZE)]


async def is_in_chat(client: LarkClient, chat_id: str) -> bool:
    """Whether the bot (the caller's identity) is a member of the chat.

    [CM] ``GET /open-apis/im/v1/chats/:chat_id/members/is_in_chat`` → ``data.is_in_chat``
    (im.v1.chatMembers.isInChat; oapi-sdk-python ``is_in_chat_chat_members_response_body``).
    """
    body = await client.request("GET", f"{_chat(chat_id)}/members/is_in_chat")
    return bool((body.get("data") or {}).get("is_in_chat"))


async def add_members(
    client: LarkClient, chat_id: str, open_ids: Iterable[str]
) -> dict[str, list[str]]:
    """Pull users into the chat, 50 per call; returns the ids Feishu could not add.

    [CM] ``POST /open-apis/im/v1/chats/:chat_id/members?member_id_type=open_id&succeed_type=1``
    with ``{"id_list": [...]}``. ``succeed_type=1`` adds every usable id and reports the rest
    (``invalid_id_list``, ``not_existed_id_list``, ``pending_approval_id_list``) instead of
    failing the whole call. Concurrent calls on one chat can fail with 232019, hence serial.
    """
    rejected: dict[str, list[str]] = {}
    params = {"member_id_type": "open_id", "succeed_type": 1}
    for batch in _batches(open_ids, MAX_USERS_PER_CALL):
        body = await client.request(
            "POST", f"{_chat(chat_id)}/members", params=params, json={"id_list": batch}
        )
        for key, ids in (body.get("data") or {}).items():
            if isinstance(ids, list) and ids:
                rejected.setdefault(key, []).extend(ids)
    return rejected


async def join(client: LarkClient, chat_id: str) -> None:
    """The bot joins a chat by itself.

    [CM] ``PATCH /open-apis/im/v1/chats/:chat_id/members/me_join`` (no body). Only *public*
    chats (``chat_type == "public"``) accept it, and not when the chat is full.
    """
    await client.request("PATCH", f"{_chat(chat_id)}/members/me_join")


async def leave(client: LarkClient, chat_id: str, app_id: str) -> None:
    """The bot leaves a chat: it removes itself, which Feishu allows "under any conditions".

    [CM] ``DELETE /open-apis/im/v1/chats/:chat_id/members?member_id_type=app_id`` with
    ``{"id_list": ["<app_id>"]}`` — bots are addressed by their App ID (``cli_…``).
    """
    await client.request(
        "DELETE",
        f"{_chat(chat_id)}/members",
        params={"member_id_type": "app_id"},
        json={"id_list": [app_id]},
    )


async def create_chat(
    client: LarkClient,
    name: str,
    *,
    description: str | None = None,
    open_ids: Sequence[str] = (),
    chat_type: str = "private",
    uuid: str | None = None,
) -> dict[str, Any]:
    """Create a group chat owned by the bot; returns ``data`` (``chat_id``, ``name``, ...).

    [CH] ``POST /open-apis/im/v1/chats?user_id_type=open_id[&uuid=…]`` with ``name``,
    ``description``, ``user_id_list`` (≤ 50 users), ``chat_type`` (``private``|``public``).
    The same ``uuid`` creates at most one chat in 10 hours, so a retried call cannot create
    two. The calling bot joins automatically. Without a ``uuid`` one is made here, once, so
    the client's retries (5xx, timeouts) all carry it; pass your own (≤ 50 characters) to
    make a repeated *logical* create idempotent too.
    """
    if len(open_ids) > MAX_USERS_PER_CALL:
        raise ValueError(f"a chat is created with at most {MAX_USERS_PER_CALL} users")
    if not uuid:
        uuid = uuidlib.uuid4().hex  # 32 characters
    elif len(uuid) > MAX_CHAT_UUID_LEN:
        raise ValueError(f"uuid must be at most {MAX_CHAT_UUID_LEN} characters")
    params: dict[str, Any] = {"user_id_type": "open_id", "uuid": uuid}
    payload: dict[str, Any] = {"name": name, "chat_type": chat_type}
    if description is not None:
        payload["description"] = description
    if open_ids:
        payload["user_id_list"] = list(open_ids)
    body = await client.request("POST", CHATS_PATH, params=params, json=payload)
    return body.get("data") or {}


async def disband(client: LarkClient, chat_id: str) -> None:
    """Dissolve a chat; its history is not kept. Only the owner (or the creating bot with
    ``im:chat:operate_as_owner``) may do it.

    [CH] ``DELETE /open-apis/im/v1/chats/:chat_id``.
    """
    await client.request("DELETE", _chat(chat_id))


async def set_topic(client: LarkClient, chat_id: str, text: str) -> None:
    """Set what Errbot calls the room *topic*: the chat's **description** (群描述).

    Feishu chats have a name, a description and an announcement document; the description is
    the short free-text line shown under the name, the closest thing to an IRC/Slack topic
    (the announcement is a rich document with revisions, not a line of text).
    [CH] ``PUT /open-apis/im/v1/chats/:chat_id`` with ``{"description": text}`` — the update
    API only changes the fields it is given; Feishu suggests ≤ 100 characters.
    """
    await client.request("PUT", _chat(chat_id), json={"description": text})


def _batches(ids: Iterable[str], size: int) -> Iterable[list[str]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]
