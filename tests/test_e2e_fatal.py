"""Issue 12, item 4 end to end: a real errbot that can never work exits with one CRITICAL line
naming the config key, instead of reconnecting with backoff forever.

Mirrors ``test_e2e_longconn``'s connection-limit test: ``Bots.start`` raises "exited early"
with the bot's log when the process ends before it serves.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_bots import Bots

pytestmark = pytest.mark.e2e


def critical_lines(stopped: pytest.ExceptionInfo[AssertionError]) -> list[str]:
    return [line for line in str(stopped.value).splitlines() if "CRITICAL" in line]


def identity(bots: Bots, **changes: Any) -> dict[str, Any]:
    """A webhook BOT_IDENTITY for ``bots``' platform, with ``changes``."""
    return {
        "app_id": bots.platform.app_id,
        "app_secret": bots.platform.app_secret,
        "domain": bots._domain,
        "host": "127.0.0.1",
        "port": 0,
        **changes,
    }


@pytest.mark.parametrize("mode", ["webhook", "websocket"])
async def test_a_wrong_app_secret_stops_the_bot_with_one_line(bots: Bots, mode: str):
    wrong = identity(bots, app_secret="not-the-secret")
    if mode == "websocket":
        wrong = {k: wrong[k] for k in ("app_id", "app_secret", "domain")} | {"mode": mode}
    with pytest.raises(AssertionError, match="exited early") as stopped:
        await bots.start(f"wrong-secret-{mode}", mode=mode, config={"BOT_IDENTITY": wrong})
    [line] = critical_lines(stopped)
    assert "BOT_IDENTITY['app_secret']" in line
    assert "10014" in line
    assert "not-the-secret" not in str(stopped.value)
    assert "Reconnecting in" not in str(stopped.value)


async def test_an_unknown_app_id_names_app_id(bots: Bots):
    wrong = identity(bots, app_id="cli_nobody")
    with pytest.raises(AssertionError, match="exited early") as stopped:
        await bots.start("wrong-app-id", config={"BOT_IDENTITY": wrong})
    [line] = critical_lines(stopped)
    assert "BOT_IDENTITY['app_id']" in line
    assert "10003" in line


async def test_a_port_in_use_stops_the_bot_with_one_line(bots: Bots, busy_port: int):
    taken = identity(bots, port=busy_port, path="/lark/events")
    with pytest.raises(AssertionError, match="exited early") as stopped:
        await bots.start("busy-port", config={"BOT_IDENTITY": taken})
    [line] = critical_lines(stopped)
    assert f"127.0.0.1:{busy_port}" in line
    assert "BOT_IDENTITY['port']" in line
    assert "Reconnecting in" not in str(stopped.value)
