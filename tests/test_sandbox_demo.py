"""``make demo`` end to end: the runner starts the sandbox and a real errbot, the bot answers
through the sandbox, Ctrl-C stops both; and when Feishu (the sandbox) refuses a card, the
backend falls back and the user still gets the content."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from lark_cards.render.cardspec import CardLimits
from lark_cards.sandbox.demo import (
    CORE_PLUGINS,
    free_port,
    start_errbot,
    stop_errbot,
    wait_healthy,
    write_config,
)
from lark_cards.sandbox.runner import EVENTS_PATH, Sandbox, SandboxConfig
from lark_cards.sandbox.state import ALICE, BOB, GROUP_CHAT
from lark_cards.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent


def _bot_speaks_websocket() -> bool:
    """Whether this checkout's backend takes ``BOT_IDENTITY["mode"] = "websocket"`` yet."""
    identity = {"app_id": "cli_x", "app_secret": "x", "mode": "websocket"}
    try:
        Settings.from_config(SimpleNamespace(BOT_IDENTITY=identity))
    except ConfigError:
        return False
    return True


LONG_CONNECTION = pytest.param(
    (),
    id="long-connection",
    marks=pytest.mark.skipif(
        not _bot_speaks_websocket(), reason="the backend has no long-connection client yet"
    ),
)
WEBHOOK = pytest.param(("--webhook",), id="webhook")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("demo_config", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pids_running(needle: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmdline and "errbot.cli" in cmdline:
                pids.append(int(entry.name))
    return pids


def _wait_line(process: subprocess.Popen[str], pattern: str, timeout: float = 90) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match.group(1)
    raise AssertionError(f"no line matching {pattern!r}:\n{''.join(seen)}")


def test_the_generated_config_is_a_valid_errbot_config(tmp_path: Path):
    webhook = SandboxConfig(port=0, mode="webhook", encrypt_key="k1", verification_token="t1")
    first = Sandbox(webhook)
    first.url = "http://127.0.0.1:9000"
    path = write_config(tmp_path, first, bot_port=8123)
    config = _load(path)
    settings = Settings.from_config(config)
    assert settings.base_url == "http://127.0.0.1:9000"
    assert (settings.host, settings.port, settings.path) == ("127.0.0.1", 8123, EVENTS_PATH)
    assert (settings.encrypt_key, settings.verification_token) == ("k1", "t1")
    assert settings.upload_images is False  # the demo never touches the network
    assert config.BOT_ADMINS == (ALICE,)  # Bob is not: the demo shows a refused click
    assert Path(config.BOT_EXTRA_PLUGIN_DIR, "approval", "approval.plug").is_file()
    assert config.ACCESS_CONTROLS == {"Approval:approve": {"allowmuc": True}}
    assert config.BACKEND == "LarkCards"
    assert Path(config.BOT_EXTRA_BACKEND_DIR, "lark_cards.plug").is_file()
    assert "VersionChecker" not in CORE_PLUGINS
    assert "Webserver" not in CORE_PLUGINS
    assert path.stat().st_mode & 0o077 == 0  # it holds the secret and the Encrypt Key


def test_the_demo_config_uses_the_long_connection_by_default(tmp_path: Path):
    sandbox = Sandbox(SandboxConfig(port=0))
    sandbox.url = "http://127.0.0.1:9000"
    config = _load(write_config(tmp_path, sandbox))
    identity = config.BOT_IDENTITY
    assert identity == {
        "app_id": sandbox.config.app_id,
        "app_secret": sandbox.config.app_secret,
        "domain": "http://127.0.0.1:9000",
        "mode": "websocket",
    }  # no port to listen on, no keys: the socket is the authentication
    assert config.BACKEND == "LarkCards"


def _configs(monkeypatch: pytest.MonkeyPatch, *argvs: list[str]) -> list[SandboxConfig]:
    """The SandboxConfig each command line starts the demo (``--demo``) or sandbox with."""
    from lark_cards.sandbox import cli, demo, runner

    configs = []

    async def fake_run(config, **_ignored):
        configs.append(config)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run)
    monkeypatch.setattr(runner, "serve", fake_run)
    for argv in argvs:
        assert cli.main(argv) == 0
    return configs


def test_every_run_gets_fresh_secrets(monkeypatch: pytest.MonkeyPatch):
    one, two, three, four = _configs(
        monkeypatch,
        ["--demo"],
        ["--demo", "--retry-delays", "1,2"],
        ["--demo", "--webhook"],
        ["--demo", "--webhook"],
    )
    assert (one.mode, one.encrypt_key, one.verification_token) == ("websocket", None, None)
    assert len({c.app_secret for c in (one, two, three, four)}) == 4
    assert three.mode == "webhook"
    assert three.encrypt_key
    assert three.encrypt_key != four.encrypt_key
    assert three.verification_token != four.verification_token
    assert one.retry_delays == (15.0, 300.0, 3600.0, 21600.0)  # Feishu's schedule (§1.8)
    assert two.retry_delays == (1.0, 2.0)


def test_webhook_options_imply_webhook_mode(monkeypatch: pytest.MonkeyPatch):
    url, port, key, plain = _configs(
        monkeypatch,
        ["--bot-url", "http://127.0.0.1:1234/hook"],
        ["--bot-port", "8123"],
        ["--encrypt-key", "k"],
        ["--fragment-bytes", "64"],
    )
    assert (url.mode, url.bot_url) == ("webhook", "http://127.0.0.1:1234/hook")
    assert (port.mode, port.bot_url) == ("webhook", f"http://127.0.0.1:8123{EVENTS_PATH}")
    assert (key.mode, key.encrypt_key) == ("webhook", "k")
    assert (plain.mode, plain.bot_url, plain.fragment_bytes) == ("websocket", None, 64)


def test_the_cli_module_is_light_and_rejects_bad_delays(capsys: pytest.CaptureFixture[str]):
    code = (
        "import sys, lark_cards.sandbox.cli; "
        "print(sorted(m for m in ('aiohttp', 'errbot', 'lark_cards.render') if m in sys.modules))"
    )
    light = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert light.stdout.strip() == "[]"
    from lark_cards.sandbox import cli

    with pytest.raises(SystemExit):
        cli.main(["--retry-delays", "soon"])
    assert "--retry-delays" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "identity"),
    [
        ((), r"(BOT_IDENTITY = \{.*'mode': 'websocket')"),
        (("--webhook",), r"(BOT_IDENTITY = \{.*'encrypt_key')"),
    ],
)
def test_the_sandbox_alone_prints_its_url_and_config_and_stops_on_ctrl_c(
    processes, options: tuple[str, ...], identity: str
):
    process = processes.python("lark_cards.sandbox", "--port", "0", *options)
    url = _wait_line(process, r"Sandbox page: (http://127\.0\.0\.1:\d+/)", timeout=30)
    assert _wait_line(process, identity, timeout=5)
    process.send_signal(signal.SIGINT)
    assert process.wait(15) == 0
    assert url.startswith("http://127.0.0.1:")


