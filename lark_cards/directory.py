"""A small cache of user and chat profiles, so identifiers can show names without API storms.

Events carry ids, not names. Errbot and plugins read ``fullname``/``email``/room names often
(``!whoami``, ACL logs, templates), so every lookup is cached for ``ttl`` seconds; failures are
cached too, for a shorter time, so a missing contact scope costs one call, not one per access.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Fetch = Callable[[str], Mapping[str, Any]]


class LookupUnavailableError(Exception):
    """The lookup cannot run right now (not connected, or asked from the loop thread)."""


class CachedDirectory:
    """Implements ``identifiers.Directory`` over two blocking fetch functions."""

    def __init__(
        self,
        fetch_user: Fetch,
        fetch_chat: Fetch,
        *,
        ttl: float = 3600.0,
        failure_ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = {"user": fetch_user, "chat": fetch_chat}
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    def user(self, open_id: str) -> Mapping[str, Any]:
        return self._lookup("user", open_id)

    def chat(self, chat_id: str) -> Mapping[str, Any]:
        return self._lookup("chat", chat_id)

    def remember(self, kind: str, key: str, profile: Mapping[str, Any]) -> None:
        """Store a profile learnt elsewhere (e.g. from a chat list) to save a lookup."""
        self._store(kind, key, profile, self._clock() + self._ttl)

    def _store(self, kind: str, key: str, profile: Mapping[str, Any], expires: float) -> None:
        with self._lock:
            self._cache.pop((kind, key), None)
            if len(self._cache) >= self._max_entries:
                self._cache.pop(next(iter(self._cache)))  # oldest first: dicts keep order
            self._cache[(kind, key)] = (expires, profile)

    def _lookup(self, kind: str, key: str) -> Mapping[str, Any]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get((kind, key))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            profile = self._fetch[kind](key)
        except LookupUnavailableError:
            return cached[1] if cached is not None else {}
        except Exception as error:  # any failure means "unknown"; the caller shows the id
            log.debug("%s lookup for %s failed: %s", kind, key, error)
            self._store(kind, key, {}, now + self._failure_ttl)
            return {}
        self._store(kind, key, profile, now + self._ttl)
        return profile
