"""One leader among instances sharing a store: taken, renewed, handed over when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from lark_cards.state import MemoryStore, SQLiteStore, StateUnavailable
from lark_cards.state.leader import Leadership

FAST = {"ttl": 0.3, "every": 0.05}


@contextlib.asynccontextmanager
async def running(*instances: Leadership) -> AsyncIterator[Sequence[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(instance.run()) for instance in instances]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def settle() -> None:
    await asyncio.sleep(0.15)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    made = MemoryStore() if request.param == "memory" else await SQLiteStore.open(tmp_path / "s")
    yield made
    await made.close()


async def test_exactly_one_of_two_instances_leads(store) -> None:
    first, second = Leadership(store, "a", **FAST), Leadership(store, "b", **FAST)
    async with running(first, second):
        await settle()
        assert [first.is_leader(), second.is_leader()].count(True) == 1


async def test_a_stopped_leader_hands_over_at_once(store) -> None:
    first, second = Leadership(store, "a", **FAST), Leadership(store, "b", **FAST)
    async with running(first) as [leading]:
        await settle()
        assert first.is_leader()
        async with running(second):
            await settle()
            assert not second.is_leader()
            leading.cancel()  # the leader shuts down: it gives the lease up
            await asyncio.gather(leading, return_exceptions=True)
            await asyncio.sleep(0.1)
            assert second.is_leader()
            assert not first.is_leader()


async def test_a_dead_leaders_lease_runs_out_and_another_takes_it(store) -> None:
    dead, alive = Leadership(store, "dead", **FAST), Leadership(store, "alive", **FAST)
    await dead._renew()  # it took the lease, then its process died without a word
    assert dead.is_leader()
    async with running(alive):
        await settle()
        assert not alive.is_leader()  # the lease still holds
        await asyncio.sleep(0.4)
        assert alive.is_leader()


class Unreachable(MemoryStore):
    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        raise StateUnavailable("connection refused")


async def test_without_the_store_a_leader_stops_leading_when_its_lease_ends() -> None:
    store = MemoryStore()
    leader = Leadership(store, "a", **FAST)
    await leader._renew()
    assert leader.is_leader()
    leader._store = Unreachable()
    await leader._renew()
    assert leader.is_leader()  # the last grant still holds
    await asyncio.sleep(0.35)
    await leader._renew()
    assert not leader.is_leader()  # no second leader can appear meanwhile: nobody leads
