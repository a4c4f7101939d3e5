"""Cards that change in place: updatable cards, button cards and progress cards.

ChatOps wants "watch the deploy in one card", not a stream of messages; Feishu allows it for
app-sent cards up to 14 days old, at 5 PATCHes/s per message (§4.3). Names say which side a
class runs on: :class:`CardRef` and :class:`Progress` are what plugins hold on Errbot's worker
threads; :class:`AsyncCard` and :class:`AsyncProgress` are their loop-side halves.

Every update takes its chat's turn in the delivery path when it is *asked for*, like a send:
a plugin that updates a card and then sends a message sees the update land first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from lark_cards.api.ratelimit import Sleep
from lark_cards.outbound.delivery import Delivery, Sent
from lark_cards.outbound.target import Target
from lark_cards.render import Outgoing, RenderOptions, render_reply

log = logging.getLogger(__name__)
T = TypeVar("T")

# ``Outbox.run``: gives ``work`` its place in a chat's order now (its ticket, one number per
# message or update to that chat, in call order), runs ``work(delivery, ticket)`` on the loop.
# ``on_ticket`` hears the ticket before the work can start.
Work = Callable[[Delivery, int], Coroutine[Any, Any, T]]
OnTicket = Callable[[int], None]
Run = Callable[[str, Work[T], "OnTicket | None"], "tuple[int, concurrent.futures.Future[T]]"]

UPDATE_WINDOW = 14 * 86400.0  # §4.3: only cards sent in the last 14 days can be updated
PROGRESS_RATE = 2.0  # PATCHes/s of a progress card: leaves room under the 5/s for others
# How long a plugin thread waits for a card's send or final state: the send itself is bounded
# (the client's send deadline), and waiting less would report a delivery that still comes.
WAIT_TIMEOUT = 900.0
TURN_WAIT = 30.0  # an update waits this long, in its turn, for its card's earlier send


class CardExpiredError(Exception):
    """The card is older than Feishu's 14-day update window: send a new one instead."""


async def render_cards(text: str, options: RenderOptions) -> list[Outgoing]:
    """``text`` as cards, rendered off the loop. Always cards, even in ``auto`` mode: only a
    card can be PATCHed."""
    card_options = dataclasses.replace(options, mode="card")
    return await asyncio.to_thread(render_reply, text, options=card_options)


@dataclasses.dataclass(frozen=True)
class AsyncCard:
    """A sent card that can be updated in place (loop side)."""

    message_id: str
    chat_key: str
    sent_at: float  # wall seconds, for the 14-day window

    @classmethod
    def of(cls, sent: Mapping[str, Any], chat_key: str, *, now: float | None = None) -> AsyncCard:
        """The card Feishu just created (its send/reply ``data``)."""
        created = str(sent.get("create_time") or "")  # §4.1: milliseconds, as a string
        fallback = time.time() if now is None else now
        sent_at = int(created) / 1000 if created.isdigit() else fallback
        return cls(str(sent["message_id"]), chat_key, sent_at)

    async def update(
        self, delivery: Delivery, card: Mapping[str, Any] | Outgoing, *, now: float | None = None
    ) -> None:
        """PATCH the card; the caller holds the chat's turn. ``card`` is a card JSON, or a
        rendered card (then a refused user template is retried in the shipped one)."""
        age = (time.time() if now is None else now) - self.sent_at
        if age > UPDATE_WINDOW:
            raise CardExpiredError(
                f"card {self.message_id} was sent {age / 86400:.1f} days ago; Feishu updates "
                "cards for 14 days only: send a new card instead"
            )
        item = card if isinstance(card, Outgoing) else Outgoing("interactive", dict(card))
        await delivery.update_card(self.message_id, item)


class CardRef:
    """A card a plugin sent and may update later; every method may be called from any thread.

    Updates are applied in call order. ``update`` returns a future: ignore it, or call
    ``.result()`` to wait and see errors (e.g. :class:`CardExpiredError` after 14 days).
    """

    def __init__(
        self, run: Run[Any], chat_key: str, sent: concurrent.futures.Future[AsyncCard]
    ) -> None:
        self._run = run
        self._chat_key = chat_key
        self._sent = sent
        sent.add_done_callback(_log_failure)

    @property
    def message_id(self) -> str:
        """The card's Feishu message id (waits for the send to finish)."""
        return self._sent.result(WAIT_TIMEOUT).message_id

    def update(self, text: str) -> concurrent.futures.Future[None]:
        """Replace the card with ``text`` rendered as a card (its first card, if long)."""

        async def build(options: RenderOptions) -> Outgoing:
            return (await render_cards(text, options))[0]

        return self._update(build)

    def update_card(self, card: Mapping[str, Any]) -> concurrent.futures.Future[None]:
        """Replace the card with a card JSON you built (keep it 2.0, like the original)."""

        async def build(options: RenderOptions) -> Outgoing:
            return Outgoing("interactive", dict(card))

        return self._update(build)

    def _update(
        self, build: Callable[[RenderOptions], Coroutine[Any, Any, Outgoing]]
    ) -> concurrent.futures.Future[None]:
        async def work(delivery: Delivery, ticket: int) -> None:
            async with delivery.turn(self._chat_key):
                async with asyncio.timeout(TURN_WAIT):  # sent in an earlier turn: done or soon
                    card = await asyncio.wrap_future(self._sent)
                await card.update(delivery, await build(delivery.options))

        _, future = self._run(self._chat_key, work, None)
        future.add_done_callback(_log_failure)  # seen even when the plugin ignores the future
        return future


