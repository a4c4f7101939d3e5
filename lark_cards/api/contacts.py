"""Who is who: the bot's own identity and users' contact records.

- ``GET /open-apis/bot/v3/info`` (https://open.feishu.cn/document/client-docs/bot-v3/obtain-bot-info):
  ``bot.open_id`` and ``bot.app_name``; this endpoint's answer has no ``data`` wrapper.
- ``GET /open-apis/contact/v3/users/:user_id?user_id_type=open_id``
  (https://open.feishu.cn/document/server-docs/contact-v3/user/get): ``data.user`` with
  ``name``, ``email`` …; needs a contact scope, so callers must expect errors.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .client import LarkClient


async def bot_info(client: LarkClient) -> dict[str, Any]:
    """The bot's own identity (``open_id``, ``app_name``)."""
    return (await client.request("GET", "/open-apis/bot/v3/info")).get("bot") or {}


async def user_info(client: LarkClient, open_id: str) -> dict[str, Any]:
    """A user's contact record (``name``, ``email``, …)."""
    resp = await client.request(
        "GET",
        f"/open-apis/contact/v3/users/{quote(open_id, safe='')}",
        params={"user_id_type": "open_id"},
    )
    return (resp.get("data") or {}).get("user") or {}
