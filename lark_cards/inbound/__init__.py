"""Trusted envelopes → Errbot: the one place events reach the bot.

:class:`Inbound` holds one table keyed by event type (``handlers``): each entry names the
parser that turns the envelope into a record (``events``, ``room_events``) and the handler that
hands the record to Errbot (``messages``, ``clicks``). Unknown event types are logged at debug
level and dropped. The webhook calls :meth:`Inbound.dispatch` on the loop after the ack; the
envelope is parsed there (pure and quick) and the handler runs on one worker thread, "lark-in",
so Errbot's synchronous processing never blocks the loop and events reach it in arrival order.
Events queued but not yet handled are bounded: past ``backlog`` :meth:`Inbound.busy` is true
and the webhook answers 429, so Feishu delivers the event again later instead of it waiting
in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from errbot.backends.base import Identifier, Message, Reaction

from lark_cards.identifiers import Directory, Identities, LarkPerson
from lark_cards.inbound.clicks import (
    ChatTypes,
    ClickAnswers,
    CommandFilters,
    action_message,
    replacement,
)
from lark_cards.inbound.events import CardAction, MessageReceived, parse_message
from lark_cards.inbound.messages import (
    Membership,
    RoomCallbacks,
    member_callbacks,
    to_message,
    to_reaction,
)
from lark_cards.inbound.room_events import (
    MemberChange,
    ReactionChange,
    parse_member_change,
    parse_reaction_change,
)
from lark_cards.interactive import REPLACE_CARD
from lark_cards.settings import Settings
from lark_cards.transport.envelope import (
    CARD_ACTION,
    MEMBER_EVENTS,
    MESSAGE_RECEIVE,
    REACTION_EVENTS,
    Envelope,
    EventError,
)

__all__ = ["INBOUND_BACKLOG", "Inbound", "InboundBot", "Route"]

log = logging.getLogger(__name__)

# Events acked but not yet handed to Errbot. Past this the webhook answers 429, and Feishu
# retries 15 s later (docs/feishu-platform.md §1.8).
INBOUND_BACKLOG = 1000

R = TypeVar("R")


class InboundBot(CommandFilters, RoomCallbacks, Protocol):
    """What :class:`Inbound` uses of the backend (a ``LarkCardsBackend``, an ``ErrBot``)."""

    @property
    def bot_identifier(self) -> LarkPerson:
        """Replaced when the backend connects: read at use time, never kept."""
        ...

    @property
    def settings(self) -> Settings: ...

    @property
    def identities(self) -> Identities: ...

    @property
    def room_ops(self) -> Membership: ...

    @property
    def directory(self) -> Directory: ...

    def callback_message(self, msg: Message) -> None: ...

    def callback_mention(self, msg: Message, people: list[Identifier]) -> None: ...

    def callback_reaction(self, reaction: Reaction) -> None: ...


@dataclass(frozen=True, slots=True)
class Route(Generic[R]):
    """One entry of the handler table: how to read an event type, and what to do with it."""

    parse: Callable[[Envelope], R]  # pure; EventError when the event is unreadable
    handle: Callable[[R], None]  # runs on the inbound worker


class Inbound:
    """Routes verified envelopes to Errbot, in arrival order, on one worker thread."""

    def __init__(
        self,
        bot: InboundBot,
        *,
        backlog: int = INBOUND_BACKLOG,
        on_handled: Callable[[str], None] | None = None,
    ) -> None:
        self._bot = bot
        self._limit = backlog
        # Told each event id once it reached Errbot (or can never): the inbox forgets it.
        self._on_handled = on_handled or (lambda event_id: None)
        self._paused = False
        self._queued = 0  # dispatched but not yet handled: the loop counts up, the worker down
        self._lock = threading.Lock()
        self._worker = DaemonWorker("lark-in")
        self.chat_types = ChatTypes(lambda chat_id: bot.directory.chat(chat_id))
        self._clicks = ClickAnswers()
        reaction = Route(parse_reaction_change, self._on_reaction)
        member = Route(parse_member_change, self._on_member)
        self.handlers: Mapping[str, Route[Any]] = MappingProxyType(
            {
                MESSAGE_RECEIVE: Route(parse_message, self._on_message),
                CARD_ACTION: Route(self._clicks.take, self._on_click),
                **dict.fromkeys(REACTION_EVENTS, reaction),
                **dict.fromkeys(MEMBER_EVENTS, member),
            }
        )

    # ----- the transport's side (on the loop) ---------------------------------------------------

    def dispatch(self, event: Envelope) -> None:
        """Queue a verified event for Errbot; returns at once (the webhook's ``dispatch``)."""
        job = self._read(event)
        if job is None:
            self._on_handled(event.event_id)  # nothing to hand over, now or later
            return
        with self._lock:
            self._queued += 1
        self._worker.submit(self._counted, event.event_id, job)

    def answer(self, envelope: Envelope) -> Mapping[str, Any] | None:
        """The in-request answer to a card callback (the webhook's ``respond``): a toast.

        The action parsed for it is the one the following :meth:`dispatch` hands to Errbot.
        """
        return self._clicks.answer(envelope)

    def busy(self) -> bool:
        """True while the backlog is full: the webhook then answers 429."""
        return self._queued >= self._limit

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 (warns when it runs out)
        """Wait, at most ``timeout`` seconds, until every event dispatched so far reached
        Errbot (the worker is first in, first out). Returns at once after :meth:`close`."""
        try:
            flushed = asyncio.wrap_future(self._worker.submit(_nothing))
        except RuntimeError:  # closed already (Errbot's !restart shuts the backend down first)
            return
        await asyncio.wait([flushed], timeout=timeout)
        if not flushed.done():
            log.warning("%d inbound event(s) had not reached Errbot in time", self._queued)

    def pause(self) -> None:
        """Hand no more queued events to Errbot (a stop with a durable inbox: they wait in
        the state store for the next start, or another instance, instead of racing the
        shutdown deadline). The event being handled now finishes."""
        self._paused = True

    def close(self) -> None:
        """Stop the worker; events still queued are dropped (Feishu retries unacked ones)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    def handle(self, event: Envelope) -> None:
        """Parse and handle ``event`` now, on the calling thread (tests and tools)."""
        job = self._read(event)
        if job is not None:
            self._run(event.event_id, job)

    # ----- reading and handling ----------------------------------------------------------------

    def _read(self, event: Envelope) -> Callable[[], None] | None:
        """The handler call for ``event``, its record parsed; None when there is nothing to do."""
        route = self.handlers.get(event.event_type)
        if route is None:
            log.debug("Ignoring event type %s (%s)", event.event_type, event.event_id)
            return None
        try:
            return functools.partial(route.handle, route.parse(event))
        except EventError as error:
            log.info("Unreadable %s event %s: %s", event.event_type, event.event_id, error)
            return None

    def _counted(self, event_id: str, job: Callable[[], None]) -> None:
        try:
            if self._paused:
                return  # stays in the inbox: the next start (or another instance) runs it
            self._run(event_id, job)
            self._on_handled(event_id)
        finally:
            with self._lock:
                self._queued -= 1

    def _run(self, event_id: str, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("Failed to process event %s", event_id)

    def _on_message(self, event: MessageReceived) -> None:
        bot = self._bot
        self.chat_types.remember(event.chat_id, event.chat_type)
        msg, people = to_message(event, bot.bot_identifier, bot.identities)
        log.debug("Message %s from %s", event.message_id, msg.frm)
        bot.callback_message(msg)
        if people:
            bot.callback_mention(msg, people)

    def _on_click(self, action: CardAction) -> None:
        """A card click: its ``{"cmd": ...}`` runs as the clicker, through the ACLs."""
        bot = self._bot
        msg = action_message(action, bot.bot_identifier, bot.identities, self.chat_types)
        if msg is None:
            log.info("Card action %s has no command to run", action.event_id)
            return
        log.debug("Card action %s from %s: %s", action.event_id, msg.frm, msg.body)
        replace = replacement(bot, action, msg)
        if replace is not None:
            msg.extras[REPLACE_CARD] = replace
        bot.callback_message(msg)

    def _on_reaction(self, change: ReactionChange) -> None:
        bot = self._bot
        reaction = to_reaction(
            change, bot.bot_identifier, bot.identities, app_id=bot.settings.app_id
        )
        if reaction is not None:
            bot.callback_reaction(reaction)

    def _on_member(self, change: MemberChange) -> None:
        member_callbacks(self._bot, change, self._bot.identities, self._bot.room_ops)


class DaemonWorker:
    """One daemon thread running submitted calls in order. Daemon, unlike a
    ``ThreadPoolExecutor``'s, whose threads Python joins at exit: a plugin still busy when the
    shutdown deadline has passed must not keep the process alive past it."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._jobs = queue.SimpleQueue()
        self._closed = False
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def submit(self, function: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise RuntimeError("the worker is shut down")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, functools.partial(function, *args)))
        return future

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        """Take no more work; drop what is queued (``cancel_futures``); ``wait`` is not
        offered: the call under way is never waited for."""
        self._closed = True
        while cancel_futures:
            try:
                future, _ = self._jobs.get_nowait()
            except queue.Empty:
                break
            future.cancel()
        self._jobs.put((concurrent.futures.Future(), _stop))

    def _serve(self) -> None:
        while True:
            future, job = self._jobs.get()
            if job is _stop:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as error:  # the caller's future carries it
                future.set_exception(error)


def _stop() -> None:
    pass


def _nothing() -> None:
    pass
