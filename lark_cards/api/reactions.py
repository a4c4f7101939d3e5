"""Message reactions: add, remove and list the bot's emoji reactions.

Endpoints (https://open.feishu.cn/document/server-docs/im-v1/message-reaction/create, /delete,
/list; response fields as in the official Python SDK's
``lark_oapi/api/im/v1/model/message_reaction.py``):

- add:    ``POST   /open-apis/im/v1/messages/:message_id/reactions``
          ``{"reaction_type": {"emoji_type": "THUMBSUP"}}`` → ``data.reaction_id``
- remove: ``DELETE /open-apis/im/v1/messages/:message_id/reactions/:reaction_id``
- list:   ``GET    /open-apis/im/v1/messages/:message_id/reactions?reaction_type=…``
          → ``items[{reaction_id, operator{operator_id, operator_type}, action_time,
          reaction_type{emoji_type}}]``, paginated

Removal needs the ``reaction_id``, which Errbot plugins (Slack-style ``remove_reaction(msg,
"thumbsup")``) do not have, so :class:`ReactionBook` remembers the ids of reactions it added and
falls back to listing the message's reactions of that type added by an app. A bot can only
remove its own reactions. ``emoji_type`` names are Feishu's, case-sensitive ("THUMBSUP",
"SMILE", "DONE", "Typing"); Slack-style ``:name:`` colons are stripped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from lark_cards.api.client import LarkClient


def _reactions(message_id: str) -> str:
    return f"/open-apis/im/v1/messages/{quote(message_id, safe='')}/reactions"


def emoji_type(name: str) -> str:
    """Feishu's ``emoji_type`` for a plugin's reaction name (``":DONE:"`` → ``"DONE"``)."""
    value = name.strip().strip(":")
    if not value:
        raise ValueError("empty reaction name")
    return value


async def add_reaction(client: LarkClient, message_id: str, emoji: str) -> str:
    """React to a message; returns the ``reaction_id`` Feishu needs to remove it again."""
    body = await client.request(
        "POST", _reactions(message_id), json={"reaction_type": {"emoji_type": emoji_type(emoji)}}
    )
    reaction_id = (body.get("data") or {}).get("reaction_id")
    if not isinstance(reaction_id, str) or not reaction_id:
        raise ValueError("Feishu added the reaction but returned no reaction_id")
    return reaction_id


async def remove_reaction(client: LarkClient, message_id: str, reaction_id: str) -> None:
    """Remove one reaction by id (only the bot's own)."""
    await client.request("DELETE", f"{_reactions(message_id)}/{quote(reaction_id, safe='')}")


async def list_reactions(
    client: LarkClient, message_id: str, emoji: str | None = None
) -> list[dict[str, Any]]:
    """Every reaction on a message (of one type when ``emoji`` is given)."""
    params: dict[str, Any] = {"user_id_type": "open_id"}
    if emoji is not None:
        params["reaction_type"] = emoji_type(emoji)
    return [item async for item in client.paginate(_reactions(message_id), params)]


class ReactionBook:
    """Remembers ``(message_id, emoji_type) → reaction_id`` for reactions the bot added, so
    removing one by name costs one call; bounded, oldest entries are forgotten first."""

    def __init__(self, *, app_id: str | None = None, max_entries: int = 2048) -> None:
        self._app_id = app_id
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._max_entries = max_entries

    async def add(self, client: LarkClient, message_id: str, emoji: str) -> str:
        name = emoji_type(emoji)
        reaction_id = await add_reaction(client, message_id, name)
        self._ids[(message_id, name)] = reaction_id
        self._ids.move_to_end((message_id, name))
        while len(self._ids) > self._max_entries:
            self._ids.popitem(last=False)
        return reaction_id

    async def remove(self, client: LarkClient, message_id: str, emoji: str) -> int:
        """Remove the bot's ``emoji`` reaction(s) from the message; returns how many went.

        Not finding one is not an error (as in err-backend-slackv3: "no_reaction" is
        ignored). Only reactions of that very ``emoji_type`` are removed, even when the
        server's list is not filtered.
        """
        name = emoji_type(emoji)
        known = self._ids.pop((message_id, name), None)
        if known is not None:
            await remove_reaction(client, message_id, known)
            return 1
        removed = 0
        for item in await list_reactions(client, message_id, name):
            if self._is_ours(item, name) and isinstance(item.get("reaction_id"), str):
                await remove_reaction(client, message_id, item["reaction_id"])
                removed += 1
        return removed

    def _is_ours(self, item: Mapping[str, Any], name: str) -> bool:
        kind = item.get("reaction_type")
        if not isinstance(kind, Mapping) or kind.get("emoji_type") != name:
            return False
        operator = item.get("operator")
        if not isinstance(operator, Mapping) or operator.get("operator_type") != "app":
            return False
        return self._app_id is None or operator.get("operator_id") == self._app_id
