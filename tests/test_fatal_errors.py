"""Issue 12, item 4: what a retry cannot fix stops the bot with one CRITICAL line naming the
config key to check; what may pass (network, 5xx, rate limits) is retried by Errbot.

The token call is faked with aioresponses (``conftest.api_mock``); the busy port is a real
socket on 127.0.0.1. The same stops with a real errbot process: ``test_e2e_fatal.py``.
"""

from __future__ import annotations

import errno
import logging
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from api_fakes import BASE, TOKEN_URL, calls
from errbot_config import errbot_config

from lark_cards.api.client import LarkClient
from lark_cards.api.errors import CredentialsRejected, LarkAPIError
from lark_cards.api.token import TOKEN_PATH
from lark_cards.backend import LarkCardsBackend
from lark_cards.transport.endpoint import Fatal
from lark_cards.transport.reception import Reception
from lark_cards.transport.server import unbindable

SECRET = "s3cret"  # errbot_config's app_secret: it must never reach a log line


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend's client gives up a failing call at once instead of after 30 s of
    backoff: a transient failure then ends ``serve_once`` as it would later."""
    real = LarkClient.__init__

    def init(self: LarkClient, **kwargs: Any) -> None:
        real(self, **kwargs, request_deadline=0.0, jitter=lambda: 0.0)

    monkeypatch.setattr(LarkClient, "__init__", init)


@pytest.fixture
def backend(tmp_path: Path, fast_client: None) -> Iterator[LarkCardsBackend]:
    bot = LarkCardsBackend(errbot_config(tmp_path, domain=BASE))
    yield bot
    bot.outbox.close()
    bot.inbound.close()


def criticals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]


# -- the token endpoint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "msg", "key"),
    [
        (10014, "app secret invalid", "BOT_IDENTITY['app_secret']"),
        (10015, "wrong app secret", "BOT_IDENTITY['app_secret']"),
        (10003, "invalid param", "BOT_IDENTITY['app_id']"),
    ],
)
async def test_refused_credentials_are_credentials_rejected_naming_the_key(
    api_mock: aioresponses, code: int, msg: str, key: str
):
    api_mock.post(TOKEN_URL, status=400, payload={"code": code, "msg": msg})
    client = LarkClient(app_id="cli_test", app_secret=SECRET, base_url=BASE)
    await client.start()
    try:
        with pytest.raises(CredentialsRejected) as info:
            await client.tenant_token()
    finally:
        await client.close()
    assert info.value.code == code
    assert key in str(info.value)
    assert SECRET not in str(info.value)
    assert len(calls(api_mock, "POST", TOKEN_PATH)) == 1  # no retry: it cannot help
    again = pickle.loads(pickle.dumps(info.value))  # crosses Errbot's threads like any error
    assert type(again) is CredentialsRejected
    assert str(again) == str(info.value)


async def test_a_token_endpoint_that_is_busy_is_retried_not_rejected(api_mock: aioresponses):
    api_mock.post(TOKEN_URL, status=503, body="busy")
    api_mock.post(TOKEN_URL, payload={"code": 0, "tenant_access_token": "t-1", "expire": 7200})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = LarkClient(
        app_id="cli_test", app_secret=SECRET, base_url=BASE, sleep=sleep, jitter=lambda: 0.0
    )
    await client.start()
    try:
        assert await client.tenant_token() == "t-1"
    finally:
        await client.close()
    assert waits == [1.0]


def test_serve_once_stops_on_a_wrong_secret_with_one_critical_line(
    backend: LarkCardsBackend, api_mock: aioresponses, caplog: pytest.LogCaptureFixture
):
    api_mock.post(TOKEN_URL, status=400, payload={"code": 10014, "msg": "app secret invalid"})
    with caplog.at_level(logging.DEBUG), pytest.raises(SystemExit) as stopped:
        backend.serve_once()
    [line] = criticals(caplog)
    assert "BOT_IDENTITY['app_secret']" in line
    assert "10014" in line
    assert "BOT_IDENTITY['app_secret']" in str(stopped.value.code)
    assert SECRET not in caplog.text
    assert len(calls(api_mock, "POST", TOKEN_PATH)) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "body": "internal error"},
        {"status": 429, "payload": {"code": 99991400, "msg": "rate limited"}},
        {"exception": aiohttp.ClientConnectionError("network is unreachable")},
    ],
    ids=["5xx", "rate-limited", "network-down"],
)
def test_serve_once_returns_for_a_retry_when_the_failure_may_pass(
    backend: LarkCardsBackend,
    api_mock: aioresponses,
    caplog: pytest.LogCaptureFixture,
    answer: dict[str, Any],
):
    api_mock.post(TOKEN_URL, **answer)
    with caplog.at_level(logging.INFO):
        assert backend.serve_once() is False  # Errbot reconnects with its backoff
    assert criticals(caplog) == []
    assert "cannot serve" in caplog.text


# -- the webhook's port ---------------------------------------------------------------------


async def test_a_busy_port_is_fatal_naming_bot_identity_port(tmp_path: Path, busy_port: int):
    bot = LarkCardsBackend(errbot_config(tmp_path, host="127.0.0.1", port=busy_port))
    try:
        reception = Reception(lambda envelope: None, bot.inbound)  # type: ignore[arg-type]
        with pytest.raises(Fatal) as info:
            await bot._start_server(reception)
    finally:
        bot.outbox.close()
        bot.inbound.close()
    assert f"127.0.0.1:{busy_port}" in str(info.value)
    assert "in use" in str(info.value)
    assert "BOT_IDENTITY['port']" in str(info.value)


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (OSError(errno.EADDRINUSE, "address already in use"), "port"),
        (OSError(errno.EACCES, "permission denied"), "port"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "host"),
    ],
)
def test_bind_failures_no_retry_fixes_name_their_key(error: OSError, key: str):
    problem = unbindable(error, "0.0.0.0", 80)
    assert problem is not None
    assert problem.startswith("cannot listen on 0.0.0.0:80: ")
    assert problem.endswith(f"check BOT_IDENTITY['{key}']")


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.EMFILE, "too many open files"),
        OSError(errno.ENOBUFS, "no buffer space"),
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        OSError(errno.EADDRNOTAVAIL, "cannot assign requested address"),  # network not up yet
        OSError("no errno at all"),
    ],
)
def test_bind_failures_that_may_pass_are_left_to_retry(error: OSError):
    assert unbindable(error, "0.0.0.0", 8080) is None


def test_a_refused_secret_is_still_a_lark_api_error_for_existing_callers():
    error = CredentialsRejected(10014, "app secret invalid", log_id="abc")
    assert isinstance(error, LarkAPIError)
    assert "log_id abc" in str(error)
