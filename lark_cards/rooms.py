"""Errbot's Room methods for Feishu chats, without call storms.

``LarkRoom`` only delegates (to ``room.ops``, the room operations of the backend's
``Identities`` that built it); this module is that object. It is called from Errbot's worker
threads and reaches the event loop through ``run``, a blocking "run this request on the loop"
function the backend provides. Reads that repeat
are cached: membership (``joined``) and member lists (``occupants``) for a short TTL, since
Feishu pushes no event for every change we could rely on; chat profiles (name, description =
topic) come from the backend's ``CachedDirectory``. Writes update or drop the cached values
they make stale, and member events can do the same through ``note_joined``/``forget``.
Building identifiers never gets here, so it stays free of API calls (err-backend-slackv3 issue #56).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from errbot.backends.base import (
    RoomDoesNotExistError,
    RoomError,
    RoomNotJoinedError,
    UserDoesNotExistError,
)

from lark_cards.api import chats as api
from lark_cards.api.client import LarkClient
from lark_cards.api.errors import LarkAPIError
from lark_cards.identifiers import (
    Identities,
    LarkPerson,
    LarkRoom,
    LarkRoomOccupant,
    parse_identifier,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

Request = Callable[[LarkClient], Coroutine[Any, Any, T]]
# Runs one request on the backend's loop and waits for it (raises RuntimeError when that is
# impossible: not connected, or called on the loop thread itself).
Runner = Callable[[Request[Any]], Any]

OCCUPANTS_TTL = 60.0


class TTLCache:
    """Thread-safe ``key → value`` memo with expiry and one fetch per key at a time, so ten
    threads asking for the same member list cause one call, not ten."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._values: dict[Any, tuple[float, Any]] = {}
        self._locks: dict[Any, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, fetch: Callable[[], T]) -> T:
        hit = self._fresh(key)
        if hit is not None:
            return hit[0]
        with self._lock:
            key_lock = self._locks.setdefault(key, threading.Lock())
        with key_lock:
            hit = self._fresh(key)  # another thread may have fetched it meanwhile
            if hit is not None:
                return hit[0]
            value = fetch()
            self.put(key, value)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._values[key] = (self._clock() + self._ttl, value)

    def drop(self, key: Any) -> None:
        with self._lock:
            self._values.pop(key, None)

    def _fresh(self, key: Any) -> tuple[Any] | None:
        with self._lock:
            entry = self._values.get(key)
        if entry is not None and entry[0] > self._clock():
            return (entry[1],)
        return None


