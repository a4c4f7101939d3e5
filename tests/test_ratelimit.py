"""Flow-control primitives on a fake clock: nothing here really sleeps."""

from __future__ import annotations

import asyncio

import pytest
from api_fakes import FakeTime

from lark_cards.api.ratelimit import KeyedLock, KeyedRateLimiter, RateLimiter


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def limiter(fake: FakeTime, rate: float, per: float = 1.0) -> RateLimiter:
    return RateLimiter(rate, per, clock=fake.clock, sleep=fake.sleep)


def assert_never_more_than(times: list[float], limit: int, window: float) -> None:
    """Any ``limit + 1`` consecutive acquisitions must span at least one window."""
    for first, last in zip(times, times[limit:], strict=False):
        assert last - first >= window, times


async def test_burst_up_to_rate_needs_no_time(fake: FakeTime) -> None:
    rl = limiter(fake, 5)
    for _ in range(5):
        await rl.acquire()
    assert fake.sleeps == []
    assert fake.now == 0.0


async def test_twelve_acquires_at_five_per_second_take_two_seconds(fake: FakeTime) -> None:
    rl = limiter(fake, 5)
    times = []
    for _ in range(12):
        await rl.acquire()
        times.append(fake.now)
    assert fake.now >= 2.0
    assert times == [0.0] * 5 + [1.0] * 5 + [2.0] * 2
    assert_never_more_than(times, 5, 1.0)


async def test_concurrent_waiters_are_served_in_order_within_the_limit(fake: FakeTime) -> None:
    rl = limiter(fake, 5)
    served: list[tuple[int, float]] = []

    async def worker(i: int) -> None:
        await rl.acquire()
        served.append((i, fake.now))

    await asyncio.gather(*(worker(i) for i in range(12)))
    assert [i for i, _ in served] == list(range(12))
    assert_never_more_than([t for _, t in served], 5, 1.0)
    assert fake.now >= 2.0


async def test_slots_free_up_as_the_window_slides(fake: FakeTime) -> None:
    rl = limiter(fake, 2)
    await rl.acquire()  # t=0
    fake.now = 0.6
    await rl.acquire()  # t=0.6
    await rl.acquire()  # must wait until the t=0 stamp leaves the window
    assert fake.now == pytest.approx(1.0)
    assert fake.sleeps == [pytest.approx(0.4)]


async def test_fractional_rate_below_one(fake: FakeTime) -> None:
    rl = limiter(fake, 0.5)  # one every two seconds
    await rl.acquire()
    await rl.acquire()
    assert fake.now == pytest.approx(2.0)


async def test_fractional_rate_above_one_rounds_down(fake: FakeTime) -> None:
    rl = limiter(fake, 2.5)
    for _ in range(3):
        await rl.acquire()
    assert fake.now == pytest.approx(1.0)  # only 2 fit in a second, never 3


@pytest.mark.parametrize(("rate", "per"), [(0, 1.0), (-1, 1.0), (5, 0)])
def test_invalid_arguments(rate: float, per: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate, per)
    with pytest.raises(ValueError, match="positive"):
        KeyedRateLimiter(lambda: RateLimiter(rate, per))


def keyed(fake: FakeTime, rate: float = 5, **kwargs: int) -> KeyedRateLimiter:
    return KeyedRateLimiter(lambda: RateLimiter(rate, clock=fake.clock, sleep=fake.sleep), **kwargs)


async def test_keys_are_limited_independently(fake: FakeTime) -> None:
    krl = keyed(fake)
    for _ in range(5):
        await krl.acquire("oc_a")
        await krl.acquire("oc_b")
    assert fake.sleeps == []
    await krl.acquire("oc_a")
    assert fake.sleeps == [1.0]


async def test_idle_keys_are_forgotten(fake: FakeTime) -> None:
    krl = keyed(fake)
    await krl.acquire("oc_a")
    fake.now = 0.5
    await krl.acquire("oc_b")
    assert len(krl) == 2  # oc_a's acquisition still counts
    fake.now = 1.6  # both windows have passed
    await krl.acquire("oc_c")
    assert len(krl) == 1


async def test_forgetting_keeps_a_busy_key_limited(fake: FakeTime) -> None:
    krl = keyed(fake)
    for _ in range(5):
        await krl.acquire("oc_a")
    await krl.acquire("oc_b")
    await krl.acquire("oc_a")  # oc_a is not idle, so it must not be reset
    assert fake.sleeps == [1.0]


async def test_key_count_is_capped(fake: FakeTime) -> None:
    krl = keyed(fake, max_keys=3)
    for i in range(10):
        await krl.acquire(f"oc_{i}")
    assert len(krl) == 3


async def test_keyed_lock_is_fifo_and_forgets_released_keys() -> None:
    locks = KeyedLock()
    order: list[int] = []
    gate = asyncio.Event()

    async def worker(i: int) -> None:
        async with locks.hold("oc_1"):
            if i == 0:
                await gate.wait()
            order.append(i)

    tasks = [asyncio.create_task(worker(i)) for i in range(5)]
    await asyncio.sleep(0)
    assert len(locks) == 1
    gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert len(locks) == 0


async def test_keyed_lock_forgets_a_cancelled_waiter() -> None:
    locks = KeyedLock()
    async with locks.hold("oc_1"):
        waiter = asyncio.create_task(_hold(locks, "oc_1"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(locks) == 0


async def _hold(locks: KeyedLock, key: str) -> None:
    async with locks.hold(key):
        pass


async def test_float_rounding_never_leaves_a_stamp_with_nothing_to_wait_for(
    fake: FakeTime,
) -> None:
    """255.39498224432035 + 1.0 - 256.3949822443203 == 0.0, yet the stamp was "not expired":
    acquire() spun without awaiting, freezing the loop on a clock that moves only in sleeps."""
    limiter = RateLimiter(1, clock=fake.clock, sleep=fake.sleep)
    fake.now = 255.39498224432035
    await limiter.acquire()
    fake.now = 256.3949822443203
    await asyncio.wait_for(limiter.acquire(), 1)