class AsyncProgress:
    """One card showing a command's progress, at most ``rate`` PATCHes per second.

    Every state takes its place in the chat's order when the plugin sets it (its ticket), so
    a state set before a message shows before that message. States set back to back, with no
    other message to the chat between them, coalesce: a state whose very next ticket is a
    newer state of this card is skipped, so 100 updates in a second cost ``rate`` PATCHes, not
    100. :meth:`finish` always delivers the final state: PATCHed in; if it needs more than one
    card, the rest follow as new messages; if the card cannot be PATCHed (never sent,
    rejected, expired) the final state is sent anew. Images in progress text are not
    uploaded: they show as links.
    """

    def __init__(
        self,
        target: Target,
        text: str,
        *,
        rate: float = PROGRESS_RATE,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.target = target
        self._interval = 1.0 / rate
        self._monotonic, self._sleep = monotonic, sleep
        self._first = text
        self._shown: str | None = None
        self._card: AsyncCard | None = None
        self._next_at = 0.0
        self._queued: set[int] = set()  # tickets of this card's states still to come

    def queued(self, ticket: int) -> None:
        """Note that ``ticket`` (taken on a plugin thread, before its work can run) is a
        state of this card."""
        self._queued.add(ticket)

    async def start(self, delivery: Delivery, ticket: int) -> None:
        """Send the card with its first state (later ones are PATCHed in)."""
        async with delivery.turn(self.target.chat_key):
            text = self._first
            try:
                first = (await render_cards(text, delivery.options))[0]
                sent = await delivery.send_items(self.target, [first])
                self._card = AsyncCard.of(sent[0], self.target.chat_key)
                self._shown = text
                self._next_at = self._monotonic() + self._interval
            except Exception as error:
                log.warning("Progress card could not be sent (%s); the final state will be", error)

    async def show(self, delivery: Delivery, ticket: int, text: str) -> None:
        """Show ``text`` in the chat's turn, unless a newer state of the card comes next."""
        async with delivery.turn(self.target.chat_key):
            self._queued.discard(ticket)
            if ticket + 1 not in self._queued:
                await self._show(delivery, text)

    async def finish(self, delivery: Delivery, ticket: int, text: str) -> list[Sent]:
        """Deliver the final state ``text``; returns once sent."""
        async with delivery.turn(self.target.chat_key):
            self._queued.discard(ticket)
            await self._show(delivery, text)
            final = await render_cards(text, delivery.options)
            rest = final[1:] if self._card is not None and self._shown == text else final
            # Messages of their own, so uuids of their own: the start used this seed's "0".
            seed = self.target.uuid_seed
            target = dataclasses.replace(self.target, uuid_seed=seed and f"{seed}:final")
            return await delivery.send_items(target, rest) if rest else []

    async def _show(self, delivery: Delivery, text: str) -> None:
        if self._card is None or text == self._shown:
            return
        wait = self._next_at - self._monotonic()
        if wait > 0:
            await self._sleep(wait)
        try:
            first = (await render_cards(text, delivery.options))[0]
            await self._card.update(delivery, first)
            self._shown = text
        except Exception as error:
            log.warning("Progress card %s stopped updating: %s", self._card.message_id, error)
            self._card = None  # the final state goes as a new message
        self._next_at = self._monotonic() + self._interval


class Progress:
    """A progress card for a plugin (thread side)::

        with self._bot.progress(msg, "Deploying…") as progress:
            progress.update("step 2/5")
        # leaving the block delivers the last state; an exception adds a "Failed" line

    ``update`` returns at once; ``finish`` waits until the final state is delivered.
    """

    def __init__(self, run: Run[Any], card: AsyncProgress, text: str) -> None:
        self._run, self._card = run, card
        self._last = text
        self._done = False
        _, started = run(card.target.chat_key, card.start, None)
        started.add_done_callback(_log_failure)

    def update(self, text: str) -> None:
        if self._done:
            raise RuntimeError("this progress card is finished")
        self._last = text
        shown = self._state(lambda delivery, ticket: self._card.show(delivery, ticket, text))
        shown.add_done_callback(_log_failure)

    def finish(self, text: str | None = None, timeout: float | None = WAIT_TIMEOUT) -> None:
        """Deliver the final state (``text``, else the last one set) and wait until it is."""
        if self._done:
            return
        self._done = True
        final = self._last if text is None else text
        self._state(lambda delivery, ticket: self._card.finish(delivery, ticket, final)).result(
            timeout
        )

    def _state(self, work: Work[Any]) -> concurrent.futures.Future[Any]:
        _, future = self._run(self._card.target.chat_key, work, self._card.queued)
        return future

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> None:
        final = None if error is None else f"{self._last}\n\n**Failed:** {error}"
        try:
            self.finish(final)
        except Exception as failure:  # never hide the block's own exception behind ours
            log.error("Progress card's final state was not delivered: %s", failure)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if future.cancelled():
        log.error("Sending or updating a card was cancelled at shutdown: it was not delivered")
    elif (error := future.exception()) is not None:
        log.error("Sending or updating a card failed: %s", error)
