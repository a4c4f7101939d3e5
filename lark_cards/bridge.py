"""Crossing between Errbot's worker threads and the backend's one asyncio loop.

Errbot calls the backend from its thread pool; everything that talks to Feishu runs on the
loop. :meth:`LoopBridge.submit` hands a coroutine over and returns a future at once (sends:
fire and forget, failures logged by :func:`report_failure`); :meth:`LoopBridge.call`
waits for the result (look-ups, room operations) and refuses to run on the loop thread itself,
where waiting would deadlock. Every task is tracked so a shutdown can wait for pending sends.

Submission order is preserved: ``run_coroutine_threadsafe`` schedules in call order, and a
coroutine runs up to its first ``await`` before the next one starts — which is what lets the
delivery path keep one chat's messages in the order plugins sent them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("lark_cards.backend")
T = TypeVar("T")

# CPython hands the GIL to a waiting thread every "switch interval", 5 ms by default. A
# worker thread rendering a reply holds it that long each time, and an ack needs several
# turns: bench/ack.py --load 1 measured ack p99 ≈ 500 ms at 5 ms, ≈ 6 ms at 1 ms.
SWITCH_INTERVAL = 0.001
_DEFAULT_SWITCH_INTERVAL = 0.005


def favour_the_loop() -> None:
    """Make CPU-bound Errbot threads yield the GIL to the loop sooner (``SWITCH_INTERVAL``),
    unless something already chose an interval of its own. Process-wide: busy threads switch
    more often, which costs them little; an idle process switches no more than before."""
    if abs(sys.getswitchinterval() - _DEFAULT_SWITCH_INTERVAL) < 1e-9:
        sys.setswitchinterval(SWITCH_INTERVAL)


# Longer than the client's own retry budget (4 retries of ≤ 10 s plus 1+2+4+8 s of backoff),
# so a caller is not told "failed" while the request may still succeed.
BLOCKING_CALL_TIMEOUT = 75.0


class NotConnectedError(RuntimeError):
    """The backend's loop is not running (before connect, after shutdown)."""

    def __init__(self) -> None:
        super().__init__("lark-cards is not connected")


class LoopBridge:
    """The backend's loop as seen from other threads; attached while ``serve_once`` runs."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def on_loop(self) -> bool:
        """True when called on the loop's own thread (where blocking would deadlock)."""
        return self._loop is not None and running_loop() is self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; :class:`NotConnectedError` when there is none."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise NotConnectedError
        return asyncio.run_coroutine_threadsafe(self._tracked(coro), loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = BLOCKING_CALL_TIMEOUT) -> T:
        """Run ``coro`` on the loop and wait for it; only from a thread other than the loop's."""
        if self.on_loop():
            coro.close()
            raise RuntimeError("blocking Feishu call made on the event loop thread")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # do not leave the work running after telling the caller it failed
            raise

    def pending(self) -> set[asyncio.Task[Any]]:
        """Tasks submitted and not finished yet (on the loop)."""
        return {task for task in self._tasks if not task.done()}

    async def _tracked(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await coro
        finally:
            self._tasks.discard(task)


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def report_failure(future: concurrent.futures.Future[Any], to: Any) -> None:
    """When ``future`` (a send) fails or is cancelled, say so in one ERROR line naming ``to``."""
    future.add_done_callback(lambda done: _log_failure(done, to))


def _log_failure(future: concurrent.futures.Future[Any], to: Any) -> None:
    if future.cancelled():
        log.error("A send to %s was cancelled at shutdown: it was not delivered", to)
    elif (error := future.exception()) is not None:
        log.error("Gave up sending to %s: %s", to, error)
