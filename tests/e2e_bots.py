"""Real ``errbot`` processes with the LarkCards backend, against one fake Open Platform.

For the end-to-end tests (``test_e2e_errbot.py``, ``test_e2e_restarts.py``). :func:`running`
serves a :class:`~lark_cards.sandbox.openapi.FakeOpenPlatform` on 127.0.0.1 and yields
:class:`Bots`; ``await bots.start(...)`` writes an errbot config (an optional ``LARK_CARDS``
dict, other config names, a ``BOT_DATA_DIR`` that may be another bot's) and starts the bot the
way a user does (``errbot -c config.py``, the backend loaded through ``BOT_EXTRA_BACKEND_DIR``)
on its own loopback port, returning once ``/healthz`` answers. Every bot is one app on the one
platform, so several bots are instances behind one load balancer. When the block ends every
bot still running is stopped (Ctrl-C, then a kill), before the platform it talks to goes away.

Events are posted as Feishu posts them: encrypted and signed (``Bot.sign``), so one signed
request can be delivered again byte for byte, to the same bot or another. A bot started with
``mode="websocket"`` opens no port: it connects to the platform's long-connection hub
(``Bots.hub``, quick pings so a dead socket is seen within seconds), which pushes events to
one connected bot at random, as Feishu's cluster mode does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import secrets
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from redis_server import free_port

from lark_cards.sandbox.delivery import event_request, message_envelope
from lark_cards.sandbox.longconn import ClientConfig, LongConnHub
from lark_cards.sandbox.openapi import FakeOpenPlatform
from lark_cards.sandbox.state import StoredMessage

__all__ = [
    "ADMIN",
    "GROUP",
    "TIMING",
    "Ack",
    "Bot",
    "Bots",
    "Request",
    "message_id",
    "running",
    "text_of",
    "wait_until",
]

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "fixtures" / "plugins"  # !slow N, !leader
ADMIN = "ou_admin0000000000000000000000000000"
GROUP = "oc_e2egroup000000000000000000000000"
TOKEN = "e2e-verification-token"
START_LIMIT = 60.0  # seconds a bot may take to answer /healthz
STOP_GRACE = 20.0  # seconds a bot gets after Ctrl-C at the end before it is killed
ACK_WAIT = aiohttp.ClientTimeout(total=10)  # Feishu gives up after 3 s; be lenient

CORE_PLUGINS = ("ACLs", "Help", "Health", "Utils", "CommandNotFoundFilter")
# Quiet: markdown-it logs a DEBUG line per rule per reply.
PREAMBLE = 'import logging\nlogging.getLogger("markdown_it").setLevel(logging.INFO)\n'

# Errbot logs every command it runs, once, before running it.
_RUN = re.compile(r'Processing command "(?P<cmd>[^"]+)" with parameters "(?P<args>[^"]*)"')

Request = tuple[bytes, dict[str, str]]  # a signed POST: its body and headers
# The long connection's timing for these tests: a ping a second, so a silent socket is dead
# after 3 s (2 intervals + a grace of one); reconnects at once, then 1 s apart.
TIMING = ClientConfig(ping_interval=1, reconnect_nonce=0, reconnect_interval=1)


@dataclass(frozen=True)
class Ack:
    """The bot's answer to one delivery: the HTTP status and the body's ``msg``
    (``"ok"`` for a new event, ``"duplicate"`` for one it had already)."""

    status: int
    msg: str | None


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], limit: float, what: str
) -> float:
    """Poll ``predicate`` (sync or async) every 0.1 s until true; the seconds it took.
    AssertionError naming ``what`` after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return loop.time() - started
        if loop.time() - started > limit:
            raise AssertionError(f"timed out after {limit:g} s waiting for {what}")
        await asyncio.sleep(0.1)


def message_id(payload: Mapping[str, Any]) -> str:
    """The ``message_id`` of a user's message envelope (what the bot's answers reply to)."""
    return str(payload["event"]["message"]["message_id"])


def text_of(message: StoredMessage) -> str:
    """The markdown of a card the bot sent (its elements' text, joined; a ``div``'s plain
    text too, as Errbot's refusals come in the error template)."""
    elements = message.content.get("body", {}).get("elements", [])
    texts = [e.get("content") or (e.get("text") or {}).get("content", "") for e in elements]
    return "\n".join(str(text) for text in texts).strip()


