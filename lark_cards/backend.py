"""The Errbot backend: Errbot's contract on one side, the stages of the data path on the other.

Threads and loops: ``serve_once`` runs on Errbot's main thread and owns one asyncio loop for the
aiohttp event server and the Open API client. Errbot calls ``send_message`` from its worker
threads; those calls go to the ``Outbox``, which crosses into the loop through the
``LoopBridge`` and returns at once. Incoming events go the other way: the transport acks, then
hands each event to ``Inbound``, whose one worker thread keeps Errbot's synchronous processing
off the loop and in arrival order.

How a message flows: ``transport`` (bytes → trusted envelope) → ``inbound`` (envelope → Errbot
call) → Errbot and the plugin → ``outbound`` (reply → target, turn, compose, send) →
``render`` (markdown → card JSON) → ``api`` (the one request path to Feishu).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from errbot.backends.base import ONLINE, Message, Person
from errbot.core import ErrBot

from lark_cards import identifiers
from lark_cards.api import chats, contacts
from lark_cards.api.client import LarkClient
from lark_cards.api.errors import CredentialsRejected, LarkAPIError
from lark_cards.api.reactions import ReactionBook
from lark_cards.bridge import LoopBridge, favour_the_loop
from lark_cards.directory import CachedDirectory, LookupUnavailableError
from lark_cards.identifiers import Identities, LarkPerson, LarkRoom
from lark_cards.inbound import Inbound
from lark_cards.inbound.intake import Intake
from lark_cards.outbound import Delivery, Outbox
from lark_cards.outbound.target import CAUSED_BY, cause_of
from lark_cards.plugin_api import PluginAPI
from lark_cards.render import RenderOptions
from lark_cards.rooms import LarkRoomOperations
from lark_cards.settings import ConfigError, Settings
from lark_cards.transport.longconn import Fatal, LongConnection
from lark_cards.transport.pushed import PushedEvents
from lark_cards.transport.reception import Reception
from lark_cards.transport.server import start_server, unbindable
from lark_cards.transport.webhook import create_app

log = logging.getLogger(__name__)
T = TypeVar("T")

# Errbot slices raw markdown every MESSAGE_SIZE_LIMIT characters before send_message sees it,
# which cuts code blocks and tables in half; the renderer splits structurally instead.
MESSAGE_SIZE_LIMIT = 1_000_000
COMMAND_POLL = 0.05  # how often a shutdown looks whether running commands have ended


def stop_for_good(what: str, error: Exception) -> NoReturn:
    """The one way out for what a retry cannot fix (a config error, wrong credentials, a
    port in use, a long connection Feishu refuses): Errbot would otherwise call
    ``serve_once`` again with backoff, forever, and the reason would scroll away. One
    CRITICAL line naming what to change, and the process ends."""
    log.critical("lark-cards: %s: %s", what, error)
    raise SystemExit(f"lark-cards: {what}: {error}") from None


class LarkCardsBackend(PluginAPI, ErrBot):
    """Errbot backend for Feishu / Lark that answers with interactive cards."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        # At BOT_LOG_LEVEL = DEBUG markdown-it-py logs a record per rule per reply (~1,000),
        # which makes every render three times slower; its warnings still show.
        logging.getLogger("markdown_it").setLevel(logging.WARNING)
        favour_the_loop()  # Errbot threads rendering replies must not delay the acks
        try:
            self.settings = Settings.from_config(config)
        except ConfigError as error:
            stop_for_good("configuration error", error)
        self.bot_identifier = LarkPerson(self.settings.app_id)
        self.render_options = RenderOptions.from_settings(self.settings)
        self.bridge = LoopBridge()
        self.client: LarkClient | None = None
        self.delivery: Delivery | None = None
        self._stop: asyncio.Event | None = None
        self.directory = CachedDirectory(self._fetch_user, self._fetch_chat)
        self.identities = Identities(self.directory)
        self.room_ops = LarkRoomOperations(
            self._run_request,
            app_id=self.settings.app_id,
            identities=self.identities,
            remember=self.directory.remember,
        )
        self.identities.rooms = self.room_ops
        self.reaction_book = ReactionBook(app_id=self.settings.app_id)
        self.outbox = Outbox(self.bridge, self.connected_delivery)
        self.inbound = Inbound(self, on_handled=self._handled)
        self.intake: Intake | None = None  # the state store, while serving
        # This instance, for leases: the same after a restart (so it takes back at once what
        # it left in the inbox), distinct per host and BOT_DATA_DIR (one per instance).
        self._owner = f"{socket.gethostname()}:{os.path.abspath(self._data_dir())}"
        self._commands: dict[object, tuple[str, str]] = {}  # running: (where, command text)
        self._commands_lock = threading.Lock()
        self._activated = False  # connect_callback has run (plugins activated)

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
        self.bridge.attach(loop)
        try:
            return loop.run_until_complete(self._serve())
        finally:
            self.bridge.detach()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> bool:
        self._stop = asyncio.Event()
        signals = self._install_signal_handlers(self._stop)
        client = LarkClient.from_settings(self.settings)
        await client.start()
        self.client = client
        delivery = Delivery(client, self.render_options, upload_images=self.settings.upload_images)
        self.delivery = delivery
        runner: web.AppRunner | None = None
        connection: LongConnection | None = None
        keeping: list[asyncio.Task[None]] = []
        try:
            self.intake = intake = await Intake.open(self.settings, self._data_dir(), self._owner)
            bot = await contacts.bot_info(client)  # the first call: it fetches the token
            if not bot.get("open_id"):
                raise LarkAPIError(-1, "bot/v3/info returned no open_id: is the bot enabled?")
            self.bot_identifier = self.identities.person(bot["open_id"], name=bot.get("app_name"))
            identifiers.install(self.identities)
            log.info("Connected to %s as %s", self.settings.base_url, self.bot_identifier.nick)
            # Plugins activate before events can arrive, so the first one finds its commands.
            keeping.append(asyncio.create_task(intake.leadership.run()))
            await self._activate_plugins()
            reception = Reception(
                self.inbound.dispatch,
                intake,
                respond=self.inbound.answer,
                busy=self.inbound.busy,
            )
            if self.settings.mode == "websocket":
                connection = LongConnection(self.settings, PushedEvents(self.settings, reception))
                keeping.append(connection.start())
            else:
                runner = await self._start_server(reception)
            keeping.append(asyncio.create_task(intake.keep(self.inbound.dispatch)))
            self.reset_reconnection_count()
            await self._until_stopped(connection)
            return True
        except ConfigError as error:  # the state store cannot be opened: a retry cannot help
            stop_for_good("configuration error", error)
        except CredentialsRejected as error:  # a wrong app_id or app_secret (either mode)
            stop_for_good("cannot start", error)
        except Fatal as error:  # a port we can never bind; or from the long connection: wrong
            # credentials, not a self-built app, too many connections
            stop_for_good("long connection" if connection is not None else "cannot start", error)
        except (LarkAPIError, OSError) as error:  # network down, 5xx, rate limits: retried
            log.error("lark-cards: cannot serve: %s", error)
            return False
        finally:
            # First stop acking: an acked event is never dropped.
            if connection is not None:
                await connection.close()
            if runner is not None:
                await runner.cleanup()
            for task in keeping:  # the leader lease is given up at once
                task.cancel()
            await asyncio.gather(*keeping, return_exceptions=True)
            await self._drain()
            await delivery.close()
            await client.close()
            if self.intake is not None:
                await self.intake.close()
            self.client = self.delivery = self.intake = None
            identifiers.uninstall(self.identities)
            for signum in signals:
                asyncio.get_running_loop().remove_signal_handler(signum)

    async def _activate_plugins(self) -> None:
        """Errbot's ``connect_callback``, once per process: Errbot calls ``serve_once`` again
        after a failure, and plugins told twice that the bot connected answer twice
        (err-backend-slackv3#12). The long connection reconnects inside one ``serve_once``."""
        if not self._activated:
            await asyncio.get_running_loop().run_in_executor(None, self.connect_callback)
            self._activated = True

    async def _start_server(self, reception: Reception) -> web.AppRunner:
        app = create_app(self.settings, reception=reception)
        host, port = self.settings.host, self.settings.port
        # Request deadline, keep-alive, connection cap and quiet logs: transport/server.py.
        try:
            runner = await start_server(app, host, port)
        except OSError as error:
            if (problem := unbindable(error, host, port)) is not None:
                raise Fatal(problem) from None  # the port is taken: retrying cannot help
            raise
        log.info(
            "Listening for Feishu events on http://%s:%d%s",
            self.settings.host,
            self.settings.port,
            self.settings.path,
        )
        return runner

    async def _until_stopped(self, connection: LongConnection | None) -> None:
        """Wait for a shutdown request, or for the long connection to end (only a
        :class:`Fatal` problem ends it: raised here)."""
        assert self._stop is not None
        stopped = asyncio.ensure_future(self._stop.wait())
        waiting: set[asyncio.Future[Any]] = {stopped}
        if connection is not None and connection.task is not None:
            waiting.add(connection.task)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if connection is not None and connection.task is not None and connection.task.done():
            connection.task.result()

    def _install_signal_handlers(self, stop: asyncio.Event) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return [signal.SIGINT, signal.SIGTERM]

    async def _drain(self) -> None:
        """Finish acknowledged work within ``shutdown_timeout``: acked events reach Errbot,
        running commands end, their answers are sent. What the deadline cuts off is named,
        one ERROR line each: a command still running, a send still pending (cancelled)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        if self.intake is not None and self.intake.durable:
            self.inbound.pause()  # queued events wait in the inbox for the next start
        await self.inbound.drain(self.settings.shutdown_timeout)
        while (pending := self.bridge.pending()) or self._running_commands():
            remaining = deadline - loop.time()
            if remaining <= 0:
                for where, command in self._running_commands():
                    log.error(
                        "Shutdown cut off %r in %s: its answers may be missing", command, where
                    )
                for task in pending:
                    task.cancel()  # each is named by its own ERROR line (bridge)
                return
            if pending:
                log.info("Waiting for %d pending send(s)", len(pending))
                await asyncio.wait(pending, timeout=min(remaining, COMMAND_POLL))
            else:
                await asyncio.sleep(min(remaining, COMMAND_POLL))

    def _execute_and_send(
        self, cmd: str, args: Any, match: Any, msg: Message, template_name: str | None = None
    ) -> None:
        """Errbot runs every command here, on its thread pool; tracked so a shutdown waits
        for running commands and names the ones it has to cut off."""
        token = object()
        with self._commands_lock:
            self._commands[token] = (str(msg.to), msg.body)
        try:
            super()._execute_and_send(cmd, args, match, msg, template_name)
        finally:
            with self._commands_lock:
                del self._commands[token]

    def _handled(self, event_id: str) -> None:
        if (intake := self.intake) is not None:
            intake.handled(event_id)

    def _data_dir(self) -> str:
        return str(getattr(self.bot_config, "BOT_DATA_DIR", None) or ".")

    def _running_commands(self) -> list[tuple[str, str]]:
        with self._commands_lock:
            return list(self._commands.values())

    def shutdown(self) -> None:
        self.request_stop()
        self.inbound.close()
        self.outbox.close()
        super().shutdown()

    def request_stop(self) -> None:
        """Ask ``serve_once`` to return (thread-safe)."""
        loop, stop = self.bridge.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    # ----- crossing between Errbot's threads and the loop ---------------------------------------

    def _run_request(self, request: Callable[[LarkClient], Coroutine[Any, Any, T]]) -> T:
        """One Open API request on the loop, from an Errbot thread (for room operations)."""
        return self.bridge.call(request(self.connected_client()))

    def _fetch_user(self, open_id: str) -> Mapping[str, Any]:
        return self._lookup(lambda client: contacts.user_info(client, open_id))

    def _fetch_chat(self, chat_id: str) -> Mapping[str, Any]:
        return self._lookup(lambda client: chats.chat_info(client, chat_id))

    def _lookup(
        self, request: Callable[[LarkClient], Coroutine[Any, Any, dict[str, Any]]]
    ) -> Mapping[str, Any]:
        client = self.client
        if client is None or self.bridge.loop is None or self.bridge.on_loop():
            raise LookupUnavailableError  # never block the loop on a profile lookup
        return self.bridge.call(request(client))

    def connected_client(self) -> LarkClient:
        """The Open API client of the running connection."""
        if self.client is None:
            raise RuntimeError("lark-cards is not connected")
        return self.client

    def connected_delivery(self) -> Delivery:
        """The delivery path of the running connection (called on the loop)."""
        if self.delivery is None:
            raise RuntimeError("lark-cards is not connected")
        return self.delivery

    def is_from_self(self, msg: Message) -> bool:
        return isinstance(msg.frm, LarkPerson) and msg.frm.open_id == self.bot_identifier.open_id

    # ----- outgoing -----------------------------------------------------------------------------

    def send_message(self, msg: Message) -> None:
        super().send_message(msg)
        self.outbox.send_reply(msg)

    def build_reply(
        self, msg: Message, text: str | None = None, private: bool = False, threaded: bool = False
    ) -> Message:
        reply = self.build_message(text or "")
        reply.frm = self.bot_identifier
        reply.parent = msg
        if private or msg.is_direct:
            p2p_chat = msg.frm.client if msg.is_direct else None
            reply.to = self.identities.person(msg.frm.open_id, chat_id=p2p_chat)
        else:
            reply.to = msg.to
        if private and not msg.is_direct:
            reply.parent = None  # the reply API would answer in the group, not privately
        reply.extras["reply_in_thread"] = threaded
        reply.extras[CAUSED_BY] = cause_of(msg)  # kept without a parent: idempotent uuids
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
        return self.identities.parse(text_representation)

    def query_room(self, room: str) -> LarkRoom:
        identifier = self.identities.parse(room)
        if not isinstance(identifier, LarkRoom):
            raise ValueError(f"{room!r} is not a chat id (oc_…)")
        return identifier

    def rooms(self) -> list[LarkRoom]:
        """The group chats the bot is a member of."""
        listed = self.bridge.call(chats.list_chats(self.connected_client()))
        for chat in listed:
            self.directory.remember("chat", chat["chat_id"], chat)
        return [self.identities.room(chat["chat_id"], name=chat.get("name")) for chat in listed]
