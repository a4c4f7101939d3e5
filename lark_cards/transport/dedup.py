"""Remember which events were already accepted, so Feishu's retries run a command only once.

Feishu re-pushes an event it thinks failed after 15 s, 5 min, 1 h and 6 h
(docs/feishu-platform.md §1.8), and a long-connection reconnect can redeliver the same message
under a new ``event_id``. The webhook therefore asks about two keys at once,
``event:<event_id>`` and ``message:<message_id>``, and drops the event if *either* is known.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from lark_cards.transport.envelope import Envelope, message_id_of

__all__ = ["EventClaims", "MemoryClaims", "TTLSet", "dedup_keys"]


class EventClaims(Protocol):
    """What a transport asks before it acks an event: is it new? The backend's answer is
    the durable claim in its state store (``inbound.intake``), shared by its instances."""

    async def claim(self, envelope: Envelope) -> bool:
        """True when the event is new: it is now recorded (and this instance owns it)."""
        ...


def dedup_keys(envelope: Envelope) -> tuple[str, ...]:
    """The keys of an event: its id, plus the message id for received messages (§1.8)."""
    message_id = message_id_of(envelope)
    if message_id is None:
        return (f"event:{envelope.event_id}",)
    return (f"event:{envelope.event_id}", f"message:{message_id}")


class MemoryClaims:
    """:class:`EventClaims` in this process's memory (a :class:`TTLSet`): the webhook's
    default when no backend gives it one (tests, tools)."""

    def __init__(self, seen: TTLSet) -> None:
        self._seen = seen

    async def claim(self, envelope: Envelope) -> bool:
        return not self._seen.seen(*dedup_keys(envelope))


class TTLSet:
    """An in-memory duplicate filter: keys expire after ``ttl`` seconds, at most
    ``max_entries`` are kept (the oldest is evicted first, so memory stays bounded under a
    flood of distinct ids).

    ``clock`` is passed in so tests move time by hand; it must not go backwards, which is why
    the default is :func:`time.monotonic` and not wall time. A lock makes one instance safe to
    share between the webhook loop and a long-connection thread.
    """

    def __init__(
        self, ttl: float, max_entries: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        # key -> time last recorded; insertion order == time order (see seen()).
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, *keys: str) -> bool:
        """True if any key was recorded less than ``ttl`` seconds ago; records all of them now.

        Recording every key (also on a hit) means a redelivery that arrives under a new
        ``event_id`` but the old ``message_id`` teaches the store the new id too, so a retry of
        that new id is caught even after the old entry is evicted.
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            hit = any(key in self._entries for key in keys)
            for key in keys:
                # Re-recording moves the key to the end, keeping the dict sorted by time.
                self._entries[key] = now
                self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return hit

    def _expire(self, now: float) -> None:
        # Oldest first: stop at the first key still inside the TTL, so each call costs
        # O(expired keys), not O(all keys).
        while self._entries:
            key, recorded = next(iter(self._entries.items()))
            if now - recorded < self._ttl:
                break
            del self._entries[key]
