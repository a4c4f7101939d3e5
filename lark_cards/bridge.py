"""Crossing between Errbot's worker threads and the backend's one asyncio loop.

Errbot calls the backend from its thread pool; everything that talks to Feishu runs on the
loop. ``_submit`` hands a coroutine over and returns a future at once (sends: fire and forget,
failures logged); ``_call`` waits for the result (look-ups, room operations) and refuses to
run on the loop thread itself, where waiting would deadlock. Every task is tracked so a
shutdown can wait for pending sends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("lark_cards.backend")
T = TypeVar("T")

# Longer than the client's own retry budget (4 retries of ≤ 10 s plus 1+2+4+8 s of backoff),
# so a caller is not told "failed" while the request may still succeed.
BLOCKING_CALL_TIMEOUT = 75.0


class LoopBridge:
    """Mixin for the backend: needs ``_loop`` (the running loop or None) and ``_tasks``."""

    _loop: asyncio.AbstractEventLoop | None
    _tasks: set[asyncio.Task[Any]]

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError("lark-cards is not connected")
        return asyncio.run_coroutine_threadsafe(self._tracked(coro), loop)

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await coro
        finally:
            self._tasks.discard(task)

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = BLOCKING_CALL_TIMEOUT) -> T:
        """Run ``coro`` on the loop and wait for it; only from a thread other than the loop's."""
        loop = self._loop
        if loop is not None and running_loop() is loop:
            coro.close()
            raise RuntimeError("blocking Feishu call made on the event loop thread")
        future = self._submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # do not leave the work running after telling the caller it failed
            raise

    def _submit_send(self, coro: Coroutine[Any, Any, None], to: Any) -> None:
        try:
            future = self._submit(coro)
        except RuntimeError as error:
            log.error("Cannot send to %s: %s", to, error)
            return
        future.add_done_callback(_log_failure)


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if future.cancelled():
        log.warning("A send was cancelled at shutdown")
    elif (error := future.exception()) is not None:
        log.error("Sending failed: %s", error)