@dataclass
class Bot:
    """One running ``errbot`` process (an instance of the app)."""

    name: str
    url: str
    platform: FakeOpenPlatform
    encrypt_key: str
    process: subprocess.Popen[str]
    log_file: Path
    data_dir: Path
    session: aiohttp.ClientSession

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def tail(self, size: int = 4000) -> str:
        """The end of the bot's log, for assertion messages."""
        return f"--- {self.name}'s log ---\n{self.log()[-size:]}"

    def runs(self, command: str) -> Counter[str]:
        """How often this bot ran ``command``, by its arguments (from Errbot's log)."""
        return Counter(
            m["args"] for m in _RUN.finditer(self.log()) if m["cmd"] == command.lstrip("!")
        )

    def message(
        self,
        text: str,
        *,
        chat: str = GROUP,
        message_id: str | None = None,
        mention: bool = False,
    ) -> dict[str, Any]:
        """A user's ``im.message.receive_v1`` from the admin, known to the platform (so the
        bot can reply to it); ``mention`` @-mentions the bot first, as in a group."""
        message_id = message_id or "om_" + secrets.token_hex(16)
        self.platform.user_messages[message_id] = chat
        mentions = []
        if mention:
            text = f"@_user_1 {text}"
            bot_id = {"open_id": self.platform.bot_open_id, "union_id": "", "user_id": ""}
            name = self.platform.bot_name
            mentions = [{"key": "@_user_1", "id": bot_id, "name": name, "tenant_key": "sandbox"}]
        return message_envelope(
            text,
            chat_id=chat,
            sender_open_id=ADMIN,
            message_id=message_id,
            token=TOKEN,
            app_id=self.platform.app_id,
            mentions=mentions,
        )

    def sign(self, payload: dict[str, Any], *, timestamp: int | None = None) -> Request:
        """Encrypt and sign ``payload`` as Feishu does (now, or at ``timestamp``)."""
        return event_request(payload, encrypt_key=self.encrypt_key, timestamp=timestamp)

    async def deliver(self, request: Request) -> Ack:
        """POST a signed request, byte for byte, to this bot's event URL."""
        body, headers = request
        url = self.url + "/lark/events"
        async with self.session.post(url, data=body, headers=headers, timeout=ACK_WAIT) as response:
            answer = await response.json(content_type=None)
            msg = answer.get("msg") if isinstance(answer, dict) else None
            return Ack(response.status, msg)

    async def post(self, payload: dict[str, Any], *, timestamp: int | None = None) -> int:
        """Sign and deliver ``payload``; the HTTP status."""
        return (await self.deliver(self.sign(payload, timestamp=timestamp))).status

    async def stop(self, signum: int = signal.SIGINT, within: float = 30.0) -> int:
        """Send ``signum`` and wait (at most ``within`` s) for the exit; the return code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.process.wait, within)


class Bots:
    """Starts bots on one fake platform (``platform``) and knows what they answered."""

    def __init__(
        self,
        platform: FakeOpenPlatform,
        domain: str,
        directory: Path,
        processes: Any,
        session: aiohttp.ClientSession,
        hub: LongConnHub,
    ) -> None:
        self.platform = platform
        self.hub = hub
        self.encrypt_key = secrets.token_urlsafe(24)
        self.started: list[Bot] = []
        self._domain = domain
        self._directory = directory
        self._processes = processes
        self._session = session

    async def start(
        self,
        name: str = "bot",
        *,
        lark_cards: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        config: Mapping[str, Any] | None = None,
        mode: str = "webhook",
    ) -> Bot:
        """Start a bot and wait until it serves. ``lark_cards`` becomes ``LARK_CARDS``,
        ``config`` adds Errbot settings (``{"BOT_ASYNC": False}``); ``data_dir`` defaults
        to a new ``BOT_DATA_DIR`` of its own. ``name`` names its directory (unique).
        ``mode="websocket"``: the bot serves once it has connected to ``hub``."""
        home = self._directory / name
        home.mkdir()
        data_dir = data_dir or home / "data"
        data_dir.mkdir(exist_ok=True)
        port = free_port()
        identity = {
            "app_id": self.platform.app_id,
            "app_secret": self.platform.app_secret,
            "verification_token": TOKEN,
            "encrypt_key": self.encrypt_key,
            "domain": self._domain,
            "host": "127.0.0.1",
            "port": port,
            "path": "/lark/events",
        }
        if mode == "websocket":
            identity = {k: identity[k] for k in ("app_id", "app_secret", "domain")}
            identity["mode"] = "websocket"
        log_file = home / "errbot.log"
        settings: dict[str, Any] = {
            "BACKEND": "LarkCards",
            "BOT_EXTRA_BACKEND_DIR": str(ROOT),
            "BOT_DATA_DIR": str(data_dir),
            "BOT_EXTRA_PLUGIN_DIR": str(PLUGINS),
            "BOT_LOG_FILE": str(log_file),
            "BOT_LOG_LEVEL": logging.DEBUG,
            "BOT_ADMINS": (ADMIN,),
            "CORE_PLUGINS": CORE_PLUGINS,
            "STORAGE": "Memory",
            "BOT_IDENTITY": identity,
            **(config or {}),
        }
        if lark_cards is not None:
            settings["LARK_CARDS"] = dict(lark_cards)
        lines = (f"{key} = {value!r}\n" for key, value in settings.items())
        (home / "config.py").write_text(PREAMBLE + "".join(lines))
        # Without PYTHONPATH (processes.python drops it) the backend must load from
        # BOT_EXTRA_BACKEND_DIR alone, as for a user.
        process = self._processes.python(
            "errbot.cli",
            "-c",
            str(home / "config.py"),
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bot = Bot(
            name=name,
            url=f"http://127.0.0.1:{port}",
            platform=self.platform,
            encrypt_key=self.encrypt_key,
            process=process,
            log_file=log_file,
            data_dir=data_dir,
            session=self._session,
        )
        self.started.append(bot)
        if mode == "websocket":
            connected = len(self.hub.open_connections)
            await wait_until(
                lambda: self._alive(bot) and len(self.hub.open_connections) > connected,
                START_LIMIT,
                f"{name}'s long connection",
            )
        else:
            await wait_until(lambda: self._healthy(bot), START_LIMIT, f"{name}'s /healthz")
        return bot

    def _alive(self, bot: Bot) -> bool:
        if bot.process.poll() is not None:
            raise AssertionError(f"errbot {bot.name} exited early\n{bot.tail()}")
        return True

    async def _healthy(self, bot: Bot) -> bool:
        self._alive(bot)
        try:
            async with self._session.get(bot.url + "/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    def answers(self, question: str) -> list[str]:
        """The text of every message the bot sent in reply to the message ``question``."""
        return [text_of(m) for m in self.platform.messages if m.reply_to == question]

    def chat(self, chat_id: str) -> list[str]:
        """The text of every message the bot sent to ``chat_id``, in the platform's order."""
        return [text_of(m) for m in self.platform.messages if m.chat_id == chat_id]

    def logs(self) -> str:
        """The end of every bot's log, for assertion messages."""
        return "\n".join(bot.tail() for bot in self.started)

    async def stop_all(self) -> None:
        """Ctrl-C every bot still running, all at once, and wait; kill what outlives
        ``STOP_GRACE``. Off the loop: the platform must keep answering their last sends."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                loop.run_in_executor(None, self._processes.stop, bot.process, STOP_GRACE)
                for bot in self.started
            )
        )


@contextlib.asynccontextmanager
async def running(directory: Path, processes: Any) -> AsyncIterator[Bots]:
    """The fake platform on a loopback port, and :class:`Bots` to start errbots against it
    (in ``directory``, with the ``processes`` fixture); all stopped when the block ends."""
    platform = FakeOpenPlatform(app_id="cli_e2e", app_secret=secrets.token_hex(16))
    hub = LongConnHub(app_id=platform.app_id, app_secret=platform.app_secret, client_config=TIMING)
    app = platform.app()
    hub.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession() as session:
            domain = f"http://127.0.0.1:{port}"
            bots = Bots(platform, domain, directory, processes, session, hub)
            try:
                yield bots
            finally:
                await bots.stop_all()
    finally:
        await runner.cleanup()
