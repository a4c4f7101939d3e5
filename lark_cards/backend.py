"""The Errbot backend: Errbot's contract on one side, transport/api/render on the other.

Threads and loops: ``serve_once`` runs on Errbot's main thread and owns one asyncio loop for the
aiohttp event server and the Open API client. Errbot calls ``send_message`` from its worker
threads; those calls cross into the loop with ``asyncio.run_coroutine_threadsafe`` and return at
once. Incoming events go the other way: the webhook acks, then hands each envelope to a
single-thread executor so Errbot's synchronous processing never blocks the loop and messages
are seen in arrival order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from aiohttp import web
from errbot.backends.base import ONLINE, Message, Person
from errbot.core import ErrBot

from lark_cards.api import LarkAPIError, LarkClient
from lark_cards.bridge import LoopBridge, running_loop
from lark_cards.directory import CachedDirectory, LookupUnavailableError
from lark_cards.events import (
    CARD_ACTION,
    MESSAGE_RECEIVE,
    CardAction,
    Envelope,
    EventError,
    MessageReceived,
    parse_card_action,
    parse_message,
)
from lark_cards.files import StreamSender, incoming_file_extras
from lark_cards.identifiers import LarkPerson, LarkRoom, parse_identifier
from lark_cards.inbound import member_callbacks, to_message
from lark_cards.interactive import ChatKinds, action_message, answer_callback, command_allowed
from lark_cards.members import MEMBER_EVENTS, parse_member_event
from lark_cards.outbound import Sender, card_to_replace, target_of
from lark_cards.plugin_api import PluginAPI
from lark_cards.reactions import REACTION_EVENTS, ReactionBook, reaction_from_event
from lark_cards.render import Outgoing, RenderOptions, render_reply
from lark_cards.rooms import LarkRoomOperations
from lark_cards.settings import ConfigError, Settings
from lark_cards.transport.dedup import TTLSet
from lark_cards.transport.webhook import create_app
from lark_cards.updates import CardExpiredError, Cards

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errbot slices raw markdown every MESSAGE_SIZE_LIMIT characters before send_message sees it,
# which cuts code blocks and tables in half; the renderer splits structurally instead.
MESSAGE_SIZE_LIMIT = 1_000_000
# Events acked but not yet handed to Errbot (design: a bounded queue). Past this, the webhook
# answers 429 and Feishu delivers the event again later instead of it waiting in memory.
INBOUND_BACKLOG = 1000


class LarkCardsBackend(LoopBridge, PluginAPI, ErrBot):
    """Errbot backend for Feishu / Lark that answers with interactive cards."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        try:
            self.settings = Settings.from_config(config)
        except ConfigError as error:
            log.critical("lark-cards: %s", error)
            raise SystemExit(f"lark-cards: configuration error: {error}") from None
        self.bot_identifier = LarkPerson(self.settings.app_id)
        self.client: LarkClient | None = None
        self.sender: Sender | None = None
        self.render_options = RenderOptions.from_settings(self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._inbound = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lark-in")
        self._backlog = 0  # events acked but not yet handed to Errbot
        self._backlog_lock = threading.Lock()
        self.directory = CachedDirectory(self._fetch_user, self._fetch_chat)
        LarkPerson.directory = self.directory
        LarkRoom.directory = self.directory
        self.room_ops = LarkRoomOperations(
            self._run_request, app_id=self.settings.app_id, remember=self.directory.remember
        ).install()
        self.reaction_book = ReactionBook(app_id=self.settings.app_id)
        self.streams = StreamSender(self._submit, self._send_file)
        self.cards = Cards(self._submit, self._connected_sender)
        self.chat_kinds = ChatKinds(self.directory.chat)

    def set_message_size_limit(
        self, limit: int = MESSAGE_SIZE_LIMIT, hard_limit: int = MESSAGE_SIZE_LIMIT
    ) -> None:
        super().set_message_size_limit(limit, hard_limit)

    @property
    def mode(self) -> str:
        return "lark"

    # ----- serving ------------------------------------------------------------------------------

    def serve_once(self) -> bool:
        """Run the loop until a shutdown is requested (True) or the connection fails (False)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            return loop.run_until_complete(self._serve())
        finally:
            self._loop = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> bool:
        self._stop = asyncio.Event()
        signals = self._install_signal_handlers(self._stop)
        client = LarkClient.from_settings(self.settings)
        await client.start()
        self.client = client
        self.sender = Sender(client, self.render_options, upload_images=self.settings.upload_images)
        runner: web.AppRunner | None = None
        try:
            bot = await client.bot_info()
            if not bot.get("open_id"):
                raise LarkAPIError(-1, "bot/v3/info returned no open_id: is the bot enabled?")
            self.bot_identifier = LarkPerson(bot["open_id"], name=bot.get("app_name"))
            log.info("Connected to %s as %s", self.settings.base_url, self.bot_identifier.nick)
            # Plugins activate before the server opens, so the first event finds its commands.
            await asyncio.get_running_loop().run_in_executor(None, self.connect_callback)
            runner = await self._start_server()
            self.reset_reconnection_count()
            await self._stop.wait()
            return True
        except (LarkAPIError, OSError) as error:
            log.error("lark-cards: cannot serve: %s", error)
            return False
        finally:
            if runner is not None:
                await runner.cleanup()  # first stop acking: an acked event is never dropped
            await self._drain()
            await self.sender.close()
            await client.close()
            self.client = self.sender = None
            for signum in signals:
                asyncio.get_running_loop().remove_signal_handler(signum)

    async def _start_server(self) -> web.AppRunner:
        dedup = TTLSet(self.settings.dedup_ttl, self.settings.dedup_max_entries)
        app = create_app(
            self.settings,
            self._dispatch,
            dedup=dedup,
            respond=answer_callback,
            busy=lambda: self._backlog >= INBOUND_BACKLOG,
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        await site.start()
        log.info(
            "Listening for Feishu events on http://%s:%d%s",
            self.settings.host,
            self.settings.port,
            self.settings.path,
        )
        if not (self.settings.encrypt_key or self.settings.verification_token):
            log.warning("No encrypt_key or verification_token: anyone can post events.")
        return runner

    def _install_signal_handlers(self, stop: asyncio.Event) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return [signal.SIGINT, signal.SIGTERM]

    async def _drain(self) -> None:
        """Let acked events reach Errbot and pending sends finish, within one bounded time;
        then cancel what is left. Sends started meanwhile (answers to those events) are
        waited for too, until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        try:  # FIFO: this runs once every event acked before it reached Errbot
            inbound = asyncio.wrap_future(self._inbound.submit(lambda: None))
            await asyncio.wait([inbound], timeout=self.settings.shutdown_timeout)
        except RuntimeError:  # shutdown() already closed it (Errbot's !restart)
            pass
        while pending := {task for task in self._tasks if not task.done()}:
            remaining = deadline - loop.time()
            if remaining <= 0:
                for task in pending:
                    task.cancel()
                log.warning("Dropped %d send(s) still pending at shutdown", len(pending))
                return
            log.info("Waiting for %d pending send(s)", len(pending))
            await asyncio.wait(pending, timeout=remaining)

    def shutdown(self) -> None:
        self.request_stop()
        self._inbound.shutdown(wait=False, cancel_futures=True)
        self.streams.close()
        super().shutdown()

    def request_stop(self) -> None:
        """Ask ``serve_once`` to return (thread-safe)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    # ----- crossing between Errbot's threads and the loop ---------------------------------------

    def _run_request(self, request: Callable[[LarkClient], Coroutine[Any, Any, Any]]) -> Any:
        """One Open API request on the loop, from an Errbot thread (for room operations)."""
        return self._call(request(self._connected_client()))

    def _fetch_user(self, open_id: str) -> Mapping[str, Any]:
        return self._lookup(lambda client: client.user_info(open_id))

    def _fetch_chat(self, chat_id: str) -> Mapping[str, Any]:
        return self._lookup(lambda client: client.chat_info(chat_id))

    def _lookup(
        self, request: Callable[[LarkClient], Coroutine[Any, Any, dict[str, Any]]]
    ) -> Mapping[str, Any]:
        client, loop = self.client, self._loop
        if client is None or loop is None or running_loop() is loop:
            raise LookupUnavailableError  # never block the loop on a profile lookup
        return self._call(request(client))

    def _connected_client(self) -> LarkClient:
        if self.client is None:
            raise RuntimeError("lark-cards is not connected")
        return self.client

    def _connected_sender(self) -> Sender:
        if self.sender is None:
            raise RuntimeError("lark-cards is not connected")
        return self.sender

    # ----- incoming -----------------------------------------------------------------------------

    def _dispatch(self, envelope: Envelope) -> None:
        """Called on the loop by the webhook after the ack; must return at once."""
        with self._backlog_lock:  # the loop counts up, the inbound worker counts down
            self._backlog += 1
        self._inbound.submit(self._handle_envelope, envelope)

    def _handle_envelope(self, envelope: Envelope) -> None:
        try:
            self._handle_event(envelope)
        finally:
            with self._backlog_lock:
                self._backlog -= 1

    def _handle_event(self, envelope: Envelope) -> None:
        try:
            if envelope.event_type == MESSAGE_RECEIVE:
                self._handle_message(parse_message(envelope), envelope.event.get("message"))
            elif envelope.event_type == CARD_ACTION:
                self._handle_card_action(parse_card_action(envelope))
            elif envelope.event_type in REACTION_EVENTS:
                reaction = reaction_from_event(
                    envelope, self.bot_identifier.open_id, bot_app_id=self.settings.app_id
                )
                if reaction is not None:
                    self.callback_reaction(reaction)
            elif envelope.event_type in MEMBER_EVENTS:
                member_callbacks(self, parse_member_event(envelope), self.room_ops)
            else:
                log.debug("Ignoring event type %s (%s)", envelope.event_type, envelope.event_id)
        except EventError as error:
            log.info("Unreadable %s event %s: %s", envelope.event_type, envelope.event_id, error)
        except Exception:
            log.exception("Failed to process event %s", envelope.event_id)

    def _handle_message(self, event: MessageReceived, raw: Any = None) -> None:
        self.chat_kinds.remember(event.chat_id, event.chat_type)
        msg, people = to_message(event, self.bot_identifier)
        if isinstance(raw, Mapping):  # images and files: their keys, for download_file
            msg.extras.update(incoming_file_extras(event.message_type, raw.get("content")))
        log.debug("Message %s from %s", event.message_id, msg.frm)
        self.callback_message(msg)
        if people:
            self.callback_mention(msg, people)

    def _handle_card_action(self, action: CardAction) -> None:
        """A card click: its {"cmd": ...} runs as the clicker, through ACLs (design.md §3)."""
        msg = action_message(action, self.bot_identifier, self.chat_kinds)
        if msg is None:
            log.info("Card action %s has no command to run", action.event_id)
            return
        log.debug("Card action %s from %s: %s", action.event_id, msg.frm, msg.body)
        if msg.extras.get("replace") and not command_allowed(self, msg):
            msg.extras["replace"] = False  # a refusal goes under the card, never over it
        self.callback_message(msg)

    def is_from_self(self, msg: Message) -> bool:
        return isinstance(msg.frm, LarkPerson) and msg.frm.open_id == self.bot_identifier.open_id

    # ----- outgoing -----------------------------------------------------------------------------

    def send_message(self, msg: Message) -> None:
        super().send_message(msg)
        self._submit_send(self._deliver(msg), msg.to)

    async def _deliver(self, msg: Message) -> None:
        sender = self._connected_sender()
        target = target_of(msg)
        async with sender.in_order(target):
            images = await sender.image_keys(msg.body)
            mention = msg.extras.get("mention")
            # Rendering is pure CPU work: off the loop, so acks and other sends never wait.
            items = await asyncio.to_thread(
                render_reply, msg.body, images=images, options=sender.options, mention=mention
            )
            card_id = card_to_replace(msg, target)
            if card_id is not None and items and items[0].msg_type == "interactive":
                items = await self._replace_card(msg, card_id, items)
            await sender.send_all(target, items)

    async def _replace_card(
        self, msg: Message, card_id: str, items: list[Outgoing]
    ) -> list[Outgoing]:
        """A button whose value said "replace": the command's first answer takes the clicked
        card's place (later answers go under it); on failure everything goes under it."""
        try:
            await self.cards.patcher().patch(card_id, items[0].content)
        except (LarkAPIError, CardExpiredError) as error:
            log.warning("Cannot replace card %s (%s); replying under it", card_id, error)
            return items
        msg.parent.extras["replace"] = False
        return items[1:]

    def build_reply(
        self, msg: Message, text: str | None = None, private: bool = False, threaded: bool = False
    ) -> Message:
        reply = self.build_message(text or "")
        reply.frm = self.bot_identifier
        reply.parent = msg
        if private or msg.is_direct:
            p2p_chat = msg.frm.client if msg.is_direct else None
            reply.to = LarkPerson(msg.frm.open_id, chat_id=p2p_chat)
        else:
            reply.to = msg.to
        if private and not msg.is_direct:
            reply.parent = None  # the reply API would answer in the group, not privately
        reply.extras["reply_in_thread"] = threaded
        return reply

    def prefix_groupchat_reply(self, message: Message, identifier: Person) -> None:
        """Mention the asker: a real Feishu mention on its own line above the reply, added by
        the renderer (mention tags inside the reply's own text are shown as text)."""
        super().prefix_groupchat_reply(message, identifier)
        message.extras["mention"] = identifier.person

    def change_presence(self, status: str = ONLINE, message: str = "") -> None:
        log.debug("Feishu bots have no presence; ignoring change to %s", status)

    # ----- identifiers and rooms ----------------------------------------------------------------

    def build_identifier(self, text_representation: str) -> LarkPerson | LarkRoom:
        return parse_identifier(text_representation)

    def query_room(self, room: str) -> LarkRoom:
        identifier = parse_identifier(room)
        if not isinstance(identifier, LarkRoom):
            raise ValueError(f"{room!r} is not a chat id (oc_…)")
        return identifier

    def rooms(self) -> list[LarkRoom]:
        """The group chats the bot is a member of."""
        chats = self._call(self._connected_client().list_chats())
        for chat in chats:
            self.directory.remember("chat", chat["chat_id"], chat)
        return [LarkRoom(chat["chat_id"], name=chat.get("name")) for chat in chats]
