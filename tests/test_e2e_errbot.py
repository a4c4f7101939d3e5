"""End to end: a real ``errbot`` process with the LarkCards backend against a fake Open Platform.

The fake platform (``lark_cards.sandbox.openapi``) runs in this test's loop on 127.0.0.1; the
bot runs as a subprocess started the way a user starts it (``errbot -c config.py``), loading the
backend from the clone root through ``BOT_EXTRA_BACKEND_DIR``.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from lark_cards.sandbox.delivery import event_request, message_envelope
from lark_cards.sandbox.openapi import FakeOpenPlatform

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "ou_admin0000000000000000000000000000"
GROUP = "oc_e2egroup000000000000000000000000"

CONFIG = """\
import logging
BACKEND = "LarkCards"
BOT_EXTRA_BACKEND_DIR = {root!r}
BOT_DATA_DIR = {data!r}
BOT_EXTRA_PLUGIN_DIR = None
BOT_LOG_FILE = {log!r}
BOT_LOG_LEVEL = logging.DEBUG
BOT_ADMINS = ({admin!r},)
CORE_PLUGINS = ("ACLs", "Help", "Health", "Utils", "CommandNotFoundFilter")
STORAGE = "Memory"
BOT_IDENTITY = {identity!r}
"""


@dataclass
class Bot:
    platform: FakeOpenPlatform
    url: str
    encrypt_key: str
    process: subprocess.Popen[str]
    log_file: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_until(predicate, limit: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
async def bot(tmp_path: Path, processes) -> AsyncIterator[Bot]:
    platform = FakeOpenPlatform(app_id="cli_e2e", app_secret=secrets.token_hex(16))
    runner = web.AppRunner(platform.app())
    await runner.setup()
    api_port, bot_port = _free_port(), _free_port()
    await web.TCPSite(runner, "127.0.0.1", api_port).start()

    encrypt_key = secrets.token_urlsafe(24)
    identity = {
        "app_id": platform.app_id,
        "app_secret": platform.app_secret,
        "verification_token": "e2e-verification-token",
        "encrypt_key": encrypt_key,
        "domain": f"http://127.0.0.1:{api_port}",
        "host": "127.0.0.1",
        "port": bot_port,
        "path": "/lark/events",
    }
    (tmp_path / "data").mkdir()
    log_file = tmp_path / "errbot.log"
    config = tmp_path / "config.py"
    config.write_text(
        CONFIG.format(
            root=str(ROOT),
            data=str(tmp_path / "data"),
            log=str(log_file),
            admin=ADMIN,
            identity=identity,
        )
    )
    # Without PYTHONPATH (processes.python drops it) the backend must load from
    # BOT_EXTRA_BACKEND_DIR alone, as for a user.
    process = processes.python(
        "errbot.cli",
        "-c",
        str(config),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{bot_port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"errbot exited early:\n{log_file.read_text()[-4000:]}")
                try:
                    async with session.get(url + "/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await _wait_until(healthy, 60, "the bot's /healthz")
        yield Bot(platform, url, encrypt_key, process, log_file)
    finally:
        processes.stop(process, grace=20)  # before the platform it talks to goes away
        await runner.cleanup()


async def _post(bot: Bot, payload: dict) -> int:
    body, headers = event_request(payload, encrypt_key=bot.encrypt_key)
    async with (
        aiohttp.ClientSession() as session,
        session.post(bot.url + "/lark/events", data=body, headers=headers) as response,
    ):
        return response.status


async def test_encrypted_echo_gets_exactly_one_reply_even_when_delivered_three_times(bot: Bot):
    question = "om_e2equestion00000000000000000001"
    bot.platform.user_messages[question] = GROUP
    payload = message_envelope(
        "@_user_1 !echo hi",
        chat_id=GROUP,
        sender_open_id=ADMIN,
        message_id=question,
        token="e2e-verification-token",
        app_id=bot.platform.app_id,
        mentions=[
            {
                "key": "@_user_1",
                "id": {"open_id": bot.platform.bot_open_id, "union_id": "", "user_id": ""},
                "name": bot.platform.bot_name,
                "tenant_key": "sandbox",
            }
        ],
    )

    assert await _post(bot, payload) == 200

    async def replied() -> bool:
        return len(bot.platform.messages) >= 1

    await _wait_until(replied, 30, "the reply to !echo hi")
    # Feishu's retries of the same event (same event_id and message_id).
    assert await _post(bot, payload) == 200
    assert await _post(bot, payload) == 200
    await asyncio.sleep(2)

    assert len(bot.platform.messages) == 1, bot.log_file.read_text()[-4000:]
    reply = bot.platform.messages[0]
    assert reply.reply_to == question
    assert reply.chat_id == GROUP
    assert reply.msg_type == "interactive"
    assert reply.content["schema"] == "2.0"
    elements = reply.content["body"]["elements"]
    assert [e["tag"] for e in elements] == ["markdown"]
    assert elements[0]["content"].strip() == "hi"


async def test_bot_stops_cleanly_on_sigint(bot: Bot):
    bot.process.send_signal(signal.SIGINT)
    returncode = await asyncio.get_running_loop().run_in_executor(None, bot.process.wait, 30)
    log = bot.log_file.read_text()
    assert returncode == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert bot.platform.app_secret not in log
    assert bot.encrypt_key not in log
