"""Errbot identifiers for Feishu: people, chats and people-in-chats.

Identifiers are plain values (ids plus whatever the event told us) so they pickle into plugin
storage and compare by id. Profile data Feishu does not put in events (full name, email, chat
name) is fetched lazily through the ``Identities`` that built the identifier (the backend's,
holding its profile cache and room operations), and cached there — never in a constructor, so
building identifiers costs no API calls (err-backend-slackv3 issue #56: network I/O in
``SlackPerson.__init__``). An identifier made without one (a plugin's ``LarkRoom("oc_…")``, or
one unpickled from plugin storage) asks the connected backend's (:func:`install`), and with
none connected reads only what it carries and refuses room changes.

Text forms (``str()`` round-trips through ``build_identifier``)::

    ou_xxx            LarkPerson          (open_id)
    oc_xxx            LarkRoom            (chat_id)
    oc_xxx/ou_xxx     LarkRoomOccupant    (chat_id/open_id)

``build_identifier`` also reads the form of the seed backend (errbot-backend-lark), so strings
its users saved in plugin storage or config keep working. The form is never produced::

    ou_xxx:oc_xxx:p2p     LarkPerson (the direct chat oc_xxx kept as ``client``)
    ou_xxx:oc_xxx:group   LarkRoomOccupant, as oc_xxx/ou_xxx
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

from errbot.backends.base import Person, Room, RoomError, RoomOccupant


class Directory(Protocol):
    """Looks up profiles on demand; returns ``{}`` when the lookup is impossible or fails."""

    def user(self, open_id: str) -> Mapping[str, Any]: ...

    def chat(self, chat_id: str) -> Mapping[str, Any]: ...


class _NoDirectory:
    def user(self, open_id: str) -> Mapping[str, Any]:
        return {}

    def chat(self, chat_id: str) -> Mapping[str, Any]:
        return {}


class RoomOperations(Protocol):
    """What a ``LarkRoom`` asks of Feishu; ``lark_cards.rooms.LarkRoomOperations`` is the real
    one, held by the backend's ``Identities``."""

    def exists(self, room: LarkRoom) -> bool: ...

    def joined(self, room: LarkRoom) -> bool: ...

    def join(self, room: LarkRoom) -> None: ...

    def leave(self, room: LarkRoom) -> None: ...

    def create(self, room: LarkRoom) -> None: ...

    def destroy(self, room: LarkRoom) -> None: ...

    def topic(self, room: LarkRoom) -> str | None: ...

    def set_topic(self, room: LarkRoom, topic: str) -> None: ...

    def occupants(self, room: LarkRoom) -> list[LarkRoomOccupant]: ...

    def invite(self, room: LarkRoom, *people: Any) -> None: ...


class _NoRoomOperations:
    """For identifiers no backend made: there is no one to ask."""

    def exists(self, room: LarkRoom) -> bool:
        _not_connected()

    def joined(self, room: LarkRoom) -> bool:
        _not_connected()

    def join(self, room: LarkRoom) -> None:
        _not_connected()

    def leave(self, room: LarkRoom) -> None:
        _not_connected()

    def create(self, room: LarkRoom) -> None:
        _not_connected()

    def destroy(self, room: LarkRoom) -> None:
        _not_connected()

    def topic(self, room: LarkRoom) -> str | None:
        _not_connected()

    def set_topic(self, room: LarkRoom, topic: str) -> None:
        _not_connected()

    def occupants(self, room: LarkRoom) -> list[LarkRoomOccupant]:
        _not_connected()

    def invite(self, room: LarkRoom, *people: Any) -> None:
        _not_connected()


def _not_connected() -> NoReturn:
    raise RoomError("lark-cards is not connected to Feishu")


