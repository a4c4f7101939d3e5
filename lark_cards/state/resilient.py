"""Keep serving when the shared store (Redis) is unreachable, and say so once.

:class:`ResilientStore` wraps a primary store. On :class:`StateUnavailable` it logs ONE
WARNING, serves from an in-process :class:`MemoryStore` meanwhile, probes the primary again
(``PING``) no sooner than ``min_backoff`` seconds later and then at growing intervals up to
``max_backoff``, and logs once more when the primary answers again. What it does meanwhile:

* claims, values and inbox entries go to memory, so duplicates are still caught within this
  process (not across instances). Once back, a claim also consults memory, so an event taken
  during the outage is not taken again when Feishu retries it; ``get`` falls back likewise.
* leases: no new leader is elected while degraded. An owner whose lease the primary last
  granted keeps it until that lease lapses (not longer: another instance may still reach the
  primary and take it over then); everyone else is refused.
* ``inbox_done`` calls made meanwhile are replayed to the primary once it is back, so its copy
  of an event is not handed over a second time; entries added to memory are still offered by
  ``inbox_claim`` after recovery until they are done.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from lark_cards.state.base import StateStore, StateUnavailable
from lark_cards.state.memory import MemoryStore

__all__ = ["ProbedStore", "ResilientStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_MAX_PENDING_DONE = 10_000


class ProbedStore(StateStore, Protocol):
    """A primary store: it names itself safely (``label``, no password) and can be probed."""

    label: str

    async def ping(self) -> None:
        """Return if the store answers; raise :class:`StateUnavailable` otherwise."""
        ...


class ResilientStore:
    """A :class:`StateStore` that falls back to memory while ``primary`` is unreachable."""

    def __init__(
        self,
        primary: ProbedStore,
        *,
        fallback: StateStore | None = None,
        min_backoff: float = 5.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < min_backoff <= max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        self.primary = primary
        self.fallback: StateStore = fallback if fallback is not None else MemoryStore()
        self._min_backoff, self._max_backoff = min_backoff, max_backoff
        self._clock = clock
        self._down = False
        self._used_fallback = False
        self._backoff = min_backoff
        self._next_probe = 0.0
        self._held: dict[str, tuple[str, float]] = {}  # lease -> (owner, expires) per primary
        self._pending_done: dict[str, None] = {}  # inbox_done calls the primary has not seen

    @property
    def degraded(self) -> bool:
        """True while calls are served from memory."""
        return self._down

    async def start(self) -> None:
        """Probe the primary once, so an outage at start-up is reported at start-up."""
        try:
            await self.primary.ping()
        except StateUnavailable as error:
            self._fail(error)

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        if not await self._primary_up():
            return await self._degraded(self.fallback.claim(keys, ttl))
        try:
            won = await self.primary.claim(keys, ttl)
        except StateUnavailable as error:
            self._fail(error)
            return await self.fallback.claim(keys, ttl)
        if won and self._used_fallback:
            # Taken in memory during an outage → a duplicate, though the primary never saw it.
            return await self.fallback.claim(keys, ttl)
        return won

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._either(lambda store: store.put(key, value, ttl))

    async def get(self, key: str) -> str | None:
        value = await self._either(lambda store: store.get(key))
        if value is None and self._used_fallback and not self._down:
            value = await self.fallback.get(key)
        return value

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        if await self._primary_up():
            try:
                held = await self.primary.lease(name, owner, ttl)
            except StateUnavailable as error:
                self._fail(error)
            else:
                if held:
                    self._held[name] = (owner, self._clock() + ttl)
                else:
                    self._held.pop(name, None)
                return held
        # Degraded: no new leader, and the old one only until the lease the primary granted
        # lapses (another instance may still reach the primary and take it over then).
        holder, expires = self._held.get(name, ("", 0.0))
        return holder == owner and expires > self._clock()

    async def release(self, name: str, owner: str) -> bool:
        held = self._held.get(name, ("", 0.0))[0] == owner
        if held:
            del self._held[name]
        if await self._primary_up():
            try:
                return await self.primary.release(name, owner)
            except StateUnavailable as error:
                self._fail(error)
        return held  # the primary's copy lapses by itself

    async def inbox_add(
        self, event_id: str, payload: str, owner: str | None = None, lease: float = 0.0
    ) -> bool:
        return await self._either(lambda store: store.inbox_add(event_id, payload, owner, lease))

    async def inbox_done(self, event_id: str) -> None:
        if self._used_fallback:
            await self.fallback.inbox_done(event_id)
        if await self._primary_up():
            try:
                await self.primary.inbox_done(event_id)
                return
            except StateUnavailable as error:
                self._fail(error)
        if len(self._pending_done) < _MAX_PENDING_DONE:
            self._pending_done[event_id] = None

    async def inbox_claim(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        taken = await self._either(lambda store: store.inbox_claim(owner, lease, limit))
        if self._used_fallback and not self._down and len(taken) < limit:
            taken += await self.fallback.inbox_claim(owner, lease, limit - len(taken))
        return taken

    async def close(self) -> None:
        try:
            with contextlib.suppress(StateUnavailable):
                await self.primary.close()
        finally:
            await self.fallback.close()

    # -- switching ---------------------------------------------------------------------------

    async def _either(self, call: Callable[[StateStore], Awaitable[_T]]) -> _T:
        """``call`` on the primary if it is (or is again) reachable, else on the fallback."""
        if await self._primary_up():
            try:
                return await call(self.primary)
            except StateUnavailable as error:
                self._fail(error)
        return await self._degraded(call(self.fallback))

    async def _degraded(self, pending: Awaitable[_T]) -> _T:
        self._used_fallback = True
        return await pending

    async def _primary_up(self) -> bool:
        """False while degraded, except that a due probe that succeeds ends the outage."""
        if not self._down or self._clock() < self._next_probe:
            return not self._down
        self._next_probe = self._clock() + self._backoff  # one probe at a time
        try:
            await self.primary.ping()
        except StateUnavailable:
            self._backoff = min(self._backoff * 2, self._max_backoff)
            self._next_probe = self._clock() + self._backoff
            log.debug("state store %s still unreachable", self.primary.label)
            return False
        self._down = False
        self._backoff = self._min_backoff
        log.warning("state store %s reachable again; using it again", self.primary.label)
        await self._replay_done()
        return not self._down

    def _fail(self, error: StateUnavailable) -> None:
        self._used_fallback = True
        if not self._down:
            self._down = True
            log.warning(
                "state store %s unreachable (%s); serving with an in-memory claim (duplicates "
                "are caught in this process only), retrying every %g–%g s",
                self.primary.label,
                error.__cause__ or error,
                self._min_backoff,
                self._max_backoff,
            )
        self._next_probe = self._clock() + self._backoff

    async def _replay_done(self) -> None:
        while self._pending_done:
            event_id = next(iter(self._pending_done))
            try:
                await self.primary.inbox_done(event_id)
            except StateUnavailable as error:
                self._fail(error)
                return
            del self._pending_done[event_id]
