"""Chat membership events → small records the backend turns into Errbot room callbacks.

Pure: no I/O. Shapes (schema 2.0 ``event`` object) from larksuite/oapi-sdk-python
``lark_oapi/api/im/v1/model/p2_im_chat_member_{bot,user}_{added,deleted}_v1.py`` and the
event pages, e.g. open.larksuite.com/document/uAjLw4CM/ukTMukTMukTM/reference/im-v1/
chat-member-bot/events/added ("机器人进群": ``chat_id``, ``operator_id{open_id,union_id,
user_id}``, ``external``, ``operator_tenant_key``, ``name``, ``i18n_names``; pushed to the bot
that was added; a bot inviting a bot triggers nothing). The user events add
``users: [{name, tenant_key, user_id{open_id,union_id,user_id}}]``.

Backend mapping: bot added → ``callback_room_joined(room, invited_by=operator)``; bot deleted →
``callback_room_left(room, kicked_by=operator)``; user added/deleted → the same callbacks with
each user as a ``LarkRoomOccupant``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lark_cards.events import Envelope, EventError

BOT_ADDED = "im.chat.member.bot.added_v1"
BOT_DELETED = "im.chat.member.bot.deleted_v1"
USER_ADDED = "im.chat.member.user.added_v1"
USER_DELETED = "im.chat.member.user.deleted_v1"  # removed by someone, or left by themselves
MEMBER_EVENTS = frozenset({BOT_ADDED, BOT_DELETED, USER_ADDED, USER_DELETED})


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
    external: bool = False

    @property
    def joined(self) -> bool:
        return self.event_type in (BOT_ADDED, USER_ADDED)

    @property
    def about_bot(self) -> bool:
        return self.event_type in (BOT_ADDED, BOT_DELETED)


def parse_member_event(envelope: Envelope) -> MemberChange:
    """Read one of the four ``im.chat.member.*`` events; EventError when it is malformed."""
    if envelope.event_type not in MEMBER_EVENTS:
        raise EventError(f"not a chat member event: {envelope.event_type}")
    event = envelope.event
    chat_id = event.get("chat_id")
    if not isinstance(chat_id, str) or not chat_id:
        raise EventError("member event without chat_id")
    users: list[tuple[str, str | None]] = []
    if envelope.event_type in (USER_ADDED, USER_DELETED):
        for user in event.get("users") or ():
            open_id = _open_id(user.get("user_id")) if isinstance(user, Mapping) else None
            if open_id:
                users.append((open_id, _str(user.get("name"))))
        if not users:
            raise EventError(f"{envelope.event_type} without users")
    return MemberChange(
        event_type=envelope.event_type,
        chat_id=chat_id,
        operator_open_id=_open_id(event.get("operator_id")),
        chat_name=_str(event.get("name")),
        users=tuple(users),
        external=bool(event.get("external")),
    )


def _open_id(ids: Any) -> str | None:
    return _str(ids.get("open_id")) if isinstance(ids, Mapping) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
