"""An acked event is owned: claimed once across instances, kept until Errbot has it.

Before the transport acks an event, :meth:`Intake.claim` records it in the state store: the
claim on its ``event_id`` and ``message_id`` (atomic: two instances racing on one event, or a
replay after a restart, find it taken) and an inbox entry leased to this instance. When the
inbound worker has handed the event to Errbot, :meth:`Intake.done` drops the entry. An entry
still there after a stop or a crash is run by the next start, or — once its lease runs out —
by another instance (:meth:`Intake.recover`). Feishu never re-sends an acked event, so this is
what keeps one from being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from os import PathLike
from typing import Any

from lark_cards.settings import Settings
from lark_cards.state import MemoryStore, StateStore, open_state
from lark_cards.state.leader import Leadership
from lark_cards.transport.dedup import dedup_keys
from lark_cards.transport.envelope import Envelope

log = logging.getLogger(__name__)

# How long an instance owns an acked event it has not handed over yet; it renews the lease of
# what it holds every INBOX_LEASE / 3 (:meth:`Intake.recover`), so only a dead one loses it.
INBOX_LEASE = 60.0
RECOVER_LIMIT = 1000  # entries taken at once (the inbound backlog is bounded at 1000 too)


class Intake:
    """The backend's :class:`~lark_cards.transport.dedup.EventClaims`, on its state store,
    and what else lives there: the inbox's recovery and the plugins' leader lease. Made on
    the backend's loop (:meth:`open`); :meth:`handled` may be called from any thread."""

    def __init__(
        self, store: StateStore, *, owner: str, ttl: float, lease: float = INBOX_LEASE
    ) -> None:
        self.store = store
        self.owner = owner
        self.leadership = Leadership(store, owner)
        self._ttl = ttl
        self._lease = lease
        self._loop = asyncio.get_running_loop()
        self._in_flight: set[str] = set()  # dispatched here, not handed to Errbot yet
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, settings: Settings, data_dir: str | PathLike[str], owner: str) -> Intake:
        """The store ``LARK_CARDS['state_url']`` names; claims last as long as Feishu may
        retry and at least the replay window (a replay inside it must find its claim)."""
        store = await open_state(
            settings.state_url, data_dir, max_entries=settings.dedup_max_entries
        )
        ttl = max(settings.dedup_ttl, settings.replay_window or 0.0)
        return cls(store, owner=owner, ttl=ttl)

    @property
    def durable(self) -> bool:
        """Whether what the inbox holds outlives this process."""
        return not isinstance(self.store, MemoryStore)

    async def claim(self, envelope: Envelope) -> bool:
        """True when the event is new: it is now claimed and in the inbox, leased to us."""
        if not await self.store.claim(dedup_keys(envelope), self._ttl):
            return False
        try:
            await self.store.inbox_add(envelope.event_id, dumps(envelope), self.owner, self._lease)
        except Exception as error:
            # Claimed already: refusing now would make Feishu's retry a "duplicate" that
            # nothing runs. Run it from memory instead; only a crash before then loses it.
            log.warning(
                "event %s claimed but not kept in the inbox (%s): it runs from memory",
                envelope.event_id,
                error,
            )
        self._in_flight.add(envelope.event_id)
        return True

    def handled(self, event_id: str) -> None:
        """The event reached Errbot (any thread): it leaves the inbox."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: the next start runs it
            self._loop.call_soon_threadsafe(self._forget, event_id)

    def _forget(self, event_id: str) -> None:
        self._in_flight.discard(event_id)
        task = self._loop.create_task(self.store.inbox_done(event_id))
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("Inbox entry not removed (%s): it may run again after a restart", error)

    async def keep(self, dispatch: Callable[[Envelope], None], every: float | None = None) -> None:
        """Until cancelled: renew the leases of the events this instance holds and run the
        ones it does not run yet — its own from before a restart, a dead instance's."""
        while True:
            for envelope in await self.recover():
                if envelope.event_id not in self._in_flight:
                    log.info("Running event %s from the inbox", envelope.event_id)
                    self._in_flight.add(envelope.event_id)
                    dispatch(envelope)
            await asyncio.sleep(self._lease / 3 if every is None else every)

    async def close(self) -> None:
        """Finish the inbox writes under way, let go of the entries still held (a lease of
        zero: the next start, or another instance, takes them at once), close the store."""
        if self._writes:
            await asyncio.wait(self._writes, timeout=5)
        try:
            await self.store.inbox_claim(self.owner, 0.0, RECOVER_LIMIT)
        except Exception as error:  # their leases run out by themselves
            log.warning("Inbox entries not released (%s): others wait for their lease", error)
        await self.store.close()

    async def recover(self, limit: int = RECOVER_LIMIT) -> list[Envelope]:
        """Events this instance now holds: its own (their leases renewed) and those a dead
        instance left behind. The caller runs the ones it is not running already."""
        envelopes = []
        for event_id, payload in await self.store.inbox_claim(self.owner, self._lease, limit):
            try:
                envelopes.append(loads(payload))
            except (ValueError, KeyError, TypeError) as error:
                log.error("Inbox entry %s is unreadable (%s): dropped", event_id, error)
                await self.store.inbox_done(event_id)
        return envelopes


def dumps(envelope: Envelope) -> str:
    """An envelope as the inbox keeps it (it was verified already: no token check again)."""
    fields: dict[str, Any] = {
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "token": envelope.token,
        "app_id": envelope.app_id,
        "event": envelope.event,
    }
    return json.dumps(fields, ensure_ascii=False)


def loads(payload: str) -> Envelope:
    fields = json.loads(payload)
    return Envelope(
        event_id=str(fields["event_id"]),
        event_type=str(fields["event_type"]),
        token=fields.get("token"),
        event=dict(fields["event"]),
        app_id=fields.get("app_id"),
    )
