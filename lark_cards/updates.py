"""Cards that change in place: PATCH a sent card (§4.3), and progress that coalesces updates.

ChatOps wants "watch the deploy in one card", not a stream of messages (issue 5); Feishu
allows it for app-sent cards up to 14 days old, at 5 PATCHes/s per message (§4.3). Loop side:
:class:`CardPatcher`, :class:`CardHandle`, :class:`ProgressCard`. Thread side (plugins on
Errbot's worker threads): :class:`Cards`, :class:`CardRef`, :class:`Progress`, thin wrappers
that cross into the loop with ``submit`` (the backend's ``_submit``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from errbot.backends.base import Identifier, Message

from lark_cards.api.client import MESSAGES_PATH
from lark_cards.api.ratelimit import KeyedLock, KeyedRateLimiter, Sleep
from lark_cards.interactive import with_buttons
from lark_cards.outbound import Sender, Target, target_of
from lark_cards.render import Outgoing, RenderOptions, render_reply

__all__ = ["CardExpiredError", "CardHandle", "CardPatcher", "CardRef", "Cards", "Progress"]

log = logging.getLogger(__name__)
Submit = Callable[[Coroutine[Any, Any, Any]], concurrent.futures.Future[Any]]

UPDATE_WINDOW = 14 * 86400.0  # §4.3: only cards sent in the last 14 days can be updated
PATCH_QPS = 5.0  # §4.3: per message
PROGRESS_RATE = 2.0  # PATCHes/s of a progress card: leaves room under the 5/s for others
WAIT_TIMEOUT = 30.0  # how long a plugin thread waits for a send or the final state


class CardExpiredError(Exception):
    """The card is older than Feishu's 14-day update window: send a new one instead."""


