"""An acked event is owned: claimed once (also across a restart and between instances), kept in
the inbox until Errbot has it, and run again from there when its owner stopped or died."""

from __future__ import annotations

import asyncio
from pathlib import Path

from feishu_payloads import envelope

from lark_cards.inbound.intake import Intake, dumps, loads
from lark_cards.state import MemoryStore, SQLiteStore
from lark_cards.transport.envelope import Envelope

TTL = 3600.0


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


def test_an_envelope_survives_the_inbox_unchanged() -> None:
    original = envelope("p2p_text")
    assert loads(dumps(original)) == Envelope(
        original.event_id, original.event_type, original.token, dict(original.event),
        original.app_id,
    )  # fmt: skip


async def test_a_replay_after_a_restart_finds_its_claim(tmp_path: Path) -> None:
    event = envelope("p2p_text")
    first = Intake(await SQLiteStore.open(tmp_path / "state"), owner="a", ttl=TTL)
    assert await first.claim(event)
    await first.close()  # the process stops
    again = Intake(await SQLiteStore.open(tmp_path / "state"), owner="a", ttl=TTL)
    try:
        assert not await again.claim(event)  # the same signed request, replayed
        other = envelope("p2p_text", message={**event.event["message"]})  # same message id
        assert not await again.claim(Envelope("another-event-id", *_rest(other)))
    finally:
        await again.close()


def _rest(event: Envelope) -> tuple[object, ...]:
    return (event.event_type, event.token, event.event, event.app_id)


async def test_a_handled_event_leaves_the_inbox() -> None:
    store = MemoryStore()
    intake = Intake(store, owner="a", ttl=TTL)
    event = envelope("p2p_text")
    assert await intake.claim(event)
    assert [e.event_id for e in await intake.recover()] == [event.event_id]
    intake.handled(event.event_id)  # from the inbound worker thread, in the product
    await settle()
    assert await intake.recover() == []
    assert not intake.durable


async def test_events_left_by_a_stop_run_at_the_next_start(tmp_path: Path) -> None:
    stopped = Intake(await SQLiteStore.open(tmp_path / "state"), owner="a", ttl=TTL, lease=0.05)
    events = [envelope("p2p_text"), envelope("group_text_mentions")]
    for event in events:
        assert await stopped.claim(event)
    stopped.handled(events[0].event_id)  # this one reached Errbot before the stop
    await settle()
    await stopped.close()
    started = Intake(await SQLiteStore.open(tmp_path / "state"), owner="b", ttl=TTL)
    dispatched: list[str] = []
    keeping = asyncio.create_task(started.keep(lambda e: dispatched.append(e.event_id), 0.02))
    try:
        await asyncio.sleep(0.2)
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
        await started.close()
    assert dispatched == [events[1].event_id]  # once, though keep() looked several times
    assert started.durable


async def test_an_instance_does_not_run_what_another_live_one_holds() -> None:
    store = MemoryStore()
    running = Intake(store, owner="a", ttl=TTL)
    other = Intake(store, owner="b", ttl=TTL)
    event = envelope("p2p_text")
    assert await running.claim(event)
    assert not await other.claim(event)  # the retry landed on the other instance
    assert await other.recover() == []  # and it does not take the event from the inbox


class InboxDown(MemoryStore):
    """Claims work; the inbox write after them fails (a store failing between two calls)."""

    async def inbox_add(self, *args: object, **kwargs: object) -> bool:
        raise ConnectionError("the store went away")


async def test_a_claimed_event_whose_inbox_write_fails_is_still_taken() -> None:
    """Refusing it now would leave a claim that turns Feishu's retry into a duplicate that
    nothing runs: the event is taken (and runs from memory) instead."""
    intake = Intake(InboxDown(), owner="a", ttl=TTL)
    event = envelope("p2p_text")
    assert await intake.claim(event) is True
    assert await intake.claim(event) is False  # the retry: a duplicate, already running
