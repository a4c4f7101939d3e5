"""What every state store offers (:class:`StateStore`) and the one error a caller may meet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["StateStore", "StateUnavailable", "unique"]


class StateUnavailable(Exception):
    """The store could not be reached (a network or server fault, not a wrong call).

    Only this error makes :class:`~lark_cards.state.resilient.ResilientStore` fall back to
    memory; anything else is a bug and propagates.
    """


class StateStore(Protocol):
    """State shared by every instance of the bot that points at the same store.

    All times are seconds (floats). A key past its TTL counts as absent everywhere.
    """

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        """Atomically record every key for ``ttl`` seconds, but only if none of them is
        recorded yet: True if this call recorded them, False (and nothing changed) if any
        one was already there. Duplicate keys in ``keys`` count once."""
        ...

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Store a small ``value`` under ``key`` for ``ttl`` seconds (replacing any)."""
        ...

    async def get(self, key: str) -> str | None:
        """The value :meth:`put` stored under ``key``, or None if absent or expired."""
        ...

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``ttl`` seconds if it is free or expired, or renew it
        if ``owner`` holds it; False if another owner holds a live one."""
        ...

    async def release(self, name: str, owner: str) -> bool:
        """Give the lease up if ``owner`` holds it (True); otherwise change nothing."""
        ...

    async def inbox_add(
        self, event_id: str, payload: str, owner: str | None = None, lease: float = 0.0
    ) -> bool:
        """Keep an acknowledged event until :meth:`inbox_done`, leased to ``owner`` (the
        instance that acked it and runs it now) for ``lease`` seconds, so no other instance
        takes it meanwhile; False if ``event_id`` is already in the inbox (its payload and
        lease stay as they were)."""
        ...

    async def inbox_done(self, event_id: str) -> None:
        """Forget the event: it was handed over (or given up)."""
        ...

    async def inbox_claim(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        """Up to ``limit`` ``(event_id, payload)`` pairs, oldest first, that are not leased
        by another owner whose lease is live, each now leased to ``owner`` for ``lease``
        seconds. Entries ``owner`` already holds are returned (and renewed) again."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        ...


def unique(keys: Sequence[str]) -> list[str]:
    """``keys`` without repeats, in order (a key named twice is one claim, not a clash)."""
    if isinstance(keys, str):
        raise TypeError("claim() takes a sequence of keys, not one string")
    if not keys:
        raise ValueError("claim() needs at least one key")
    return list(dict.fromkeys(keys))