class CardPatcher:
    """PATCHes cards, one message at a time in call order, at most ``qps`` per message.

    The order lock matters as much as the pace: two PATCHes in flight could land in either
    order and leave the card showing the older state. ``clock`` is wall time (it is compared
    with send times); the limiter gets its own monotonic ``monotonic``/``sleep``.
    """

    def __init__(
        self,
        client: Any,
        *,
        qps: float = PATCH_QPS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._clock = clock
        self._limiter = KeyedRateLimiter(qps, clock=monotonic, sleep=sleep)
        self._order = KeyedLock()

    def handle(self, message_id: str, sent_at: float | None = None) -> CardHandle:
        """A handle on a sent card; ``sent_at`` (wall seconds) enables the 14-day check."""
        return CardHandle(message_id, sent_at, self)

    def handle_for(self, sent: Mapping[str, Any]) -> CardHandle:
        """The handle for a card Feishu just created (its send/reply ``data``)."""
        created = sent.get("create_time")  # §4.1: milliseconds, as a string
        sent_at = int(created) / 1000 if str(created or "").isdigit() else self._clock()
        return self.handle(str(sent["message_id"]), sent_at)

    async def patch(
        self, message_id: str, card: Mapping[str, Any], *, sent_at: float | None = None
    ) -> None:
        """Replace the card's content. A 2.0 card is always shared; a 1.0 card needs
        ``config.update_multi`` in both versions (§4.3)."""
        if sent_at is not None and (age := self._clock() - sent_at) > UPDATE_WINDOW:
            raise CardExpiredError(
                f"card {message_id} was sent {age / 86400:.1f} days ago; Feishu updates "
                "cards for 14 days only (§4.3): send a new card instead"
            )
        body = {"content": json.dumps(card, ensure_ascii=False)}
        async with self._order.hold(message_id):
            await self._limiter.acquire(message_id)
            path = f"{MESSAGES_PATH}/{quote(message_id, safe='')}"
            await self._client.request("PATCH", path, json=body)


@dataclasses.dataclass(frozen=True)
class CardHandle:
    """A sent card that can be updated in place (loop side)."""

    message_id: str
    sent_at: float | None
    patcher: CardPatcher

    async def update(self, card: Mapping[str, Any]) -> None:
        await self.patcher.patch(self.message_id, card, sent_at=self.sent_at)


def _cards(text: str, options: RenderOptions) -> list[Outgoing]:
    """``text`` as cards — ``render_markdown``'s cards, with the pieces kept for fallbacks.
    Always cards, even in ``auto`` mode: only a card can be PATCHed."""
    return render_reply(text, options=dataclasses.replace(options, mode="card"))


class ProgressCard:
    """One card showing the latest of many states, at most ``rate`` PATCHes per second.

    :meth:`set` only records the newest state; a single flusher task PATCHes whatever is
    newest when the pace allows, so 100 updates in a second cost ``rate`` PATCHes, not 100.
    :meth:`finish` always delivers the final state: it is PATCHed in; if it needs more than
    one card, the first card is PATCHed and the rest follow as new messages; if the card
    cannot be PATCHed (never sent, rejected, expired) the final state is sent anew.
    Images in progress text are not uploaded: they show as links.
    """

    def __init__(
        self,
        target: Target,
        *,
        rate: float = PROGRESS_RATE,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._target = target
        self._sender: Sender | None = None
        self._interval = 1.0 / rate
        self._monotonic, self._sleep = monotonic, sleep
        self._handle: CardHandle | None = None
        self._started = asyncio.Event()
        self._latest: str | None = None
        self._shown: str | None = None
        self._next_at = 0.0
        self._broken = False
        self._flusher: asyncio.Task[None] | None = None

    async def start(self, text: str, sender: Sender, patcher: CardPatcher) -> None:
        """Send the card with its first state; ``patcher`` updates it from then on."""
        self._sender = sender
        self._latest = self._shown = text
        try:
            first = _cards(text, sender.options)[0]
            sent = await sender.send(self._target, first.msg_type, first.content)
            self._handle = patcher.handle_for(sent)
            self._next_at = self._monotonic() + self._interval
        except Exception as error:
            self._shown, self._broken = None, True
            log.warning("Progress card could not be sent (%s); the final state will be", error)
        finally:
            self._started.set()

    async def push(self, text: str) -> None:
        self.set(text)

    def set(self, text: str) -> None:
        """Record the newest state (on the loop); it is shown when the pace allows."""
        self._latest = text
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        await self._started.wait()
        assert self._sender is not None  # start() sets it before _started
        options = self._sender.options
        while self._handle is not None and not self._broken and self._latest != self._shown:
            wait = self._next_at - self._monotonic()
            if wait > 0:
                await self._sleep(wait)
            text = self._latest
            assert text is not None
            try:
                await self._handle.update(_cards(text, options)[0].content)
                self._shown = text
            except Exception as error:
                self._broken = True
                log.warning("Progress card %s stopped updating: %s", self._handle, error)
            self._next_at = self._monotonic() + self._interval

    async def finish(self, text: str | None = None) -> None:
        """Deliver the final state (``text``, else the last one set); returns once sent."""
        if text is not None:
            self._latest = text
        self.set(self._latest or "")
        assert self._flusher is not None
        await self._flusher
        assert self._sender is not None  # start() ran: the flusher waited for it
        final = _cards(self._latest or "", self._sender.options)
        rest = final[1:] if not self._broken and self._shown == self._latest else final
        if rest:
            await self._sender.send_all(self._target, rest)


class CardRef:
    """A card a plugin sent and may update later; every method may be called from any thread.

    Updates are applied in call order. ``update`` returns a future: ignore it, or call
    ``.result()`` to wait and see errors (e.g. :class:`CardExpiredError` after 14 days).
    """

    def __init__(self, cards: Cards, sent: concurrent.futures.Future[CardHandle]) -> None:
        self._cards = cards
        self._sent = sent
        sent.add_done_callback(_log_failure)

    @property
    def message_id(self) -> str:
        """The card's Feishu message id (waits for the send to finish)."""
        return self._sent.result(WAIT_TIMEOUT).message_id

    def update(self, text: str) -> concurrent.futures.Future[None]:
        """Replace the card with ``text`` rendered as a card (its first card, if long)."""
        return self._submit(self._update(lambda options: _cards(text, options)[0].content))

    def update_card(self, card: Mapping[str, Any]) -> concurrent.futures.Future[None]:
        """Replace the card with a card JSON you built (keep it 2.0, like the original)."""
        return self._submit(self._update(lambda _: card))

    def _submit(self, update: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        future = self._cards.submit(update)
        future.add_done_callback(_log_failure)  # seen even when the plugin ignores the future
        return future

    async def _update(self, build: Callable[[RenderOptions], Mapping[str, Any]]) -> None:
        handle = await asyncio.wrap_future(self._sent)
        await handle.update(build(self._cards.sender().options))


class Progress:
    """A progress card for a plugin (thread side)::

        with self._bot.progress(msg, "Deploying…") as progress:
            progress.update("step 2/5")
        # leaving the block delivers the last state; an exception adds a "Failed" line

    ``update`` returns at once; ``finish`` waits until the final state is delivered.
    """

    def __init__(self, cards: Cards, card: ProgressCard, text: str) -> None:
        self._cards, self._card = cards, card
        self._last = text
        self._done = False
        cards.submit(self._start(text)).add_done_callback(_log_failure)

    async def _start(self, text: str) -> None:
        await self._card.start(text, self._cards.sender(), self._cards.patcher())

    def update(self, text: str) -> None:
        if self._done:
            raise RuntimeError("this progress card is finished")
        self._last = text
        self._cards.submit(self._card.push(text)).add_done_callback(_log_failure)

    def finish(self, text: str | None = None, timeout: float = WAIT_TIMEOUT) -> None:
        if self._done:
            return
        self._done = True
        self._cards.submit(self._card.finish(text)).result(timeout)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> None:
        self.finish(None if error is None else f"{self._last}\n\n**Failed:** {error}")


class Cards:
    """What the backend's plugin-facing methods call (thread side).

    ``sender`` returns the connected :class:`Sender` (raising when not connected); it is only
    called on the loop. One :class:`CardPatcher` is kept per sender, i.e. per connection.
    """

    def __init__(
        self,
        submit: Submit,
        sender: Callable[[], Sender],
        *,
        progress_rate: float = PROGRESS_RATE,
        patcher: Callable[[Any], CardPatcher] = CardPatcher,
    ) -> None:
        self.submit, self.sender = submit, sender
        self._progress_rate = progress_rate
        self._make_patcher = patcher
        self._patcher: tuple[Sender, CardPatcher] | None = None

    def patcher(self) -> CardPatcher:
        """The patcher of the current connection (loop side)."""
        sender = self.sender()
        if self._patcher is None or self._patcher[0] is not sender:
            self._patcher = (sender, self._make_patcher(sender.client))
        return self._patcher[1]

    def send_updatable(
        self,
        identifier: Identifier,
        content: str | Mapping[str, Any],
        in_reply_to: Message | None = None,
    ) -> CardRef:
        """Send markdown as cards (the ref updates the last), or one card JSON as it is."""

        def build(options: RenderOptions) -> list[Outgoing]:
            if isinstance(content, str):
                return _cards(content, options)
            return [Outgoing("interactive", dict(content))]

        return self._send(identifier, in_reply_to, build)

    def send_buttons(
        self,
        identifier: Identifier,
        text: str,
        buttons: Sequence[Mapping[str, Any]],
        in_reply_to: Message | None = None,
    ) -> CardRef:
        """``text`` as a card with ``buttons`` (see :func:`lark_cards.interactive.button`)
        in a row at the end; the ref updates that card (e.g. to remove the buttons)."""

        def build(options: RenderOptions) -> list[Outgoing]:
            *items, last = _cards(text, options)
            return [*items, dataclasses.replace(last, content=with_buttons(last.content, buttons))]

        return self._send(identifier, in_reply_to, build)

    def progress(self, reply: Message, text: str) -> Progress:
        """A progress card where ``reply`` (a ``build_reply`` message) would go."""
        card = ProgressCard(target_of(reply), rate=self._progress_rate)
        return Progress(self, card, text)

    def _send(
        self,
        identifier: Identifier,
        in_reply_to: Message | None,
        build: Callable[[RenderOptions], list[Outgoing]],
    ) -> CardRef:
        target = target_of(Message(to=identifier, parent=in_reply_to))

        async def send() -> CardHandle:
            sender = self.sender()
            sent = await sender.send_all(target, build(sender.options))
            return self.patcher().handle_for(sent[-1])

        return CardRef(self, self.submit(send()))


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.error("Sending or updating a card failed: %s", error)
