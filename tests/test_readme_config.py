"""Issue 12, item 5: the README's config is a complete config that Errbot 6.2.1 runs.

The README once showed a config without ``BOT_EXTRA_PLUGIN_DIR``, which Errbot reads without
a default: ``AttributeError`` at start-up for whoever copied it. Here the README's own block
(taken from README.md, not a copy) is loaded by Errbot's config loading and started as a real
``errbot -c config.py`` against the sandbox's long connection. Only what is machine-specific
is replaced, and only where the block itself sets it: a name missing from the README is
missing in the test.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lark_cards.sandbox.runner import Sandbox, SandboxConfig
from lark_cards.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "## Connecting a real Feishu (or Lark) app"
# Errbot's core plugins without the two that reach out: VersionChecker fetches errbot.io,
# Webserver opens a port. The README's config leaves CORE_PLUGINS alone, so a user has both.
OFFLINE_CORE = ("ACLs", "Help", "Health", "Utils", "Plugins", "CommandNotFoundFilter")
START_LIMIT = 60.0


def config_section() -> str:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def readme_config() -> str:
    """The section's complete config: the one block that sets BACKEND and BOT_IDENTITY."""
    [block] = [
        b for b in python_blocks(config_section()) if "BACKEND =" in b and "BOT_IDENTITY" in b
    ]
    return block


def run_block(code: str) -> dict[str, Any]:
    names: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), names)
    return names


def test_the_readme_shows_one_complete_config_and_it_is_python():
    names = run_block(readme_config())
    assert names["BACKEND"] == "LarkCards"
    assert names["BOT_IDENTITY"]["mode"] == "websocket"


def test_every_bot_identity_in_the_section_is_accepted_by_lark_cards():
    identities = [
        run_block(block)["BOT_IDENTITY"]
        for block in python_blocks(config_section())
        if "BOT_IDENTITY" in block
    ]
    assert len(identities) >= 2  # the long connection's and the webhook's
    for identity in identities:
        Settings.from_config(SimpleNamespace(BOT_IDENTITY=identity))


def _machine_specific(block: str, home: Path, sandbox: Sandbox) -> str:
    """Lines appended to the README's block: this machine's paths and the sandbox's app,
    each only for a name the block sets itself."""
    names = run_block(block)
    paths = {
        "BOT_EXTRA_BACKEND_DIR": str(ROOT),
        "BOT_DATA_DIR": str(home / "data"),
        "BOT_EXTRA_PLUGIN_DIR": str(home / "plugins"),
        "BOT_LOG_FILE": str(home / "errbot.log"),
    }
    lines = ["", "# --- the test's machine-specific values ---"]
    for name, value in paths.items():
        if names.get(name) is not None:
            lines.append(f"{name} = {value!r}")
    app = sandbox.bot_identity()
    assert set(names["BOT_IDENTITY"]) >= {"app_id", "app_secret"}
    for key in ("app_id", "app_secret", "domain"):
        lines.append(f"BOT_IDENTITY[{key!r}] = {app[key]!r}")
    lines.append(f"CORE_PLUGINS = {OFFLINE_CORE!r}")
    return block + "\n".join(lines) + "\n"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    served = Sandbox(SandboxConfig(port=0))
    await served.start()
    yield served
    await served.stop()


def test_errbots_own_config_loading_accepts_the_block(tmp_path: Path):
    """``errbot.cli.get_config`` + ``bootstrap.setup_bot`` (the backend and every plugin
    manager, no network) in a fresh interpreter: a name Errbot needs is there."""
    sandbox = Sandbox(SandboxConfig(port=0))
    sandbox.url = "http://127.0.0.1:9"
    (tmp_path / "data").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "config.py").write_text(_machine_specific(readme_config(), tmp_path, sandbox))
    code = (
        "import logging, sys\n"
        "from errbot.cli import get_config\n"
        "from errbot.bootstrap import setup_bot\n"
        "config = get_config('config.py')\n"
        "bot = setup_bot(config.BACKEND, logging.getLogger(), config)\n"
        "print('loaded', type(bot).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded LarkCardsBackend" in done.stdout


@pytest.mark.e2e
async def test_errbot_runs_the_readme_config_against_the_sandbox(
    tmp_path: Path, sandbox: Sandbox, processes
):
    (tmp_path / "data").mkdir()
    (tmp_path / "plugins").mkdir()
    config = tmp_path / "config.py"
    config.write_text(_machine_specific(readme_config(), tmp_path, sandbox))
    process = processes.python(
        "errbot.cli",
        "-c",
        str(config),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    hub = sandbox.hub
    assert hub is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_LIMIT
    log = tmp_path / "errbot.log"
    while not hub.open_connections:
        text = log.read_text() if log.exists() else ""
        assert process.poll() is None, f"errbot exited ({process.returncode}):\n{text[-3000:]}"
        assert loop.time() < deadline, f"errbot did not connect:\n{text[-3000:]}"
        await asyncio.sleep(0.1)
    processes.stop(process)
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    assert "Long connection open" in text
    assert "AttributeError" not in text
    assert "Traceback" not in text
