"""One leader among the bot's instances, for plugins' background work (``self._bot.is_leader()``).

Errbot plugins start pollers and schedules in ``activate()``; with two instances on one app
each would run them, and users would get every digest twice. The leader holds a lease in the
shared state store, renewed in the background well inside its TTL; when it dies (or cannot
reach the store) the lease runs out and another instance takes it. A plugin checks
``self._bot.is_leader()`` each time its poller fires and does nothing when it is not.

While the store is unreachable nobody can renew, so a leader stops being one once the lease
it last got has expired: a gap in leadership rather than two leaders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from lark_cards.state.base import StateStore, StateUnavailable

log = logging.getLogger(__name__)

LEASE_NAME = "leader"
LEASE_TTL = 30.0
RENEW_EVERY = 10.0  # three tries inside one TTL before the lease can run out


class Leadership:
    """Takes and renews the ``leader`` lease for ``owner`` (this instance) while :meth:`run`
    runs on the loop; :meth:`is_leader` may be asked from any thread."""

    def __init__(
        self,
        store: StateStore,
        owner: str,
        *,
        ttl: float = LEASE_TTL,
        every: float = RENEW_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < every < ttl:
            raise ValueError("the lease must be renewed more often than it lasts")
        self._store = store
        self._owner = owner
        self._ttl, self._every = ttl, every
        self._clock = clock
        self._until = 0.0  # our lease holds until then (our clock), if we are the leader

    def is_leader(self) -> bool:
        return self._clock() < self._until

    async def run(self) -> None:
        """Renew until cancelled, then give the lease up so another instance takes over
        at once instead of after the TTL."""
        try:
            while True:
                await self._renew()
                await asyncio.sleep(self._every)
        finally:
            if self.is_leader():
                self._until = 0.0
                with contextlib.suppress(StateUnavailable):  # else it runs out by itself
                    await self._store.release(LEASE_NAME, self._owner)

    async def _renew(self) -> None:
        was = self.is_leader()
        asked = self._clock()
        try:
            held = await self._store.lease(LEASE_NAME, self._owner, self._ttl)
        except StateUnavailable as error:
            log.debug("Cannot renew the leader lease: %s", error)
            held = False  # keep what the last grant gave, no more
            if was:
                return
        self._until = asked + self._ttl if held else 0.0
        if held != was:
            log.info("This instance is %s the leader", "now" if held else "no longer")
