"""``header.app_id``: an event addressed to another app is refused, before dedup (§1.2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from feishu_payloads import (
    APP_ID,
    ENCRYPTED,
    EVENTS_PATH,
    NOW,
    PLAIN,
    TOKEN,
    load,
    plain_body,
    signed_request,
)
from hypothesis import given
from hypothesis import strategies as st

from lark_cards.settings import Settings
from lark_cards.transport.envelope import Envelope, EventError, parse_callback
from lark_cards.transport.webhook import Rejected, authenticate, create_app

OTHER_APP = "cli_a1b2c3d4e5f60718"
FOREIGN = (403, {"error": "event is for another app"})
OK = (200, {"msg": "ok"})


def addressed_to(payload: dict[str, Any], app_id: Any) -> dict[str, Any]:
    """``payload`` (a schema 2.0 fixture) with ``header.app_id`` set, or removed for None."""
    if app_id is None:
        payload["header"].pop("app_id", None)
    else:
        payload["header"]["app_id"] = app_id
    return payload


class App:
    """One webhook app on aiohttp's test server: what it dispatched and what it answered."""

    def __init__(self, client: TestClient, dispatched: list[Envelope], answered: list[str]):
        self.client = client
        self.dispatched = dispatched
        self.answered = answered

    async def post(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self.client.post(EVENTS_PATH, data=body, headers=headers) as resp:
            answer = (resp.status, await resp.json())
        await asyncio.sleep(0)  # let a scheduled dispatch run
        return answer

    async def send(self, payload: Any, nonce: str = "n1") -> tuple[int, dict[str, Any]]:
        return await self.post(*signed_request(payload, nonce=nonce))


async def _start(settings: Settings) -> App:
    dispatched: list[Envelope] = []
    answered: list[str] = []

    def respond(envelope: Envelope) -> dict[str, Any]:
        answered.append(envelope.event_id)
        return {"toast": {"type": "info", "content": "ok"}}

    app = create_app(settings, dispatched.append, clock=lambda: float(NOW), respond=respond)
    client = TestClient(TestServer(app))
    await client.start_server()
    return App(client, dispatched, answered)


@pytest.fixture
async def app() -> AsyncIterator[App]:
    started = await _start(ENCRYPTED)
    yield started
    await started.client.close()


@pytest.fixture
async def plain_app() -> AsyncIterator[App]:
    started = await _start(PLAIN)
    yield started
    await started.client.close()


# --- over HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p2p_text", "group_post", "unknown_event"])
async def test_another_apps_event_is_refused_and_does_not_poison_dedup(app: App, name: str) -> None:
    assert await app.send(addressed_to(load(name), OTHER_APP)) == FOREIGN
    assert app.dispatched == []
    # The same event id (and message id) for us, afterwards: new, so accepted and dispatched.
    assert await app.send(load(name), nonce="n2") == OK
    assert [e.event_id for e in app.dispatched] == [load(name)["header"]["event_id"]]
    assert app.dispatched[0].app_id == APP_ID


async def test_another_apps_card_click_is_refused_before_it_is_answered(app: App) -> None:
    assert await app.send(addressed_to(load("card_action"), OTHER_APP)) == FOREIGN
    assert (app.answered, app.dispatched) == ([], [])
    status, answer = await app.send(load("card_action"), nonce="n2")
    assert (status, answer["toast"]["content"]) == (200, "ok")
    assert len(app.answered) == len(app.dispatched) == 1


@pytest.mark.parametrize("missing", [None, ""])
async def test_an_envelope_that_names_no_app_is_accepted(app: App, missing: str | None) -> None:
    assert await app.send(addressed_to(load("p2p_text"), missing)) == OK
    assert len(app.dispatched) == 1
    assert app.dispatched[0].app_id is None


async def test_the_url_challenge_carries_no_app_id_and_still_passes(plain_app: App) -> None:
    challenge = load("url_verification")
    assert "app_id" not in challenge
    assert await plain_app.post(plain_body(challenge)) == (200, {"challenge": "ajls384kdjx98XX"})


async def test_schema_1_events_are_checked_on_event_app_id(plain_app: App) -> None:
    legacy = {"uuid": "u-1", "token": TOKEN, "type": "event_callback", "event": {"type": "x"}}
    foreign = {**legacy, "event": {"type": "x", "app_id": OTHER_APP}}
    assert await plain_app.post(plain_body(foreign)) == FOREIGN
    ours = {**legacy, "event": {"type": "x", "app_id": APP_ID}}
    assert await plain_app.post(plain_body(ours)) == OK
    assert await plain_app.post(plain_body(legacy)) == (200, {"msg": "duplicate"})


@pytest.mark.parametrize("app_id", [42, ["cli"], {"id": 1}, True])
async def test_an_app_id_that_is_not_a_string_is_a_400(app: App, app_id: Any) -> None:
    status, answer = await app.send(addressed_to(load("p2p_text"), app_id))
    assert (status, answer) == (400, {"error": "not a Feishu callback"})
    assert app.dispatched == []


async def test_the_refusal_is_logged_once_at_warning_naming_the_key_without_secrets(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="lark_cards.transport.webhook"):
        await app.send(addressed_to(load("p2p_text"), OTHER_APP))
    [record] = [r for r in caplog.records if "rejected event" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert OTHER_APP in record.getMessage()
    assert "BOT_IDENTITY['app_id']" in record.getMessage()
    assert TOKEN not in caplog.text


# --- authenticate(), the pure decision -------------------------------------------------------


def _decide(settings: Settings, payload: dict[str, Any]) -> Envelope:
    callback = authenticate(settings, plain_body(payload), {}, now=float(NOW))
    assert isinstance(callback, Envelope)
    return callback


def test_the_token_is_checked_before_the_app() -> None:
    # A forged token gets the uniform 401, whatever app it names: no hint about app ids.
    payload = addressed_to(load("p2p_text"), OTHER_APP)
    payload["header"]["token"] = "forged"
    with pytest.raises(Rejected) as refused:
        _decide(PLAIN, payload)
    assert refused.value.status == 401


def test_an_app_without_a_token_still_refuses_other_apps() -> None:
    open_settings = replace(PLAIN, verification_token=None)
    with pytest.raises(Rejected) as refused:
        _decide(open_settings, addressed_to(load("p2p_text"), OTHER_APP))
    assert refused.value.status == 403
    assert _decide(open_settings, load("p2p_text")).app_id == APP_ID


@given(app_id=st.text(max_size=40))
def test_only_our_app_id_or_none_at_all_gets_through(app_id: str) -> None:
    payload = addressed_to(load("p2p_text"), app_id)
    if app_id in ("", APP_ID):
        assert _decide(PLAIN, payload).app_id == (app_id or None)
    else:
        with pytest.raises(Rejected) as refused:
            _decide(PLAIN, payload)
        assert refused.value.status == 403


def test_parse_callback_reads_the_app_id() -> None:
    parsed = parse_callback(load("card_action"))
    assert isinstance(parsed, Envelope)
    assert parsed.app_id == APP_ID
    with pytest.raises(EventError, match="app_id"):
        parse_callback(addressed_to(load("p2p_text"), 7))
