"""TTLSet: expiry on an injected clock, bounded size, any-of-keys semantics (§1.8)."""

from __future__ import annotations

import threading

import pytest

from lark_cards.transport.dedup import TTLSet


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_is_a_dedup_store(clock: FakeClock) -> None:
    store = TTLSet(10, 10, clock=clock)
    assert store.seen("a") is False


def test_first_time_new_second_time_duplicate(clock: FakeClock) -> None:
    store = TTLSet(10, 10, clock=clock)
    assert store.seen("event:1") is False
    assert store.seen("event:1") is True
    assert store.seen("event:2") is False


def test_expires_after_ttl(clock: FakeClock) -> None:
    store = TTLSet(10, 10, clock=clock)
    store.seen("a")
    clock.now += 9.999
    assert store.seen("b") is False
    assert "a" in store._entries
    clock.now += 0.001  # "a" is exactly ttl old: expired
    assert store.seen("a") is False
    assert len(store) == 2  # "a" recorded again, "b" still live


def test_expired_entries_are_purged(clock: FakeClock) -> None:
    store = TTLSet(10, 100, clock=clock)
    for i in range(50):
        store.seen(f"k{i}")
    clock.now += 10
    store.seen("fresh")
    assert len(store) == 1


def test_hit_refreshes_the_key(clock: FakeClock) -> None:
    # Feishu's last retry lands ~7.1 h after the first push; each redelivery keeps it alive.
    store = TTLSet(10, 10, clock=clock)
    store.seen("a")
    clock.now += 8
    assert store.seen("a") is True
    clock.now += 8  # 16 s after the first sighting, 8 s after the last
    assert store.seen("a") is True


def test_evicts_oldest_at_max_entries(clock: FakeClock) -> None:
    store = TTLSet(3600, 3, clock=clock)
    for key in ("a", "b", "c"):
        store.seen(key)
        clock.now += 1
    store.seen("d")  # evicts "a", the oldest
    assert len(store) == 3
    assert store.seen("b") is True  # refreshed: now the newest
    assert store.seen("a") is False  # forgotten; recording it evicts "c"
    assert store.seen("c") is False


def test_any_of_keys(clock: FakeClock) -> None:
    store = TTLSet(10, 10, clock=clock)
    assert store.seen("event:1", "message:m") is False
    # Same message redelivered under a new event id (WS backfill, §1.8): duplicate.
    assert store.seen("event:2", "message:m") is True
    # ...and the new event id was recorded too, so its own retry is caught alone.
    assert store.seen("event:2") is True
    assert store.seen("event:3", "message:other") is False


def test_no_keys_is_never_a_duplicate(clock: FakeClock) -> None:
    store = TTLSet(10, 10, clock=clock)
    assert store.seen() is False
    assert store.seen() is False


@pytest.mark.parametrize(("ttl", "max_entries"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_nonsense_sizes(ttl: float, max_entries: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        TTLSet(ttl, max_entries)


def test_thread_safe_exactly_one_winner() -> None:
    store = TTLSet(60, 1000)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(store.seen("event:same"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(False) == 1
