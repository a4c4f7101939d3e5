"""``ResilientStore``: an unreachable primary is reported once, memory serves meanwhile, the
primary is probed with bounded backoff, and its return is reported once. First the switching
logic against a primary that can be taken down at will, then a real ``redis-server`` killed
and restarted on the same port."""

from __future__ import annotations

import itertools
import logging

import pytest

from lark_cards.state import MemoryStore, ResilientStore, StateUnavailable, parse_state_url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Switchable:
    """A real MemoryStore as the primary, unreachable while ``down`` (as Redis would be)."""

    label = "redis://primary.example:6379/0"

    def __init__(self, clock: Clock) -> None:
        self.store = MemoryStore(clock=clock)
        self.down = False
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        self._reach()

    def _reach(self) -> None:
        if self.down:
            raise StateUnavailable(f"{self.label}: ConnectionError: refused")

    def __getattr__(self, name):
        method = getattr(self.store, name)

        async def call(*args):
            self._reach()
            return await method(*args)

        return call


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def primary(clock):
    return Switchable(clock)


@pytest.fixture
async def store(primary, clock):
    resilient = ResilientStore(primary, min_backoff=5, max_backoff=30, clock=clock)
    await resilient.start()
    yield resilient
    await resilient.close()


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_outage_is_reported_once_and_served_from_memory(store, primary, clock, caplog):
    assert await store.claim(["event:1"], 60)
    primary.down = True
    assert await store.claim(["event:2"], 60)
    assert not await store.claim(["event:2"], 60)  # still deduplicated, in this process
    await store.put("answer:tok", "given", 60)
    assert await store.get("answer:tok") == "given"
    assert store.degraded
    [warning] = warnings(caplog)
    assert "state store redis://primary.example:6379/0 unreachable" in warning
    assert "serving with an in-memory claim" in warning
    assert await primary.store.claim(["event:2"], 60)  # the primary never saw it


async def test_the_primary_is_probed_with_bounded_backoff(store, primary, clock, caplog):
    primary.down = True
    await store.claim(["event:1"], 60)
    probes = []
    for _ in range(120):  # two minutes, a call every second
        clock.now += 1
        before = primary.pings
        await store.claim([f"event:{clock.now}"], 60)
        if primary.pings > before:
            probes.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert probes[0] == 1005  # min_backoff after the failure
    assert gaps[:3] == [10, 20, 30]
    assert set(gaps[3:]) == {30}  # capped at max_backoff
    assert len(warnings(caplog)) == 1  # failed probes are not warnings


async def test_recovery_is_reported_once_and_the_primary_used_again(store, primary, clock, caplog):
    primary.down = True
    await store.claim(["event:outage"], 60)
    primary.down = False
    clock.now += 4
    assert await store.claim(["event:early"], 60)  # no probe yet: still memory
    assert await primary.store.claim(["event:early"], 60)
    clock.now += 1
    assert await store.claim(["event:back"], 60)
    assert not store.degraded
    assert not await primary.store.claim(["event:back"], 60)  # it went to the primary
    assert len(warnings(caplog)) == 2
    assert "reachable again" in warnings(caplog)[1]
    # Taken in memory during the outage: still a duplicate now that the primary is back.
    assert not await store.claim(["event:outage"], 60)


async def test_values_given_during_an_outage_are_found_after_it(store, primary, clock):
    primary.down = True
    await store.put("answer:tok", "given in the outage", 60)
    primary.down = False
    clock.now += 5
    assert await store.get("answer:tok") == "given in the outage"
    await store.put("answer:tok", "given later", 60)
    assert await primary.store.get("answer:tok") == "given later"


async def test_no_new_leader_is_elected_while_degraded(store, primary, clock):
    assert await store.lease("leader", "a", 20)
    primary.down = True
    assert await store.lease("leader", "a", 20)  # still within the lease Redis granted
    assert not await store.lease("leader", "b", 20)
    assert not await store.lease("other", "a", 20)  # no new lease either
    clock.now += 21
    assert not await store.lease("leader", "a", 20)  # it lapsed: nobody leads now
    primary.down = False
    clock.now += 30
    assert await store.lease("leader", "b", 20)  # primary back, and a's lease gone there


async def test_a_release_while_degraded_drops_the_local_lease(store, primary):
    assert await store.lease("leader", "a", 20)
    primary.down = True
    assert await store.release("leader", "a")
    assert not await store.lease("leader", "a", 20)


async def test_inbox_work_done_during_an_outage_reaches_the_primary(store, primary, clock):
    assert await store.inbox_add("ev-before", "p1")
    assert await store.inbox_claim("me", 60, 10) == [("ev-before", "p1")]
    primary.down = True
    await store.inbox_done("ev-before")  # the primary cannot hear it now
    assert await store.inbox_add("ev-during", "p2")  # kept in memory
    primary.down = False
    clock.now += 5
    # Back: the done is replayed, and the entry kept in memory is still offered.
    assert await store.inbox_claim("me", 60, 10) == [("ev-during", "p2")]
    assert await primary.store.inbox_claim("someone-else", 60, 10) == []
    await store.inbox_done("ev-during")
    assert await store.inbox_claim("me", 60, 10) == []


async def test_an_outage_at_start_up_is_reported_at_start_up(primary, clock, caplog):
    primary.down = True
    store = ResilientStore(primary, clock=clock)
    await store.start()
    assert store.degraded
    assert len(warnings(caplog)) == 1
    assert await store.claim(["event:1"], 60)
    await store.close()


def test_backoff_bounds_are_checked(primary):
    with pytest.raises(ValueError, match="backoff"):
        ResilientStore(primary, min_backoff=30, max_backoff=5)


async def test_a_real_redis_outage_and_return(redis_servers, caplog):
    pytest.importorskip("redis", minversion="5", reason="redis package not installed")
    import redis.asyncio

    from lark_cards.state.redis import RedisStore

    server = redis_servers(password="hunter2-secret")
    target = parse_state_url(server.url)
    clock = Clock()
    primary = RedisStore.from_url(server.url, label=target.label)
    store = ResilientStore(primary, clock=clock)
    await store.start()
    try:
        assert not store.degraded
        assert await store.claim(["event:1", "message:1"], 3600)
        assert not await store.claim(["message:1"], 3600)

        server.stop()
        assert await store.claim(["event:2", "message:2"], 3600)  # memory answers
        assert not await store.claim(["message:2"], 3600)
        assert store.degraded
        [warning] = warnings(caplog)
        assert f"127.0.0.1:{server.port}/0 unreachable" in warning

        server.start()  # same port, empty (nothing is saved)
        clock.now += 5
        assert await store.claim(["event:3"], 3600)  # probed, recovered: Redis again
        assert not store.degraded
        assert "reachable again" in warnings(caplog)[-1]
        assert len(warnings(caplog)) == 2
        client = redis.asyncio.Redis.from_url(server.url, decode_responses=True)
        try:
            assert await client.exists("lark-cards:claim:event:3") == 1
        finally:
            await client.aclose()
        assert not await store.claim(["message:2"], 3600)  # the outage's claim still counts
    finally:
        await store.close()
    assert "hunter2-secret" not in caplog.text
