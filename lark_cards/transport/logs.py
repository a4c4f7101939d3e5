"""Log hygiene for a public port: one short line per problem, and not one per request.

Anyone who can reach the webhook decides how often a "malformed request" or "slow client"
happens, so those lines go through a :class:`LogThrottle`: at most one record per kind per
interval, and the next record says how many were held back. :func:`brief` turns an exception
into one short line (no traceback, no newline an attacker could use to forge log lines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LOG_INTERVAL", "LogThrottle", "brief"]

LOG_INTERVAL = 60.0  # seconds between two records of one kind


def brief(exc: BaseException, limit: int = 120) -> str:
    """``ExcClass: first words of its message`` on one line, at most ``limit`` characters."""
    # aiohttp's HttpProcessingError keeps its reason in ``message``; the RequestPayloadError a
    # handler sees wraps one as its cause.
    message = getattr(exc, "message", None) or getattr(exc.__cause__, "message", None)
    text = " ".join((message if isinstance(message, str) and message else str(exc)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(slots=True)
class _Kind:
    quiet_until: float
    held: int = 0


class LogThrottle:
    """At most one record per *kind* per ``interval`` seconds; the rest are counted.

    Kinds are a handful of fixed strings chosen by the caller (never taken from a request), so
    the table stays small. ``clock`` is monotonic seconds; tests pass a fake one.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def log(self, kind: str, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless ``kind`` was logged less than ``interval`` ago.

        Returns whether a record was written. A record written after a quiet spell ends with
        how many of its kind were held back meanwhile.
        """
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now < state.quiet_until:
            state.held += 1
            return False
        held = 0 if state is None else state.held
        self._kinds[kind] = _Kind(now + self._interval)
        if held:
            msg += " (and %d more like it since the last such line)"
            args = (*args, held)
        self._logger.log(level, msg, *args)
        return True

    def held(self, kind: str) -> int:
        """How many records of ``kind`` are being held back right now."""
        state = self._kinds.get(kind)
        return 0 if state is None else state.held

    def flush(self) -> None:
        """Say how many records of each kind were held back and not reported yet (at stop)."""
        for kind, state in self._kinds.items():
            if state.held:
                self._logger.info("%d more %r record(s) were held back", state.held, kind)
                state.held = 0
