"""One contract for every state store: memory, SQLite and Redis (a real ``redis-server``).

Each test runs once per store, opened the way the backend opens it (``open_state``). Expiry is
real time with short TTLs, since Redis expires keys on its own clock.
"""

from __future__ import annotations

import asyncio

import pytest

from lark_cards.state import open_state

SHORT = 0.2  # a TTL that the test then outwaits
PAST_SHORT = 0.45


@pytest.fixture(params=["memory", "sqlite", "redis"])
def state_url(request, tmp_path):
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return None
    pytest.importorskip("redis", minversion="5", reason="redis package not installed")
    return request.getfixturevalue("redis_server").url


@pytest.fixture
async def store(state_url, tmp_path):
    opened = await open_state(state_url, tmp_path)
    yield opened
    await opened.close()


async def test_a_claim_is_won_once(store):
    assert await store.claim(["event:1", "message:1"], 60)
    assert not await store.claim(["event:1", "message:1"], 60)
    assert not await store.claim(["event:1"], 60)


async def test_a_claim_fails_if_any_key_is_known_and_then_records_nothing(store):
    assert await store.claim(["event:1", "message:1"], 60)
    # A redelivery under a new event_id but the same message_id is a duplicate …
    assert not await store.claim(["event:2", "message:1"], 60)
    # … and it taught the store nothing: event:2 alone is still free.
    assert await store.claim(["event:2"], 60)


async def test_a_key_named_twice_in_one_claim_is_one_key(store):
    assert await store.claim(["message:7", "message:7"], 60)
    assert not await store.claim(["message:7"], 60)


async def test_a_claim_expires_after_its_ttl(store):
    assert await store.claim(["event:short"], SHORT)
    assert await store.claim(["event:long"], 60)
    await asyncio.sleep(PAST_SHORT)
    assert not await store.claim(["event:short", "event:long"], 60)  # one is still live
    assert await store.claim(["event:short"], 60)  # the expired one counts as absent
    assert not await store.claim(["event:short"], 60)


async def test_claim_wants_a_sequence_of_keys(store):
    with pytest.raises(TypeError):
        await store.claim("event:1", 60)
    with pytest.raises(ValueError, match="at least one key"):
        await store.claim([], 60)


async def test_put_and_get_with_expiry(store):
    assert await store.get("answer:tok") is None
    await store.put("answer:tok", '{"toast": "done"}', 60)
    assert await store.get("answer:tok") == '{"toast": "done"}'
    await store.put("answer:tok", "second", 60)
    assert await store.get("answer:tok") == "second"
    await store.put("answer:brief", "soon gone", SHORT)
    await asyncio.sleep(PAST_SHORT)
    assert await store.get("answer:brief") is None
    assert await store.get("answer:tok") == "second"


async def test_a_lease_is_held_renewed_and_released_by_its_owner(store):
    assert await store.lease("leader", "a", 60)
    assert not await store.lease("leader", "b", 60)
    assert await store.lease("leader", "a", 60)  # renewal
    assert not await store.release("leader", "b")
    assert not await store.lease("leader", "b", 60)
    assert await store.release("leader", "a")
    assert not await store.release("leader", "a")
    assert await store.lease("leader", "b", 60)


async def test_an_expired_lease_can_be_taken_over(store):
    assert await store.lease("leader", "a", SHORT)
    await asyncio.sleep(PAST_SHORT)
    assert await store.lease("leader", "b", 60)
    assert not await store.lease("leader", "a", 60)
    assert await store.lease("other", "a", 60)  # leases are independent


async def test_the_inbox_hands_each_entry_to_one_owner_at_a_time(store):
    for n in (1, 2, 3):
        assert await store.inbox_add(f"ev{n}", f"payload {n}")
    assert not await store.inbox_add("ev1", "another payload")
    assert await store.inbox_claim("a", 60, 2) == [("ev1", "payload 1"), ("ev2", "payload 2")]
    assert await store.inbox_claim("b", 60, 10) == [("ev3", "payload 3")]
    assert await store.inbox_claim("c", 60, 10) == []
    # An owner gets back (and renews) what it holds.
    assert await store.inbox_claim("a", 60, 10) == [("ev1", "payload 1"), ("ev2", "payload 2")]
    await store.inbox_done("ev1")
    await store.inbox_done("ev1")  # twice is harmless
    assert await store.inbox_claim("a", 60, 10) == [("ev2", "payload 2")]
    assert await store.inbox_claim("a", 60, 0) == []


async def test_a_dead_owners_inbox_entries_pass_to_another_after_the_lease(store):
    await store.inbox_add("ev1", "one")
    await store.inbox_add("ev2", "two")
    assert len(await store.inbox_claim("dead", SHORT, 10)) == 2
    assert await store.inbox_claim("alive", 60, 10) == []
    await asyncio.sleep(PAST_SHORT)
    assert await store.inbox_claim("alive", 60, 10) == [("ev1", "one"), ("ev2", "two")]
    assert await store.inbox_claim("dead", 60, 10) == []
    await store.inbox_done("ev2")
    assert await store.inbox_claim("alive", 60, 10) == [("ev1", "one")]


async def test_an_entry_added_with_an_owner_is_leased_to_it_from_the_start(store):
    """The instance that acked an event runs it: no other instance may take it meanwhile,
    until the lease runs out (that instance died)."""
    assert await store.inbox_add("ev1", "one", "acker", SHORT)
    assert await store.inbox_claim("other", 60, 10) == []
    assert await store.inbox_claim("acker", 60, 10) == [("ev1", "one")]  # and renews it
    await asyncio.sleep(PAST_SHORT)
    assert await store.inbox_claim("other", 60, 10) == []  # renewed for 60 s just now
    await store.inbox_done("ev1")
    assert await store.inbox_add("ev2", "two", "acker", SHORT)
    await asyncio.sleep(PAST_SHORT)
    assert await store.inbox_claim("other", 60, 10) == [("ev2", "two")]
