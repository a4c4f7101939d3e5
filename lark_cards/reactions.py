"""Emoji reactions both ways: the bot adds/removes them, and users' reactions reach plugins.

Endpoints (open.feishu.cn/document/server-docs/im-v1/message-reaction/{create,delete,list};
parameters as generated into larksuite/lark-openapi-mcp
``src/mcp-tool/tools/zh/gen-tools/zod/im_v1.ts`` im.v1.messageReaction.*, response models
larksuite/oapi-sdk-python ``lark_oapi/api/im/v1/model/message_reaction.py``):

- add:    ``POST   /open-apis/im/v1/messages/:message_id/reactions``
          ``{"reaction_type": {"emoji_type": "THUMBSUP"}}`` → ``data.reaction_id``
- remove: ``DELETE /open-apis/im/v1/messages/:message_id/reactions/:reaction_id``
- list:   ``GET    /open-apis/im/v1/messages/:message_id/reactions?reaction_type=…``
          → ``items[{reaction_id, operator{operator_id, operator_type}, action_time,
          reaction_type{emoji_type}}]``, paginated

Removal needs the ``reaction_id``, which Errbot plugins (Slack-style ``remove_reaction(msg,
"thumbsup")``) do not have, so ``ReactionBook`` remembers the ids of reactions it added and
falls back to listing the message's reactions of that type added by an app. A bot can only
remove its own reactions. ``emoji_type`` names are Feishu's, case-sensitive ("THUMBSUP",
"SMILE", "DONE", "Typing"); Slack-style ``:name:`` colons are stripped.

Events ``im.message.reaction.created_v1`` / ``deleted_v1`` (open.feishu.cn/document/
server-docs/im-v1/message-reaction/event/created; oapi-sdk-python
``p2_im_message_reaction_{created,deleted}_v1.py``): ``message_id``,
``reaction_type{emoji_type}``, ``operator_type`` ("user" | "app"), ``user_id{open_id,
union_id, user_id}`` (users), ``app_id`` (apps), ``action_time`` (ms, string). They carry no
``reaction_id`` and no author of the reacted-to message.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from errbot.backends.base import REACTION_ADDED, REACTION_REMOVED, Reaction

from lark_cards.api import LarkClient
from lark_cards.events import Envelope, EventError
from lark_cards.identifiers import LarkPerson

REACTION_CREATED = "im.message.reaction.created_v1"
REACTION_DELETED = "im.message.reaction.deleted_v1"
REACTION_EVENTS = frozenset({REACTION_CREATED, REACTION_DELETED})


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
    params: dict[str, Any] = {"page_size": 50, "user_id_type": "open_id"}
    if emoji is not None:
        params["reaction_type"] = emoji_type(emoji)
    items: list[dict[str, Any]] = []
    while True:
        data = (await client.request("GET", _reactions(message_id), params=params)).get(
            "data"
        ) or {}
        items.extend(data.get("items") or [])
        token = data.get("page_token")
        if not data.get("has_more") or not token or token == params.get("page_token"):
            return items
        params = {**params, "page_token": token}


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

        Not finding one is not an error (as in slackv3: "no_reaction" is ignored).
        """
        name = emoji_type(emoji)
        known = self._ids.pop((message_id, name), None)
        if known is not None:
            await remove_reaction(client, message_id, known)
            return 1
        removed = 0
        for item in await list_reactions(client, message_id, name):
            if self._is_ours(item.get("operator")) and isinstance(item.get("reaction_id"), str):
                await remove_reaction(client, message_id, item["reaction_id"])
                removed += 1
        return removed

    def _is_ours(self, operator: Any) -> bool:
        if not isinstance(operator, Mapping) or operator.get("operator_type") != "app":
            return False
        return self._app_id is None or operator.get("operator_id") == self._app_id


def reaction_from_event(
    envelope: Envelope, bot_open_id: str, *, bot_app_id: str | None = None
) -> Reaction | None:
    """The Errbot ``Reaction`` for a reaction event, or None for another app's reaction.

    ``reactor`` is a ``LarkPerson`` (the event has no chat id, so no occupant); the bot's own
    reactions (``operator_type == "app"`` with our ``app_id``) get the bot as reactor so
    plugins can ignore them. ``reacted_to`` = ``{"message_id", "chat_id" (when present),
    "operator_type"}``; ``reacted_to_owner`` is None (Feishu does not say).
    """
    if envelope.event_type not in REACTION_EVENTS:
        raise EventError(f"not a reaction event: {envelope.event_type}")
    event = envelope.event
    message_id = event.get("message_id")
    kind = event.get("reaction_type")
    name = kind.get("emoji_type") if isinstance(kind, Mapping) else None
    if not isinstance(message_id, str) or not message_id or not isinstance(name, str) or not name:
        raise EventError("reaction event without message_id or emoji_type")
    operator_type = event.get("operator_type") or "user"
    if operator_type == "app":
        if bot_app_id is None or event.get("app_id") != bot_app_id:
            return None
        reactor = LarkPerson(bot_open_id)
    else:
        ids = event.get("user_id")
        open_id = ids.get("open_id") if isinstance(ids, Mapping) else None
        if not isinstance(open_id, str) or not open_id:
            raise EventError("user reaction event without user_id.open_id")
        reactor = LarkPerson(open_id)
    reacted_to: dict[str, Any] = {"message_id": message_id, "operator_type": operator_type}
    if isinstance(event.get("chat_id"), str):
        reacted_to["chat_id"] = event["chat_id"]  # not in the documented shape; kept if sent
    return Reaction(
        reactor=reactor,
        reacted_to_owner=None,
        action=REACTION_ADDED if envelope.event_type == REACTION_CREATED else REACTION_REMOVED,
        timestamp=str(event.get("action_time") or ""),
        reaction_name=name,
        reacted_to=reacted_to,
    )
