"""An in-process :class:`~lark_cards.state.base.StateStore`: nothing survives a restart and
nothing is shared with another process, but nothing has to be installed or reachable either.

Used for ``state_url="memory://"`` and as the stand-in while Redis is unreachable. Each of the
three maps is an LRU bounded by ``max_entries``, so a flood of distinct ids cannot grow memory
without limit; a lock keeps one instance safe to share between event loops in several threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lark_cards.state.base import unique

__all__ = ["MemoryStore"]

_V = TypeVar("_V")


@dataclass(slots=True)
class _Entry:
    payload: str
    owner: str | None = None
    lease_until: float = 0.0


class MemoryStore:
    """Claims, values, leases and an inbox in dicts; ``clock`` must not go backwards."""

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._claims: OrderedDict[str, float] = OrderedDict()  # key -> expires
        self._values: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (value, exp)
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (owner, expires)
        self._inbox: OrderedDict[str, _Entry] = OrderedDict()  # event_id -> entry, oldest first

    async def sizes(self) -> dict[str, int]:
        """How many claims, values and inbox entries are held (for tests and metrics)."""
        with self._lock:
            return {
                "claims": len(self._claims),
                "values": len(self._values),
                "inbox": len(self._inbox),
            }

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        keys = unique(keys)
        with self._lock:
            now = self._clock()
            if any(self._claims.get(key, now) > now for key in keys):
                return False
            for key in keys:
                self._claims[key] = now + ttl
                self._claims.move_to_end(key)
            _trim(self._claims, self.max_entries)
            return True

    async def put(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._values[key] = (value, self._clock() + ttl)
            self._values.move_to_end(key)
            _trim(self._values, self.max_entries)

    async def get(self, key: str) -> str | None:
        with self._lock:
            found = self._values.get(key)
            if found is None or found[1] <= self._clock():
                return None
            return found[0]

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            holder, expires = self._leases.get(name, (owner, now))
            if holder != owner and expires > now:
                return False
            self._leases[name] = (owner, now + ttl)
            return True

    async def release(self, name: str, owner: str) -> bool:
        with self._lock:
            if self._leases.get(name, ("", 0.0))[0] != owner:
                return False
            del self._leases[name]
            return True

    async def inbox_add(
        self, event_id: str, payload: str, owner: str | None = None, lease: float = 0.0
    ) -> bool:
        with self._lock:
            if event_id in self._inbox:
                return False
            until = self._clock() + lease if owner is not None else 0.0
            self._inbox[event_id] = _Entry(payload, owner, until)
            _trim(self._inbox, self.max_entries)
            return True

    async def inbox_done(self, event_id: str) -> None:
        with self._lock:
            self._inbox.pop(event_id, None)

    async def inbox_claim(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        taken: list[tuple[str, str]] = []
        with self._lock:
            now = self._clock()
            for event_id, entry in self._inbox.items():
                if len(taken) >= limit:
                    break
                if entry.owner in (None, owner) or entry.lease_until <= now:
                    entry.owner, entry.lease_until = owner, now + lease
                    taken.append((event_id, entry.payload))
        return taken

    async def close(self) -> None:
        with self._lock:
            self._claims.clear()
            self._values.clear()
            self._leases.clear()
            self._inbox.clear()


def _trim(entries: OrderedDict[str, _V], limit: int) -> None:
    # Least recently recorded first out.
    while len(entries) > limit:
        entries.popitem(last=False)
