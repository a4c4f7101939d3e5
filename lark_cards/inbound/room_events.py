"""Chat membership and reaction events → small typed records. Pure: no I/O, no Errbot.

Membership (schema 2.0 ``event`` objects, from larksuite/oapi-sdk-python
``lark_oapi/api/im/v1/model/p2_im_chat_member_{bot,user}_{added,deleted}_v1.py`` and the event
pages, e.g. open.larksuite.com/document/uAjLw4CM/ukTMukTMukTM/reference/im-v1/
chat-member-bot/events/added ("机器人进群": ``chat_id``, ``operator_id{open_id,union_id,
user_id}``, ``name``, ``i18n_names``; pushed to the bot that was added; a bot inviting a bot
triggers nothing). The user events add ``users: [{name, tenant_key, user_id{open_id,union_id,
user_id}}]``.

Reactions ``im.message.reaction.created_v1`` / ``deleted_v1`` (open.feishu.cn/document/
server-docs/im-v1/message-reaction/event/created; oapi-sdk-python
``p2_im_message_reaction_{created,deleted}_v1.py``): ``message_id``, ``reaction_type{emoji_type}``,
``operator_type`` ("user" | "app"), ``user_id{open_id, union_id, user_id}`` (users), ``app_id``
(apps), ``action_time`` (ms, string). They carry no ``reaction_id`` and no author of the
reacted-to message.

As in ``events``, the parsers trust the event type the handler table chose them by.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lark_cards.transport.envelope import (
    BOT_ADDED,
    BOT_DELETED,
    REACTION_CREATED,
    USER_ADDED,
    Envelope,
    EventError,
    opt_str,
)


@dataclass(frozen=True, slots=True)
class MemberChange:
    """Who joined or left which chat, and who did it.

    ``users`` is empty for bot events (the bot itself is the subject); ``operator_open_id``
    is None when Feishu does not say (e.g. the operator is an app).
    """

    event_type: str
    chat_id: str
    operator_open_id: str | None
    chat_name: str | None = None
    users: tuple[tuple[str, str | None], ...] = ()  # (open_id, name)

    @property
    def joined(self) -> bool:
        return self.event_type in (BOT_ADDED, USER_ADDED)

    @property
    def about_bot(self) -> bool:
        return self.event_type in (BOT_ADDED, BOT_DELETED)


def parse_member_change(envelope: Envelope) -> MemberChange:
    """Read one of the four ``im.chat.member.*`` events; EventError when it is malformed."""
    event = envelope.event
    chat_id = opt_str(event.get("chat_id"))
    if chat_id is None:
        raise EventError("member event without chat_id")
    users: tuple[tuple[str, str | None], ...] = ()
    if envelope.event_type not in (BOT_ADDED, BOT_DELETED):
        users = tuple(_users(event.get("users")))
        if not users:
            raise EventError(f"{envelope.event_type} without users")
    return MemberChange(
        event_type=envelope.event_type,
        chat_id=chat_id,
        operator_open_id=_open_id(event.get("operator_id")),
        chat_name=opt_str(event.get("name")),
        users=users,
    )


def _users(raw: Any) -> Iterator[tuple[str, str | None]]:
    for user in raw if isinstance(raw, list) else ():
        open_id = _open_id(user.get("user_id")) if isinstance(user, Mapping) else None
        if open_id:
            yield open_id, opt_str(user.get("name"))


@dataclass(frozen=True, slots=True)
class ReactionChange:
    """An emoji reaction added to or removed from a message.

    ``user_open_id`` is who reacted when a user did; for an app's reaction it is None and
    ``app_id`` says which app.
    """

    added: bool
    message_id: str
    emoji_type: str
    operator_type: str  # "user" | "app"
    user_open_id: str | None = None
    app_id: str | None = None
    action_time: str = ""
    chat_id: str | None = None  # not in the documented shape; kept if sent


def parse_reaction_change(envelope: Envelope) -> ReactionChange:
    """Read a reaction created / deleted event; EventError when it is malformed."""
    event = envelope.event
    kind = event.get("reaction_type")
    emoji = opt_str(kind.get("emoji_type")) if isinstance(kind, Mapping) else None
    message_id = opt_str(event.get("message_id"))
    if message_id is None or emoji is None:
        raise EventError("reaction event without message_id or emoji_type")
    operator_type = opt_str(event.get("operator_type")) or "user"
    user_open_id = None
    if operator_type != "app":
        user_open_id = _open_id(event.get("user_id"))
        if user_open_id is None:
            raise EventError("user reaction event without user_id.open_id")
    return ReactionChange(
        added=envelope.event_type == REACTION_CREATED,
        message_id=message_id,
        emoji_type=emoji,
        operator_type=operator_type,
        user_open_id=user_open_id,
        app_id=opt_str(event.get("app_id")),
        action_time=str(event.get("action_time") or ""),
        chat_id=opt_str(event.get("chat_id")),
    )


def _open_id(ids: Any) -> str | None:
    return opt_str(ids.get("open_id")) if isinstance(ids, Mapping) else None