@pytest.mark.e2e
@pytest.mark.parametrize("options", [LONG_CONNECTION, WEBHOOK])
def test_make_demo_answers_in_the_group_and_ctrl_c_stops_both(
    tmp_path: Path, processes, options: tuple[str, ...]
):
    demo_dir = tmp_path / "demo"
    process = processes.python(
        "lark_cards.sandbox", "--demo", "--port", "0", "--demo-dir", str(demo_dir), *options
    )
    url = _wait_line(process, r"Open (http://127\.0\.0\.1:\d+)/")
    assert _pids_running(str(demo_dir)), "errbot is not running"

    async def ask() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            text = {"chat_id": GROUP_CHAT, "sender": BOB, "text": "!echo hello sandbox"}
            async with session.post(url + "/api/send", json=text) as response:
                assert response.status == 200
            for _ in range(150):
                async with session.get(url + "/api/updates?since=0&wait=0") as response:
                    messages = (await response.json())["messages"]
                bot = [m for m in messages if m["sender_type"] == "app"]
                if bot:
                    return bot
                await asyncio.sleep(0.1)
        raise AssertionError("the bot did not answer")

    [answer] = asyncio.run(ask())
    assert answer["msg_type"] == "interactive"
    assert "hello sandbox" in str(answer["content"])
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C changes nothing
    assert process.wait(40) == 0
    assert _pids_running(str(demo_dir)) == []
    log = (demo_dir / "errbot.log").read_text()
    assert "Traceback" not in log


@pytest.fixture
async def strict_feishu(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """A sandbox stricter than the renderer's budgets (one table per card) and a real errbot."""
    bot_port = free_port()
    config = SandboxConfig(
        port=0,
        mode="webhook",
        bot_url=f"http://127.0.0.1:{bot_port}{EVENTS_PATH}",
        encrypt_key="strict-encrypt-key",
        verification_token="strict-token",
    )
    sandbox = Sandbox(config)
    sandbox.platform.card_limits = CardLimits(max_tables=1)
    await sandbox.start()
    process = await start_errbot(write_config(tmp_path, sandbox, bot_port=bot_port), tmp_path)
    try:
        assert await wait_healthy(process, f"http://127.0.0.1:{bot_port}/healthz")
        yield sandbox
    finally:
        if process.returncode is None:
            assert await stop_errbot(process, io.StringIO()) == 0
        await sandbox.stop()


@pytest.mark.e2e
async def test_when_feishu_refuses_a_card_the_user_still_gets_the_content(strict_feishu: Sandbox):
    platform = strict_feishu.platform
    async with aiohttp.ClientSession() as session:
        text = {"chat_id": GROUP_CHAT, "sender": ALICE, "text": "!render test"}
        async with session.post(strict_feishu.url + "/api/send", json=text) as response:
            assert response.status == 200
    for _ in range(300):
        delivered = " ".join(str(m.content) for m in platform.messages)
        if "Second Header" in delivered and "firstName" in delivered:
            break
        await asyncio.sleep(0.1)
    refused = [r.code for _, r in platform.refusals]
    assert 230099 in refused, refused  # Feishu said no to the two-table card …
    delivered = " ".join(str(m.content) for m in platform.messages)
    assert "First Header" in delivered  # … and the content arrived anyway
    assert "Second Header" in delivered
    assert "firstName" in delivered
