"""Room operations over the chat APIs (aioresponses), their caching, and member events.

The operations are called from Errbot's worker threads, so these tests are synchronous and
reach a LarkClient running on a loop in another thread, exactly as the backend does.
"""

from __future__ import annotations

import asyncio
import pickle
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from aioresponses import aioresponses
from api_fakes import BASE, calls
from errbot.backends.base import RoomDoesNotExistError, RoomError, RoomNotJoinedError

from lark_cards.api import chats as api
from lark_cards.api import contacts
from lark_cards.api.client import LarkClient
from lark_cards.directory import CachedDirectory
from lark_cards.identifiers import (
    Identities,
    LarkPerson,
    LarkRoom,
    LarkRoomOccupant,
    parse_identifier,
)
from lark_cards.rooms import LarkRoomOperations

APP_ID = "cli_test"
GROUP = "oc_a0553eda9014c201e6969b478895c230"
ALICE = "ou_alice000000000000000000000000000"
BOB = "ou_bob0000000000000000000000000000"
OK: dict[str, Any] = {"code": 0, "msg": "success", "data": {}}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def identities(
    m: aioresponses, loop: asyncio.AbstractEventLoop, clock: Clock
) -> Iterator[Identities]:
    """Identities and room operations wired like the backend wires them."""
    client = LarkClient(app_id=APP_ID, app_secret="s", base_url=BASE, jitter=lambda: 0.0)
    asyncio.run_coroutine_threadsafe(client.start(), loop).result(5)

    def run(request: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(request(client), loop).result(5)

    directory = CachedDirectory(
        lambda open_id: run(lambda c: contacts.user_info(c, open_id)),
        lambda chat_id: run(lambda c: api.chat_info(c, chat_id)),
    )
    identities = Identities(directory)
    operations = LarkRoomOperations(
        run, app_id=APP_ID, identities=identities, remember=directory.remember, clock=clock
    )
    identities.rooms = operations
    yield identities
    asyncio.run_coroutine_threadsafe(client.close(), loop).result(5)


@pytest.fixture
def ops(identities: Identities) -> LarkRoomOperations:
    assert isinstance(identities.rooms, LarkRoomOperations)
    return identities.rooms


@pytest.fixture
def room(identities: Identities) -> Callable[..., LarkRoom]:
    """Rooms as the backend builds them: bound to its operations and profile cache."""
    return identities.room


def api_calls(m: aioresponses) -> int:
    return sum(
        len(v) for (_, url), v in m.requests.items() if "tenant_access_token" not in url.path
    )


MEMBERS = f"/open-apis/im/v1/chats/{GROUP}/members"
MEMBERS_RE = re.compile(rf"^{re.escape(BASE + MEMBERS)}\?")
IN_CHAT_RE = re.compile(rf"^{re.escape(BASE + MEMBERS)}/is_in_chat$")
CHAT_URL = f"{BASE}/open-apis/im/v1/chats/{GROUP}"


def members_page(*people: tuple[str, str], more: str | None = None) -> dict[str, Any]:
    items = [
        {"member_id_type": "open_id", "member_id": oid, "name": name, "tenant_key": "t"}
        for oid, name in people
    ]
    data = {"items": items, "has_more": more is not None, "member_total": len(items)}
    if more:
        data["page_token"] = more
    return {"code": 0, "msg": "success", "data": data}


# ----- no call storms -------------------------------------------------------------------------


def test_building_a_hundred_identifiers_costs_no_call(ops, room, m):
    built = []
    for n in range(100):
        built.append(parse_identifier(f"oc_room{n}"))
        built.append(parse_identifier(f"oc_room{n}/ou_user{n}"))
        built.append(LarkRoomOccupant(f"ou_user{n}", room(GROUP), name=f"user {n}"))
    assert len({hash(i) for i in built}) == 300
    assert [str(i) for i in built[:2]] == ["oc_room0", "oc_room0/ou_user0"]
    assert m.requests == {}  # not even a token


def test_occupants_read_twice_cost_one_call_then_expire(ops, room, m, clock):
    m.get(MEMBERS_RE, payload=members_page((ALICE, "Alice"), (BOB, "Bob")), repeat=True)
    group = room(GROUP)
    first = group.occupants
    second = room(GROUP).occupants
    assert first == second == [LarkRoomOccupant(ALICE, group), LarkRoomOccupant(BOB, group)]
    assert [o.nick for o in first] == ["Alice", "Bob"]  # names from the list, no user lookups
    assert api_calls(m) == 1
    [call] = calls(m, "GET", MEMBERS)
    assert call.kwargs["params"] == {"member_id_type": "open_id", "page_size": 100}
    clock.now += 61
    assert len(group.occupants) == 2
    assert api_calls(m) == 2


def test_occupants_follow_pages(ops, room, m):
    m.get(MEMBERS_RE, payload=members_page((ALICE, "Alice"), more="p2"))
    m.get(MEMBERS_RE, payload=members_page((BOB, "Bob")))
    assert [o.person for o in room(GROUP).occupants] == [ALICE, BOB]
    second = calls(m, "GET", MEMBERS)[1]
    assert second.kwargs["params"]["page_token"] == "p2"


def test_concurrent_occupant_reads_share_one_call(ops, room, m):
    m.get(MEMBERS_RE, payload=members_page((ALICE, "Alice")), repeat=True)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(room(GROUP).occupants)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(results) == 8
    assert api_calls(m) == 1


def test_occupants_of_a_chat_we_cannot_read_say_not_joined(ops, room, m):
    m.get(MEMBERS_RE, status=400, payload={"code": 232011, "msg": "operator not in chat"})
    with pytest.raises(RoomNotJoinedError, match="232011"):
        _ = room(GROUP).occupants


# ----- join / leave ---------------------------------------------------------------------------


def test_join_skips_chats_the_bot_is_in(ops, room, m):
    m.get(IN_CHAT_RE, payload={"code": 0, "data": {"is_in_chat": True}})
    room(GROUP).join(username="err")
    room(GROUP).join()
    assert calls(m, "PATCH", f"{MEMBERS}/me_join") == []
    assert api_calls(m) == 1  # one membership check, cached


def test_join_calls_me_join_once_and_remembers(ops, room, m):
    m.get(IN_CHAT_RE, payload={"code": 0, "data": {"is_in_chat": False}})
    m.patch(f"{BASE}{MEMBERS}/me_join", payload=OK)
    room = room(GROUP)
    room.join()
    assert room.joined
    room.join()
    assert len(calls(m, "PATCH", f"{MEMBERS}/me_join")) == 1
    assert api_calls(m) == 2


def test_leave_removes_the_bot_by_app_id(ops, room, m):
    m.delete(MEMBERS_RE, payload=OK)
    room = room(GROUP)
    room.leave()
    [call] = calls(m, "DELETE", MEMBERS)
    assert call.kwargs["params"] == {"member_id_type": "app_id"}
    assert call.kwargs["json"] == {"id_list": [APP_ID]}
    assert not room.joined  # known from the leave, no membership check
    assert api_calls(m) == 1


def test_failed_join_is_a_room_error(ops, room, m):
    m.get(IN_CHAT_RE, payload={"code": 0, "data": {"is_in_chat": False}})
    m.patch(f"{BASE}{MEMBERS}/me_join", status=400, payload={"code": 232033, "msg": "private"})
    with pytest.raises(RoomError, match="232033"):
        room(GROUP).join()


# ----- topic, create, destroy, invite ---------------------------------------------------------


def test_topic_is_the_chat_description_and_setting_it_updates_the_cache(ops, room, m):
    m.get(CHAT_URL, payload={"code": 0, "data": {"name": "ops", "description": "on call: bob"}})
    m.put(CHAT_URL, payload=OK)
    room = room(GROUP)
    assert room.topic == "on call: bob"
    room.topic = "on call: alice"
    [put] = calls(m, "PUT", f"/open-apis/im/v1/chats/{GROUP}")
    assert put.kwargs["json"] == {"description": "on call: alice"}
    assert room.topic == "on call: alice"
    assert room.name == "ops"
    assert len(calls(m, "GET", f"/open-apis/im/v1/chats/{GROUP}")) == 1


def test_empty_topic_is_none_and_unreadable_chat_is_not_joined(ops, room, m):
    m.get(CHAT_URL, payload={"code": 0, "data": {"name": "ops", "description": ""}})
    assert room(GROUP).topic is None
    m.get(f"{BASE}/open-apis/im/v1/chats/oc_other", status=400, payload={"code": 232011})
    with pytest.raises(RoomNotJoinedError):
        _ = room("oc_other").topic


def test_create_is_a_noop_for_existing_chats_and_explains_otherwise(ops, room, m):
    m.get(CHAT_URL, payload={"code": 0, "data": {"name": "ops"}})
    room(GROUP).create()
    assert room(GROUP).exists
    m.get(f"{BASE}/open-apis/im/v1/chats/oc_missing", status=400, payload={"code": 232010})
    with pytest.raises(RoomDoesNotExistError, match="create_chat"):
        room("oc_missing").create()


def test_create_chat_creates_one_remembers_it_and_counts_as_joined(ops, room, m):
    m.post(
        re.compile(rf"^{re.escape(BASE)}/open-apis/im/v1/chats\?"),
        payload={"code": 0, "data": {"chat_id": "oc_new", "name": "incident-42"}},
    )
    created = ops.create_chat("incident-42", description="sev2", invite=[ALICE, LarkPerson(BOB)])
    assert created == LarkRoom("oc_new")
    assert created.joined  # bound to the backend's operations, no call needed
    [call] = calls(m, "POST", "/open-apis/im/v1/chats")
    assert call.kwargs["params"] == {"user_id_type": "open_id", "uuid": mock.ANY}
    assert re.fullmatch(r"[0-9a-f]{32}", call.kwargs["params"]["uuid"])
    assert call.kwargs["json"] == {
        "name": "incident-42",
        "chat_type": "private",
        "description": "sev2",
        "user_id_list": [ALICE, BOB],
    }
    assert room("oc_new").name == "incident-42"
    assert room("oc_new").joined
    assert api_calls(m) == 1


CREATE_RE = re.compile(rf"^{re.escape(BASE)}/open-apis/im/v1/chats\?")
CREATED = {"code": 0, "data": {"chat_id": "oc_new", "name": "incident-42"}}


@pytest.fixture
async def retrying_client() -> Any:
    async def no_sleep(seconds: float) -> None:
        pass

    client = LarkClient(
        app_id=APP_ID, app_secret="s", base_url=BASE, sleep=no_sleep, jitter=lambda: 0.0
    )
    await client.start()
    yield client
    await client.close()


async def test_a_retried_create_carries_the_same_uuid(m, retrying_client):
    # Feishu creates one chat per uuid (10 h), so a retry after a 5xx cannot make a second.
    m.post(CREATE_RE, status=500, payload={"code": 1, "msg": "internal error"})
    m.post(CREATE_RE, payload=CREATED)
    assert (await api.create_chat(retrying_client, "incident-42"))["chat_id"] == "oc_new"
    first, second = calls(m, "POST", "/open-apis/im/v1/chats")
    uuid = first.kwargs["params"]["uuid"]
    assert 0 < len(uuid) <= 50
    assert second.kwargs["params"]["uuid"] == uuid


async def test_each_create_gets_its_own_uuid_unless_one_is_given(m, retrying_client):
    m.post(CREATE_RE, payload=CREATED, repeat=True)
    await api.create_chat(retrying_client, "a")
    await api.create_chat(retrying_client, "b")
    await api.create_chat(retrying_client, "c", uuid="incident-42-room")
    uuids = [c.kwargs["params"]["uuid"] for c in calls(m, "POST", "/open-apis/im/v1/chats")]
    assert uuids[0] != uuids[1]
    assert uuids[2] == "incident-42-room"
    with pytest.raises(ValueError, match="50"):
        await api.create_chat(retrying_client, "d", uuid="x" * 51)
    assert len(calls(m, "POST", "/open-apis/im/v1/chats")) == 3


def test_destroy_disbands_and_is_a_noop_when_gone(ops, room, m):
    m.get(CHAT_URL, payload={"code": 0, "data": {"name": "ops"}})
    m.delete(CHAT_URL, payload=OK)
    room(GROUP).destroy()
    assert len(calls(m, "DELETE", f"/open-apis/im/v1/chats/{GROUP}")) == 1
    m.get(f"{BASE}/open-apis/im/v1/chats/oc_gone", status=400, payload={"code": 232010})
    room("oc_gone").destroy()
    assert calls(m, "DELETE", "/open-apis/im/v1/chats/oc_gone") == []


def test_invite_adds_people_and_refreshes_occupants(ops, room, m):
    m.get(MEMBERS_RE, payload=members_page((ALICE, "Alice")))
    m.post(MEMBERS_RE, payload={"code": 0, "data": {"invalid_id_list": []}})
    m.get(MEMBERS_RE, payload=members_page((ALICE, "Alice"), (BOB, "Bob")))
    room = room(GROUP)
    assert len(room.occupants) == 1
    room.invite(f"{GROUP}/{BOB}", LarkPerson(ALICE))
    [post] = calls(m, "POST", MEMBERS)
    assert post.kwargs["params"] == {"member_id_type": "open_id", "succeed_type": 1}
    assert post.kwargs["json"] == {"id_list": [BOB, ALICE]}
    assert len(room.occupants) == 2


def test_invite_reports_who_feishu_refused(ops, room, m):
    m.post(MEMBERS_RE, payload={"code": 0, "data": {"not_existed_id_list": [BOB]}})
    with pytest.raises(RoomError, match=f"not_existed_id_list: {BOB}"):
        room(GROUP).invite(BOB)
    with pytest.raises(Exception, match="not a Feishu"):
        room(GROUP).invite("bob")


async def test_add_members_sends_at_most_fifty_per_call(m):
    m.post(MEMBERS_RE, payload=OK, repeat=True)
    client = LarkClient(app_id=APP_ID, app_secret="s", base_url=BASE)
    await client.start()
    try:
        ids = [f"ou_{n:03d}" for n in range(120)] + ["ou_000"]  # duplicates are sent once
        assert await api.add_members(client, GROUP, ids) == {}
    finally:
        await client.close()
    sizes = [len(c.kwargs["json"]["id_list"]) for c in calls(m, "POST", MEMBERS)]
    assert sizes == [50, 50, 20]


def test_a_room_no_backend_built_refuses_room_operations():
    room = LarkRoom(GROUP)
    with pytest.raises(RoomError, match="not connected"):
        _ = room.exists
    with pytest.raises(RoomError, match="not connected"):
        room.join()
    with pytest.raises(RoomError, match="not connected"):
        room.join()
    with pytest.raises(RoomError, match="not connected"):
        _ = room.occupants


def test_rooms_pickle_by_id_without_the_backends_services(ops, room):
    bound = room(GROUP, name="ops")
    clone = pickle.loads(pickle.dumps(bound))
    assert clone == bound
    assert str(clone) == GROUP
    assert clone.name == "ops"
    with pytest.raises(RoomError, match="not connected"):
        clone.join()  # unpickled: nothing to reach Feishu through


def test_member_events_update_the_caches(ops, room, m):
    m.get(MEMBERS_RE, payload=members_page((ALICE, "Alice")), repeat=True)
    assert len(room(GROUP).occupants) == 1
    ops.forget(GROUP)  # a user joined
    assert len(room(GROUP).occupants) == 1
    ops.note_joined(GROUP, False)  # the bot was removed
    assert not room(GROUP).joined
    assert api_calls(m) == 2