class LarkPerson(Person):
    """A Feishu user, identified by the app-scoped ``open_id``.

    Errbot field  → Feishu field
    ``person``    → open_id (what ``BOT_ADMINS`` and ACLs match, e.g. ``"ou_84aa…"``)
    ``aclattr``   → open_id
    ``nick``      → name from the event's mention, else the contact API's ``name``
    ``fullname``  → contact API ``name`` (``contact/v3/users``, needs a contact scope)
    ``email``     → contact API ``email`` ("" when the scope is missing)
    ``client``    → the p2p chat_id when the person wrote to the bot directly
    """

    def __init__(
        self,
        open_id: str,
        *,
        name: str | None = None,
        chat_id: str | None = None,
        identities: Identities | None = None,
    ) -> None:
        if not open_id:
            raise ValueError("a LarkPerson needs an open_id")
        self._open_id = open_id
        self._name = name or None
        self._chat_id = chat_id
        self._identities = identities

    @property
    def open_id(self) -> str:
        return self._open_id

    @property
    def person(self) -> str:
        return self._open_id

    @property
    def aclattr(self) -> str:
        return self._open_id

    @property
    def client(self) -> str:
        return self._chat_id or ""

    @property
    def nick(self) -> str:
        return self._name or self.fullname or self._open_id

    @property
    def fullname(self) -> str:
        return str(
            bound(self._identities).directory.user(self._open_id).get("name") or self._name or ""
        )

    @property
    def email(self) -> str:
        return str(bound(self._identities).directory.user(self._open_id).get("email") or "")

    def _key(self) -> tuple[str, ...]:
        return ("person", self._open_id)

    def __getstate__(self) -> dict[str, Any]:
        # Plugin storage pickles identifiers: keep the ids, not the backend's live services.
        return {k: v for k, v in self.__dict__.items() if k != "_identities"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._identities = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LarkPerson) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self._open_id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"


class LarkRoom(Room):
    """A Feishu group chat, identified by ``chat_id``; its name comes from the chat API.

    Errbot's room methods (join, leave, topic, occupants, invite, ...) are delegated to the
    room operations of the ``Identities`` that built it, so the identifier stays a value.
    """

    def __init__(
        self, chat_id: str, *, name: str | None = None, identities: Identities | None = None
    ) -> None:
        if not chat_id:
            raise ValueError("a LarkRoom needs a chat_id")
        self._chat_id = chat_id
        self._name = name or None
        self._identities = identities

    @property
    def identities(self) -> Identities | None:
        """Who answers this room's questions (occupants built from it share it); None for a
        room no backend built, which then asks the running backend's (``install``)."""
        return self._identities

    @property
    def ops(self) -> RoomOperations:
        return bound(self._identities).rooms

    __getstate__ = LarkPerson.__getstate__
    __setstate__ = LarkPerson.__setstate__

    @property
    def chat_id(self) -> str:
        return self._chat_id

    @property
    def name(self) -> str:
        return self._name or str(
            bound(self._identities).directory.chat(self._chat_id).get("name") or ""
        )

    @property
    def aclattr(self) -> str:
        return self._chat_id

    @property
    def exists(self) -> bool:
        return self.ops.exists(self)

    @property
    def joined(self) -> bool:
        return self.ops.joined(self)

    def join(self, username: str | None = None, password: str | None = None) -> None:
        self.ops.join(self)

    def leave(self, reason: str | None = None) -> None:
        self.ops.leave(self)

    def create(self) -> None:
        self.ops.create(self)

    def destroy(self) -> None:
        self.ops.destroy(self)

    @property
    def topic(self) -> str | None:
        return self.ops.topic(self)

    @topic.setter
    def topic(self, topic: str) -> None:
        self.ops.set_topic(self, topic)

    @property
    def occupants(self) -> list[LarkRoomOccupant]:
        return self.ops.occupants(self)

    def invite(self, *args: Any) -> None:
        self.ops.invite(self, *args)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LarkRoom) and self._chat_id == other._chat_id

    def __hash__(self) -> int:
        return hash(("room", self._chat_id))

    def __str__(self) -> str:
        return self._chat_id

    def __repr__(self) -> str:
        return f"<LarkRoom {self._chat_id}>"


class LarkRoomOccupant(RoomOccupant, LarkPerson):
    """A user speaking in a group chat; ACLs still match on the open_id."""

    def __init__(self, open_id: str, room: LarkRoom, *, name: str | None = None) -> None:
        super().__init__(open_id, name=name, chat_id=room.chat_id, identities=room.identities)
        self._room = room

    @property
    def room(self) -> LarkRoom:
        return self._room

    def _key(self) -> tuple[str, ...]:
        return ("occupant", self._room.chat_id, self._open_id)

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self._room.chat_id}/{self._open_id}"


