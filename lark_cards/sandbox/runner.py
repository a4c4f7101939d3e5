"""Serve the fake Open Platform and the page on 127.0.0.1 (``python -m lark_cards sandbox``).

:class:`Sandbox` puts the pieces together on one port: the Open API (:mod:`.openapi`), the
page and its API (:mod:`.page`) and the deliverer that pushes events to the bot
(:mod:`.delivery`). By default the bot takes its events over Feishu's long connection, served
here by :mod:`.longconn` (``mode = "websocket"``, docs/feishu-platform.md §2.2): the bot needs
no port of its own. ``mode = "webhook"`` POSTs them to ``bot_url`` instead, encrypted and
signed. :func:`serve` runs it until Ctrl-C; :mod:`.demo` runs it with a real ``errbot``;
:mod:`.cli` is the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiohttp import web

from .delivery import ACK_DEADLINE, RETRY_DELAYS, Deliverer
from .longconn import MAX_CONNECTIONS, ClientConfig, LongConnHub
from .openapi import FakeOpenPlatform
from .page import Page
from .state import default_chats, default_users

DEFAULT_PORT = 9000
EVENTS_PATH = "/lark/events"
WEBSOCKET, WEBHOOK = "websocket", "webhook"  # BOT_IDENTITY["mode"] values
# The sandbox tells bots to ping every 10 s (the SDKs' default is 120 s, Feishu's own value
# unknown), so the page shows a Drop being healed in a second or two and a half-open socket
# in about 25 s (2 pings + 5 s) instead of four minutes.
SANDBOX_TIMING = ClientConfig(ping_interval=10, reconnect_nonce=2, reconnect_interval=10)


@dataclass
class SandboxConfig:
    """How the sandbox runs and how it reaches the bot.

    ``bot_url`` and ``encrypt_key`` are webhook settings: giving them with the long
    connection is refused rather than ignored, so a test cannot silently wait for a bot that
    was never going to be called.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    mode: str = WEBSOCKET
    bot_url: str | None = None  # webhook: the bot's event URL, e.g. http://127.0.0.1:8080/…
    app_id: str = "cli_sandbox0000000001"
    app_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    encrypt_key: str | None = None
    verification_token: str | None = None
    ack_deadline: float = ACK_DEADLINE
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    token_ttl: int = 7200
    # The long connection (§2.2): what pongs tell clients, the app's socket limit, and
    # payloads longer than fragment_bytes split over several frames.
    client_config: ClientConfig = SANDBOX_TIMING
    max_connections: int = MAX_CONNECTIONS
    fragment_bytes: int | None = None
    # The user's card templates (LARK_CARDS["templates_dir"]): the preview, and the demo's bot.
    templates_dir: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in (WEBSOCKET, WEBHOOK):
            raise ValueError(f"mode must be {WEBSOCKET!r} or {WEBHOOK!r}, not {self.mode!r}")
        if self.mode == WEBSOCKET and (self.bot_url or self.encrypt_key):
            raise ValueError("bot_url and encrypt_key are for mode='webhook'")


class Sandbox:
    """The platform, the page and the deliverer behind one aiohttp app."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.platform = FakeOpenPlatform(
            app_id=config.app_id,
            app_secret=config.app_secret,
            token_ttl=config.token_ttl,
            users=default_users(),
            chats=default_chats(),
        )
        self.hub: LongConnHub | None = None
        if config.mode == WEBSOCKET:
            self.hub = LongConnHub(
                app_id=config.app_id,
                app_secret=config.app_secret,
                client_config=config.client_config,
                max_connections=config.max_connections,
                ack_deadline=config.ack_deadline,
                fragment_bytes=config.fragment_bytes,
            )
        self.deliverer = Deliverer(
            config.bot_url,
            encrypt_key=config.encrypt_key,
            ack_deadline=config.ack_deadline,
            retry_delays=config.retry_delays,
            channel=self.hub,
        )
        self.url = ""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = self.platform.app()
        if self.hub is not None:
            self.hub.add_routes(app)
        page = Page(
            self.platform,
            self.deliverer,
            verification_token=self.config.verification_token,
            hub=self.hub,
            templates_dir=self.config.templates_dir,
        )
        page.add_routes(app)
        return app

    async def start(self) -> str:
        """Serve on the configured host and port (0 = any free port); returns the base URL."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        await self.deliverer.close()
        if self.hub is not None:
            await self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def bot_identity(self, *, port: int | None = None, host: str = "127.0.0.1") -> dict[str, Any]:
        """The ``BOT_IDENTITY`` that connects a bot to this sandbox: over the long connection
        (nothing to listen on), or in webhook mode listening on ``host``:``port``."""
        identity: dict[str, Any] = {
            "app_id": self.config.app_id,
            "app_secret": self.config.app_secret,
            "domain": self.url,
        }
        if self.config.mode == WEBSOCKET:
            identity["mode"] = WEBSOCKET
        elif port is None:
            raise ValueError("a webhook bot_identity needs the bot's port")
        else:
            identity |= {"host": host, "port": port, "path": EVENTS_PATH}
        if self.config.verification_token:
            identity["verification_token"] = self.config.verification_token
        if self.config.encrypt_key:
            identity["encrypt_key"] = self.config.encrypt_key
        return identity


@dataclass
class Served:
    """A started sandbox, its page URL, and the event Ctrl-C / SIGTERM sets."""

    sandbox: Sandbox
    url: str
    stop: asyncio.Event


@contextlib.asynccontextmanager
async def serving(config: SandboxConfig, who: str) -> AsyncIterator[Served | None]:
    """Start the sandbox until the block ends (None when it cannot listen: the reason has
    been said, naming ``who``); signals set ``stop`` instead of killing the process."""
    sandbox = Sandbox(config)
    try:
        url = await sandbox.start()
    except OSError as error:
        say(sys.stderr, f"{who}: cannot listen on {config.host}:{config.port}: {error}")
        yield None
        return
    stop = asyncio.Event()
    with stop_on_signals(stop):
        try:
            yield Served(sandbox, url, stop)
        finally:
            await sandbox.stop()


async def serve(config: SandboxConfig, *, bot_port: int | None, out: TextIO) -> int:
    """Serve the sandbox alone until Ctrl-C, telling the user how to point a bot at it."""
    async with serving(config, "sandbox") as served:
        if served is None:
            return 1
        identity = served.sandbox.bot_identity(port=bot_port)
        say(out, f"Sandbox page: {served.url}/")
        if config.mode == WEBSOCKET:
            say(out, "Events go over the long connection the bot opens (no bot port needed)")
        else:
            say(out, f"Events go to: {config.bot_url}")
        say(out, "Put this in the bot's config.py:\n")
        say(out, f"BOT_IDENTITY = {identity!r}\n")
        await served.stop.wait()
    return 0


def say(stream: TextIO, text: str) -> None:
    """One line for the person at the terminal, flushed at once (the demo runs for long).
    A terminal that was closed (SIGHUP, then EIO on write) must not stop the shutdown that
    follows, so what cannot be written is dropped."""
    try:
        stream.write(text + "\n")
        stream.flush()
    except OSError:
        pass


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM (Ctrl-C) and SIGHUP (the terminal was closed) while the
    block runs, shutdown included, so a second Ctrl-C during shutdown cannot interrupt the
    cleanup, and a closed terminal stops errbot the way Ctrl-C does."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


async def first_of(*waitables: Awaitable[Any]) -> None:
    """Wait until the first of ``waitables`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
