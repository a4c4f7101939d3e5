"""Client-side flow control for sends: stay under Feishu's limits instead of tripping them.

Feishu allows 50 sends/s per app and 5/s per chat (docs/feishu-platform.md §4.4); going
over costs a 230020/99991400 answer and a ≥ 1 s backoff, so pacing ourselves is cheaper than
retrying. The limiters use a sliding window rather than a token bucket: a bucket of 5 that
refills at 5/s lets 9 requests through in the first second, which is exactly what trips a
"5 QPS" limit. Time and sleeping are injected so tests run on a fake
clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most ``rate`` acquisitions in any window of ``per`` seconds (sliding-window log).

    A fractional ``rate`` ≥ 1 is rounded down (2.5/s admits 2 per second) so the limit is
    never exceeded; a ``rate`` < 1 admits one acquisition every ``per / rate`` seconds.
    Waiters are served in arrival order: an internal ``asyncio.Lock`` (FIFO) is held while
    waiting, so a later caller can never overtake an earlier one.
    """

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self._limit = max(1, math.floor(rate))
        self._window = per if rate >= 1 else per / rate
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more acquisition fits in the window, then record it."""
        async with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                if len(self._stamps) < self._limit:
                    self._stamps.append(now)
                    return
                wait = self._stamps[0] + self._window - now
                if wait > 0:
                    await self._sleep(wait)

    def _expire(self, now: float) -> None:
        # A stamp exactly one window old no longer counts: acquisitions at t=0 and t=1.0 are
        # in different 1-second windows. The same expression as acquire()'s wait, so float
        # rounding can never leave a stamp both "not expired" and "nothing to wait for".
        while self._stamps and self._stamps[0] + self._window - now <= 0:
            self._stamps.popleft()

    def idle(self) -> bool:
        """True when nobody is waiting and no acquisition still counts: a fresh limiter
        would behave identically, so an idle one can be dropped without loosening the limit."""
        if self._lock.locked():
            return False
        self._expire(self._clock())
        return not self._stamps


class KeyedRateLimiter:
    """One :class:`RateLimiter` per key (a chat id), made by ``make`` on first use.

    Memory stays bounded for a bot that talks to many chats: a key's limiter is forgotten as
    soon as it is idle (its window has passed, at most a few seconds), and if more than
    ``max_keys`` are busy at once the least recently used one is evicted.
    """

    def __init__(self, make: Callable[[], RateLimiter], *, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        make()  # a bad rate fails now, not on the first acquire
        self._make = make
        self._max_keys = max_keys
        self._limiters: OrderedDict[str, RateLimiter] = OrderedDict()

    def __len__(self) -> int:
        return len(self._limiters)

    async def acquire(self, key: str) -> None:
        """Wait for a slot in ``key``'s own window; other keys are unaffected."""
        # Sweep before looking the key up, so the limiter we are about to use is never the
        # one being dropped (dropping an idle one and recreating it is equivalent).
        self._forget_idle()
        limiter = self._limiters.get(key)
        if limiter is None:
            while len(self._limiters) >= self._max_keys:
                self._limiters.popitem(last=False)
            limiter = self._limiters[key] = self._make()
        else:
            self._limiters.move_to_end(key)
        await limiter.acquire()

    def _forget_idle(self) -> None:
        # Keys are kept in least-recently-used order, so idle ones collect at the front;
        # stopping at the first busy one keeps each call O(1) amortised.
        while self._limiters:
            key, limiter = next(iter(self._limiters.items()))
            if not limiter.idle():
                return
            del self._limiters[key]


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders + waiters


class KeyedLock:
    """A FIFO ``asyncio.Lock`` per key that exists only while someone holds or awaits it.

    Used to keep one chat's messages in the order their sends were *started* (retries
    included): ``asyncio.Lock`` grants waiters in arrival order, and acquiring an uncontended
    lock does not yield, so tasks that call :meth:`hold` first thing acquire in creation order.
    """

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def __len__(self) -> int:
        return len(self._slots)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the body of the ``async with``."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[key]