class Identities:
    """Builds the identifiers of one backend, bound to its profile cache and room operations.

    Every identifier the backend hands to Errbot or plugins comes from here, so ``fullname``,
    room names and ``room.join()`` reach that backend's Feishu connection — with no state on
    the classes, and nothing shared between two backends in one process (tests make dozens).
    """

    def __init__(
        self, directory: Directory | None = None, rooms: RoomOperations | None = None
    ) -> None:
        self.directory: Directory = directory or _NoDirectory()
        self.rooms: RoomOperations = rooms or _NoRoomOperations()

    def person(
        self, open_id: str, *, name: str | None = None, chat_id: str | None = None
    ) -> LarkPerson:
        return LarkPerson(open_id, name=name, chat_id=chat_id, identities=self)

    def room(self, chat_id: str, *, name: str | None = None) -> LarkRoom:
        return LarkRoom(chat_id, name=name, identities=self)

    def occupant(self, open_id: str, chat_id: str, *, name: str | None = None) -> LarkRoomOccupant:
        return LarkRoomOccupant(open_id, self.room(chat_id), name=name)

    def parse(self, text: str) -> LarkPerson | LarkRoom:
        """Inverse of ``str()`` for every identifier class (the core of ``build_identifier``)."""
        return parse_identifier(text, self)


# What identifiers made outside a backend use while none runs: no lookups, no room changes.
OFFLINE = Identities()
_running: list[Identities] = []  # the backend's, while it is connected


def install(identities: Identities) -> None:
    """Let identifiers no backend built — a plugin's ``LarkRoom("oc_…")``, one unpickled from
    plugin storage — reach this backend's profile cache and room operations while it is
    connected. The one process-wide hook, set at connect and removed by :func:`uninstall`."""
    _running.append(identities)


def uninstall(identities: Identities) -> None:
    if identities in _running:
        _running.remove(identities)


def bound(identities: Identities | None) -> Identities:
    """The identities an identifier asks: its own, else the running backend's, else none."""
    if identities is not None:
        return identities
    return _running[-1] if _running else OFFLINE


def parse_identifier(text: str, identities: Identities = OFFLINE) -> LarkPerson | LarkRoom:
    """Inverse of ``str()`` for every identifier class (and the seed's colon form)."""
    text = text.strip()
    if ":" in text:
        return _parse_seed_form(text, identities)
    if "/" in text:
        chat_id, _, open_id = text.partition("/")
        if chat_id.startswith("oc_") and open_id.startswith("ou_"):
            return identities.occupant(open_id, chat_id)
    elif text.startswith("ou_") and len(text) > 3:
        return identities.person(text)
    elif text.startswith("oc_") and len(text) > 3:
        return identities.room(text)
    raise ValueError(
        f"{text!r} is not a Feishu identifier: use an open_id (ou_…), a chat_id (oc_…) "
        "or chat_id/open_id"
    )


_OPEN_ID, _CHAT_ID = re.compile(r"ou_[A-Za-z0-9_-]+"), re.compile(r"oc_[A-Za-z0-9_-]+")


def _parse_seed_form(text: str, identities: Identities) -> LarkPerson:
    """``{open_id}:{chat_id}:{p2p|group}``, errbot-backend-lark's ``str()``; a group one is
    the person in that room (a group message's ``frm``). A wrong part is named."""
    parts = [part.strip() for part in text.split(":")]
    problem = None
    if len(parts) != 3:
        problem = f"the colon form has 3 parts, not {len(parts)}"
    elif not _OPEN_ID.fullmatch(parts[0]):
        problem = f"{parts[0]!r} is not an open_id (ou_…)"
    elif not _CHAT_ID.fullmatch(parts[1]):
        problem = f"{parts[1]!r} is not a chat_id (oc_…)"
    elif parts[2] == "p2p":
        return identities.person(parts[0], chat_id=parts[1])
    elif parts[2] == "group":
        return identities.occupant(parts[0], parts[1])
    else:
        problem = f"the chat type is {parts[2]!r}, not p2p or group"
    form = "open_id:chat_id:p2p or open_id:chat_id:group"
    raise ValueError(f"{text!r} is not a Feishu identifier: {problem} ({form})")