class LarkRoomOperations:
    """The real ``identifiers.RoomOperations``: Errbot room semantics over ``api.chats``.

    ``app_id`` is the bot's App ID (``cli_…``): Feishu addresses bots by it when one leaves a
    chat. ``identities`` builds the rooms it returns and holds the chat profiles;
    ``remember`` (``CachedDirectory.remember``) lets writes refresh them.
    """

    def __init__(
        self,
        run: Runner,
        *,
        app_id: str,
        identities: Identities,
        remember: Callable[[str, str, dict[str, Any]], None] | None = None,
        ttl: float = OCCUPANTS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._app_id = app_id
        self._identities = identities
        self._remember = remember
        self._cache = TTLCache(ttl, clock)

    # -- reads -----------------------------------------------------------------------------

    def exists(self, room: LarkRoom) -> bool:
        """Whether Feishu knows the chat (from the cached chat profile)."""
        return bool(self._identities.directory.chat(room.chat_id))

    def joined(self, room: LarkRoom) -> bool:
        """Whether the bot is in the chat; cached for the TTL. A failed check is "no"."""
        try:
            return self._cache.get(
                ("joined", room.chat_id), lambda: self._call(api.is_in_chat, room.chat_id)
            )
        except RoomError as error:
            log.info("Cannot tell whether the bot is in %s: %s", room.chat_id, error)
            return False

    def topic(self, room: LarkRoom) -> str | None:
        """The chat description (see ``api.chats.set_topic``); None when empty."""
        profile = self._identities.directory.chat(room.chat_id)
        if not profile:
            raise RoomNotJoinedError(f"cannot read chat {room.chat_id}: is the bot in it?")
        return str(profile.get("description") or "") or None

    def occupants(self, room: LarkRoom) -> list[LarkRoomOccupant]:
        """The chat's users (Feishu leaves bots out), cached for the TTL."""
        try:
            items = self._cache.get(
                ("members", room.chat_id), lambda: self._call(api.members, room.chat_id)
            )
        except RoomError as error:
            raise RoomNotJoinedError(f"cannot list members of {room.chat_id}: {error}") from error
        return [
            LarkRoomOccupant(item["member_id"], room, name=item.get("name"))
            for item in items
            if isinstance(item.get("member_id"), str) and item["member_id"]
        ]

    # -- changes ---------------------------------------------------------------------------

    def join(self, room: LarkRoom) -> None:
        """Join a public chat; a no-op when already in it (``CHATROOM_PRESENCE`` at connect)."""
        if self.joined(room):
            return
        self._call(api.join, room.chat_id)
        self.note_joined(room.chat_id, True)

    def leave(self, room: LarkRoom) -> None:
        self._call(api.leave, room.chat_id, self._app_id)
        self.note_joined(room.chat_id, False)

    def create(self, room: LarkRoom) -> None:
        """Errbot's ``create`` names the room first; Feishu assigns chat ids itself. So an
        existing chat is the documented no-op and anything else points to ``create_chat``."""
        if not self.exists(room):
            raise RoomDoesNotExistError(
                f"{room.chat_id} does not exist and Feishu chooses chat ids itself: "
                "create chats with LarkRoomOperations.create_chat(name)"
            )

    def create_chat(
        self,
        name: str,
        *,
        description: str | None = None,
        invite: Iterable[Any] = (),
        public: bool = False,
        uuid: str | None = None,
    ) -> LarkRoom:
        """Create a chat owned by the bot and return it (for plugins; see ``create``)."""
        data = self._call(
            api.create_chat,
            name,
            description=description,
            open_ids=[_open_id(person) for person in invite],
            chat_type="public" if public else "private",
            uuid=uuid,
        )
        chat_id = data.get("chat_id")
        if not isinstance(chat_id, str) or not chat_id:
            raise RoomError("Feishu created a chat but returned no chat_id")
        if self._remember is not None:
            self._remember("chat", chat_id, dict(data))
        self.note_joined(chat_id, True)
        return self._identities.room(chat_id, name=data.get("name") or name)

    def destroy(self, room: LarkRoom) -> None:
        """Disband the chat (the bot must own it); a chat that is gone already is a no-op."""
        if not self.exists(room):
            return
        self._call(api.disband, room.chat_id)
        self.forget(room.chat_id)
        self.note_joined(room.chat_id, False)

    def set_topic(self, room: LarkRoom, topic: str) -> None:
        self._call(api.set_topic, room.chat_id, topic)
        if self._remember is not None:
            profile = dict(self._identities.directory.chat(room.chat_id))
            self._remember("chat", room.chat_id, {**profile, "description": topic})

    def invite(self, room: LarkRoom, *people: Any) -> None:
        """Add people (identifiers or ``ou_…`` strings); say which ones Feishu refused."""
        open_ids = [_open_id(person) for person in people]
        rejected = self._call(api.add_members, room.chat_id, open_ids)
        self._cache.drop(("members", room.chat_id))
        if rejected:
            details = "; ".join(f"{key}: {', '.join(ids)}" for key, ids in rejected.items())
            raise RoomError(f"Feishu did not add everyone to {room.chat_id} ({details})")

    # -- cache upkeep (member events) -----------------------------------------------------

    def note_joined(self, chat_id: str, joined: bool) -> None:
        """Record membership learnt elsewhere (our own call, or a bot added/removed event)."""
        self._cache.put(("joined", chat_id), joined)
        self._cache.drop(("members", chat_id))

    def forget(self, chat_id: str) -> None:
        """Drop the cached member list (a user joined or left)."""
        self._cache.drop(("members", chat_id))

    # -- plumbing --------------------------------------------------------------------------

    def _call(
        self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run ``function(client, *args)`` on the loop; every failure becomes a RoomError so
        Errbot's ChatRoom plugin reports it instead of crashing the command."""
        try:
            return self._run(lambda client: function(client, *args, **kwargs))
        except LarkAPIError as error:
            raise RoomError(str(error)) from error
        except (RuntimeError, TimeoutError) as error:
            raise RoomError(f"Feishu is not reachable right now: {error}") from error


def _open_id(person: Any) -> str:
    """The open_id of an identifier or of its text form (``ou_…`` or ``oc_…/ou_…``)."""
    if isinstance(person, str):
        try:
            person = parse_identifier(person)  # only its open_id is read
        except ValueError as error:
            raise UserDoesNotExistError(str(error)) from None
    if isinstance(person, LarkPerson):
        return person.open_id
    raise UserDoesNotExistError(f"{person!r} is not a Feishu user")
