"""LarkClient against a faked Open Platform (aioresponses) on a fake clock; no network."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from api_fakes import FakeTime
from yarl import URL

from lark_cards.api import chats, contacts
from lark_cards.api.client import LarkClient
from lark_cards.api.errors import RETRYABLE, LarkAPIError, decode_response

BASE = "https://open.feishu.test"
APP_ID = "cli_test"
SECRET = "app-secret-do-not-log"
TOKEN = "t-token-one"
TOKEN_URL = f"{BASE}/open-apis/auth/v3/tenant_access_token/internal"
SEND_URL = f"{BASE}/open-apis/im/v1/messages?receive_id_type=chat_id"
CHAT = "oc_chat1"
OK = {"code": 0, "msg": "success", "data": {"message_id": "om_1"}}


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def m(api_mock: aioresponses) -> aioresponses:
    return api_mock


def make_client(fake: FakeTime, **kwargs: Any) -> LarkClient:
    kwargs.setdefault("jitter", lambda: 0.0)
    return LarkClient(
        app_id=APP_ID,
        app_secret=SECRET,
        base_url=BASE + "/",
        clock=fake.clock,
        sleep=fake.sleep,
        **kwargs,
    )


@pytest.fixture
async def started(fake: FakeTime) -> AsyncIterator[Callable[..., Awaitable[LarkClient]]]:
    """Factory for started clients with non-default settings; closes them all afterwards."""
    clients: list[LarkClient] = []

    async def start(**kwargs: Any) -> LarkClient:
        c = make_client(fake, **kwargs)
        await c.start()
        clients.append(c)
        return c

    yield start
    for c in clients:
        await c.close()


@pytest.fixture
async def client(started: Callable[..., Awaitable[LarkClient]]) -> LarkClient:
    return await started()


def token_ok(m: aioresponses, token: str = TOKEN, expire: int = 7200) -> None:
    payload = {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire}
    m.post(TOKEN_URL, payload=payload)


def send_fails(m: aioresponses, code: int, msg: str, status: int = 400, **kwargs: Any) -> None:
    """The next message send is answered with Feishu error ``code`` (HTTP ``status``)."""
    m.post(SEND_URL, status=status, payload={"code": code, "msg": msg}, **kwargs)


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return m.requests.get((method, URL(url)), [])


def sent_bodies(m: aioresponses, url: str = SEND_URL) -> list[dict[str, Any]]:
    return [c.kwargs["json"] for c in calls(m, "POST", url)]


def bearers(m: aioresponses, url: str = SEND_URL) -> list[str]:
    return [c.kwargs["headers"]["Authorization"] for c in calls(m, "POST", url)]


# -- token (§3) ----------------------------------------------------------------------------


async def test_token_fetched_once_and_sent_as_bearer(m: aioresponses, client: LarkClient) -> None:
    token_ok(m)
    m.post(SEND_URL, payload=OK, repeat=True)
    await client.send_message(CHAT, "text", {"text": "one"})
    await client.send_message(CHAT, "text", {"text": "two"})
    token_calls = calls(m, "POST", TOKEN_URL)
    assert len(token_calls) == 1
    assert token_calls[0].kwargs["json"] == {"app_id": APP_ID, "app_secret": SECRET}
    assert "Authorization" not in token_calls[0].kwargs["headers"]
    assert bearers(m) == [f"Bearer {TOKEN}"] * 2


async def test_concurrent_callers_fetch_the_token_once(m: aioresponses, client: LarkClient) -> None:
    async def slow_token(url: URL, **kwargs: Any) -> None:
        for _ in range(10):  # keep the fetch in flight while the other senders arrive
            await asyncio.sleep(0)

    payload = {"code": 0, "msg": "ok", "tenant_access_token": TOKEN, "expire": 7200}
    m.post(TOKEN_URL, payload=payload, callback=slow_token, repeat=True)
    m.post(re.compile(r".*/im/v1/messages\?.*"), payload=OK, repeat=True)
    await asyncio.gather(*(client.send_message(f"oc_{i}", "text", {"text": "x"}) for i in range(4)))
    assert len(calls(m, "POST", TOKEN_URL)) == 1


@pytest.mark.parametrize(("expire", "refresh_at"), [(7200, 5400.0), (600, 300.0)])
async def test_token_refreshed_early(
    m: aioresponses, client: LarkClient, fake: FakeTime, expire: int, refresh_at: float
) -> None:
    token_ok(m, "t-old", expire)
    token_ok(m, "t-new", expire)
    m.post(SEND_URL, payload=OK, repeat=True)
    await client.send_message(CHAT, "text", {"text": "a"})
    fake.now = refresh_at - 1
    await client.send_message(CHAT, "text", {"text": "b"})
    fake.now = refresh_at + 1
    await client.send_message(CHAT, "text", {"text": "c"})
    assert bearers(m) == ["Bearer t-old", "Bearer t-old", "Bearer t-new"]
    assert len(calls(m, "POST", TOKEN_URL)) == 2


async def test_invalid_token_is_refetched_and_request_retried_once(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m, "t-revoked")
    token_ok(m, "t-fresh")
    send_fails(m, 99991663, "Invalid access token")
    m.post(SEND_URL, payload=OK)
    data = await client.send_message(CHAT, "text", {"text": "hi"})
    assert data == OK["data"]
    assert bearers(m) == ["Bearer t-revoked", "Bearer t-fresh"]
    assert len({b["uuid"] for b in sent_bodies(m)}) == 1
    assert fake.sleeps == []  # a token refetch is not a backoff retry
    assert await client.tenant_token() == "t-fresh"


async def test_second_invalid_token_response_raises(m: aioresponses, client: LarkClient) -> None:
    token_ok(m, "t-1")
    token_ok(m, "t-2")
    send_fails(m, 20013, "tenant token invalid", status=200, repeat=True)
    with pytest.raises(LarkAPIError) as info:
        await client.send_message(CHAT, "text", {"text": "hi"})
    assert info.value.code == 20013
    assert len(calls(m, "POST", TOKEN_URL)) == 2
    assert len(calls(m, "POST", SEND_URL)) == 2


async def test_token_endpoint_error_raises(m: aioresponses, client: LarkClient) -> None:
    m.post(TOKEN_URL, payload={"code": 10014, "msg": "app secret invalid"})
    with pytest.raises(LarkAPIError) as info:
        await client.tenant_token()
    assert info.value.code == 10014
    assert len(calls(m, "POST", TOKEN_URL)) == 1


# -- retries (§4.4) ------------------------------------------------------------------------


async def test_429_waits_for_reset_header_and_reuses_uuid(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    send_fails(
        m,
        99991400,
        "request trigger frequency limit",
        status=429,
        headers={"x-ogw-ratelimit-reset": "3", "x-ogw-ratelimit-limit": "50"},
    )
    m.post(SEND_URL, payload=OK)
    await client.send_message(CHAT, "text", {"text": "hi"})
    assert fake.sleeps == [3.0]
    first, second = sent_bodies(m)
    assert first == second
    assert re.fullmatch(r"[0-9a-f]{32}", first["uuid"])


async def test_retryable_failures_back_off_exponentially(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    send_fails(m, 230020, "frequency limit")
    m.post(SEND_URL, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    m.post(SEND_URL, exception=TimeoutError())
    m.post(SEND_URL, exception=aiohttp.ClientConnectionError("reset by peer"))
    m.post(SEND_URL, payload=OK)
    data = await client.send_message(CHAT, "text", {"text": "hi"}, uuid="fixed-uuid")
    assert data == OK["data"]
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert [b["uuid"] for b in sent_bodies(m)] == ["fixed-uuid"] * 5


@pytest.mark.parametrize("code", sorted(RETRYABLE))
async def test_every_retryable_code_is_retried(
    m: aioresponses, client: LarkClient, fake: FakeTime, code: int
) -> None:
    token_ok(m)
    send_fails(m, code, "busy")
    m.post(SEND_URL, payload=OK)
    await client.send_message(CHAT, "text", {"text": "hi"})
    assert fake.sleeps == [1.0]  # 99991400 without a reset header falls back to the backoff


async def test_jitter_is_added_to_the_backoff(
    m: aioresponses, fake: FakeTime, started: Callable[..., Awaitable[LarkClient]]
) -> None:
    c = await started(jitter=lambda: 0.25)
    token_ok(m)
    send_fails(m, 0, "oops", status=500)
    m.post(SEND_URL, payload=OK)
    await c.send_message(CHAT, "text", {"text": "hi"})
    assert fake.sleeps == [1.25]


async def test_retries_end_at_the_deadline_with_the_last_error_and_capped_backoff(
    m: aioresponses, fake: FakeTime, started: Callable[..., Awaitable[LarkClient]]
) -> None:
    c = await started(send_deadline=100)
    token_ok(m)
    send_fails(m, 230020, "frequency limit", repeat=True)
    with pytest.raises(LarkAPIError) as info:
        await c.send_message(CHAT, "text", {"text": "hi"})
    assert info.value.code == 230020
    # 91 s of waits; one more 30 s would end past the 100 s deadline: given up instead.
    assert fake.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert len(calls(m, "POST", SEND_URL)) == 8


async def test_a_send_is_retried_for_ten_minutes_by_default(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    send_fails(m, 0, "bad gateway", status=502, repeat=True)
    with pytest.raises(LarkAPIError):
        await client.send_message(CHAT, "text", {"text": "hi"})
    assert 570 < sum(fake.sleeps) <= 600  # retried until the next wait would pass 10 min
    assert len(calls(m, "POST", SEND_URL)) == len(fake.sleeps) + 1


async def test_look_ups_give_up_sooner_than_sends(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    m.get(f"{BASE}/open-apis/im/v1/chats/oc_1", status=503, body="busy", repeat=True)
    with pytest.raises(LarkAPIError):
        await chats.chat_info(client, "oc_1")
    assert sum(fake.sleeps) <= 30  # a plugin thread is waiting on a look-up


async def test_network_errors_exhausted_raise_code_minus_one(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    m.post(SEND_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
    with pytest.raises(LarkAPIError, match="network error") as info:
        await client.send_message(CHAT, "text", {"text": "hi"})
    assert info.value.code == -1
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)
    assert len(calls(m, "POST", SEND_URL)) == len(fake.sleeps) + 1 > 5


async def test_non_retryable_code_raises_immediately(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    send_fails(
        m, 230002, "The bot can not be outside the group.", headers={"X-Tt-Logid": "20240101abcdef"}
    )
    with pytest.raises(LarkAPIError) as info:
        await client.send_message(CHAT, "text", {"text": "hi"})
    err = info.value
    assert (err.code, err.msg, err.log_id, err.http_status) == (
        230002,
        "The bot can not be outside the group.",
        "20240101abcdef",
        400,
    )
    assert str(err) == (
        "Feishu API error 230002: The bot can not be outside the group. (log_id 20240101abcdef)"
    )
    assert fake.sleeps == []
    assert len(calls(m, "POST", SEND_URL)) == 1


async def test_non_json_client_error_raises_minus_one(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    m.post(SEND_URL, status=404, body="not found", content_type="text/plain")
    with pytest.raises(LarkAPIError) as info:
        await client.send_message(CHAT, "text", {"text": "hi"})
    assert (info.value.code, info.value.http_status) == (-1, 404)
    assert fake.sleeps == []


def test_decode_response_shapes() -> None:
    assert decode_response(200, {}, b'{"code": 0, "bot": {}}') == {"code": 0, "bot": {}}
    with pytest.raises(LarkAPIError) as info:
        decode_response(503, {}, b'{"code": 0}')  # an HTTP error is never a success
    assert (info.value.code, info.value.http_status) == (-1, 503)
    body = b'{"code": 99991672, "msg": "no scope", "error": {"log_id": "from-body"}}'
    with pytest.raises(LarkAPIError) as info:
        decode_response(400, {}, body)
    assert info.value.log_id == "from-body"
    with pytest.raises(LarkAPIError) as info:
        decode_response(200, {}, b"[1, 2]")
    assert info.value.code == -1


def test_error_pickles_with_its_fields() -> None:
    err = pickle.loads(pickle.dumps(LarkAPIError(230020, "slow down", log_id="L", http_status=400)))
    assert (err.code, err.msg, err.log_id, err.http_status) == (230020, "slow down", "L", 400)


# -- message bodies (§4.1, §4.2) -----------------------------------------------------------


async def test_content_is_double_encoded(m: aioresponses, client: LarkClient) -> None:
    token_ok(m)
    url = f"{BASE}/open-apis/im/v1/messages?receive_id_type=open_id"
    m.post(url, payload=OK)
    content = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "你好"}]}}
    data = await client.send_message("ou_1", "interactive", content, receive_id_type="open_id")
    assert data == OK["data"]
    (body,) = sent_bodies(m, url)
    assert set(body) == {"receive_id", "msg_type", "content", "uuid"}
    assert (body["receive_id"], body["msg_type"]) == ("ou_1", "interactive")
    assert isinstance(body["content"], str)
    assert json.loads(body["content"]) == content
    assert "你好" in body["content"]  # ensure_ascii=False keeps the body small


async def test_reply_uses_reply_in_thread(m: aioresponses, client: LarkClient) -> None:
    token_ok(m)
    url = f"{BASE}/open-apis/im/v1/messages/om_parent/reply"
    m.post(url, payload=OK)
    await client.reply_message(
        "om_parent", "text", {"text": "hi"}, chat_id=CHAT, reply_in_thread=True, uuid="u-1"
    )
    (body,) = sent_bodies(m, url)
    assert body == {
        "msg_type": "text",
        "content": '{"text": "hi"}',
        "reply_in_thread": True,
        "uuid": "u-1",
    }


async def test_overlong_uuid_is_rejected_before_sending(
    m: aioresponses, client: LarkClient
) -> None:
    with pytest.raises(ValueError, match="50"):
        await client.send_message(CHAT, "text", {"text": "hi"}, uuid="x" * 51)
    assert m.requests == {}


# -- lookups -------------------------------------------------------------------------------


async def test_list_chats_follows_page_token(m: aioresponses, client: LarkClient) -> None:
    token_ok(m)
    page1 = {"items": [{"chat_id": "oc_1"}], "has_more": True, "page_token": "p2"}
    page2 = {"items": [{"chat_id": "oc_2"}], "has_more": False, "page_token": ""}
    m.get(f"{BASE}/open-apis/im/v1/chats?page_size=100", payload={"code": 0, "data": page1})
    m.get(
        f"{BASE}/open-apis/im/v1/chats?page_size=100&page_token=p2",
        payload={"code": 0, "data": page2},
    )
    assert await chats.list_chats(client) == [{"chat_id": "oc_1"}, {"chat_id": "oc_2"}]


async def test_lookups_unwrap_their_payloads(m: aioresponses, client: LarkClient) -> None:
    token_ok(m)
    bot = {"open_id": "ou_bot", "app_name": "Cards"}
    m.get(f"{BASE}/open-apis/bot/v3/info", payload={"code": 0, "msg": "ok", "bot": bot})
    m.get(
        f"{BASE}/open-apis/contact/v3/users/ou_1?user_id_type=open_id",
        payload={"code": 0, "data": {"user": {"name": "Ada"}}},
    )
    m.get(f"{BASE}/open-apis/im/v1/chats/oc_1", payload={"code": 0, "data": {"name": "Ops"}})
    assert await contacts.bot_info(client) == bot
    assert await contacts.user_info(client, "ou_1") == {"name": "Ada"}
    assert await chats.chat_info(client, "oc_1") == {"name": "Ops"}


async def test_request_before_start_is_an_error(fake: FakeTime) -> None:
    with pytest.raises(RuntimeError, match="start"):
        await make_client(fake).request("GET", "/open-apis/bot/v3/info", auth=False)


# -- logging -------------------------------------------------------------------------------


async def test_logs_never_contain_secrets_tokens_or_content(
    m: aioresponses, client: LarkClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token_ok(m)
    send_fails(m, 230020, "limit", headers={"X-Tt-Logid": "log-1"})
    m.post(SEND_URL, payload=OK, headers={"X-Tt-Logid": "log-2"})
    await client.send_message(CHAT, "text", {"text": "private words"})
    text = caplog.text
    assert "log-1" in text  # the DEBUG/WARNING lines are there ...
    assert "log-2" in text
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    for secret in (SECRET, TOKEN, "Bearer", "private words"):  # ... without the secrets
        assert secret not in text


# -- flow control (§4.4) -------------------------------------------------------------------


async def test_no_second_carries_more_sends_than_the_app_limit(
    m: aioresponses, fake: FakeTime, started: Callable[..., Awaitable[LarkClient]]
) -> None:
    """A send waiting for its chat's slot must not hold an app slot meanwhile: the app window
    has to count sends when they go out, or a second after a busy one carries more."""
    c = await started(app_qps=6)
    token_ok(m)
    times: list[float] = []
    m.post(re.compile(r".*/im/v1/messages\?.*"), payload=OK, repeat=True,
           callback=lambda url, **kw: times.append(fake.now))  # fmt: skip
    busy = [c.send_message(CHAT, "text", {"n": i}) for i in range(10)]
    others = [c.send_message(f"oc_{i}", "text", {"n": i}) for i in range(12)]
    await asyncio.gather(*busy, *others)
    assert len(times) == 22
    assert max(sum(t <= u < t + 1 for u in times) for t in times) <= 6


async def test_card_updates_are_paced_per_message(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    times: list[float] = []
    patch = re.compile(rf"^{re.escape(BASE)}/open-apis/im/v1/messages/om_card$")
    m.patch(
        patch, payload={"code": 0}, repeat=True, callback=lambda url, **kw: times.append(fake.now)
    )
    for i in range(6):
        await client.update_message("om_card", {"schema": "2.0", "n": i})
    assert times == [0.0] * 5 + [1.0]  # §4.3: 5 updates a second per message
    [first, *_] = calls(m, "PATCH", f"{BASE}/open-apis/im/v1/messages/om_card")
    assert json.loads(first.kwargs["json"]["content"]) == {"schema": "2.0", "n": 0}


async def test_paginate_follows_tokens_and_stops_on_a_repeated_one(
    m: aioresponses, client: LarkClient
) -> None:
    token_ok(m)
    url = re.compile(rf"^{re.escape(BASE)}/open-apis/im/v1/chats\?.*$")
    m.get(url, payload={"code": 0, "data": {"items": [1], "has_more": True, "page_token": "p2"}})
    m.get(url, payload={"code": 0, "data": {"items": [2], "has_more": True, "page_token": "p2"}})
    items = [item async for item in client.paginate("/open-apis/im/v1/chats", page_size=7)]
    assert items == [1, 2]  # the second page repeated its token: the walk ends there
    m.get(url, payload={"code": 0, "data": {"items": [3], "has_more": True, "page_token": "A"}})
    m.get(url, payload={"code": 0, "data": {"items": [4], "has_more": True, "page_token": "B"}})
    m.get(url, payload={"code": 0, "data": {"items": [5], "has_more": True, "page_token": "A"}})
    items = [item async for item in client.paginate("/open-apis/im/v1/chats")]
    assert items == [3, 4, 5]  # A → B → A: a cycle, not a longer list
    queries = [dict(u.query) for (_, u), _ in m.requests.items() if u.path.endswith("/chats")]
    assert {"page_size": "7", "page_token": "p2"} in queries


async def test_request_bytes_returns_binary_and_raises_json_errors(
    m: aioresponses, client: LarkClient
) -> None:
    token_ok(m)
    url = f"{BASE}/open-apis/im/v1/messages/om_1/resources/file_1?type=file"
    path = "/open-apis/im/v1/messages/om_1/resources/file_1"
    m.get(url, body=b'{"rows": 3}', content_type="application/json")
    fetched = await client.request_bytes("GET", path, params={"type": "file"}, max_bytes=100)
    assert fetched == b'{"rows": 3}'  # a JSON *file* is data
    m.get(url, payload={"code": 234003, "msg": "file not found"})
    with pytest.raises(LarkAPIError, match="234003"):
        await client.request_bytes("GET", path, params={"type": "file"}, max_bytes=100)
    m.get(url, body=b"x" * 101, content_type="application/octet-stream")
    with pytest.raises(ValueError, match="larger than 100 bytes"):
        await client.request_bytes("GET", path, params={"type": "file"}, max_bytes=100)


async def test_the_request_seam_is_the_only_network_call(fake: FakeTime) -> None:
    """Subclasses answer from memory by overriding ``_request`` (tests/api_fakes.FakeOpenAPI)."""
    seen: list[tuple[str, str]] = []

    class Canned(LarkClient):
        async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
            seen.append((method, URL(url).path))
            if "tenant_access_token" in url:
                return (
                    200,
                    {},
                    json.dumps({"code": 0, "tenant_access_token": "t", "expire": 99}).encode(),
                )
            return 200, {}, json.dumps(OK).encode()

    canned = Canned(app_id=APP_ID, app_secret=SECRET, base_url=BASE, clock=fake.clock,
                    sleep=fake.sleep)  # fmt: skip
    assert (await canned.send_message(CHAT, "text", {"text": "hi"}))["message_id"] == "om_1"
    assert seen == [("POST", "/open-apis/auth/v3/tenant_access_token/internal"),
                    ("POST", "/open-apis/im/v1/messages")]  # fmt: skip


async def test_sends_are_paced_per_chat(
    m: aioresponses, client: LarkClient, fake: FakeTime
) -> None:
    token_ok(m)
    times: list[float] = []
    m.post(SEND_URL, callback=lambda url, **kw: times.append(fake.now), payload=OK, repeat=True)
    for i in range(6):
        await client.send_message(CHAT, "text", {"text": str(i)})
    assert times == [0.0] * 5 + [1.0]  # chat_qps defaults to 5 (§4.4)


async def test_sends_are_paced_per_app(
    m: aioresponses, fake: FakeTime, started: Callable[..., Awaitable[LarkClient]]
) -> None:
    c = await started(app_qps=2)
    token_ok(m)
    times: list[float] = []
    m.post(re.compile(r".*/im/v1/messages\?.*"), payload=OK, repeat=True,
           callback=lambda url, **kw: times.append(fake.now))  # fmt: skip
    for i in range(3):
        await c.send_message(f"oc_{i}", "text", {"text": "x"})
    assert times == [0.0, 0.0, 1.0]


async def test_request_bodies_are_utf8_so_the_byte_budget_holds():
    """The 30 KB limit counts request bytes; \\uXXXX escapes would double a Chinese card."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    bodies: list[bytes] = []

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "tenant_access_token": "t-1", "expire": 7200})

    async def send(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.json_response({"code": 0, "data": {"message_id": "om_1"}})

    app = web.Application()
    app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", token)
    app.router.add_post("/open-apis/im/v1/messages", send)
    async with TestServer(app) as server:
        client = LarkClient(app_id=APP_ID, app_secret=SECRET, base_url=str(server.make_url("")))
        await client.start()
        try:
            await client.send_message(CHAT, "text", {"text": "部署完成"})
        finally:
            await client.close()
    [body] = bodies
    assert "部署完成".encode() in body
    assert b"\\u" not in body
