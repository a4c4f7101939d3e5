"""Hostile input against the running webhook: never a 5xx, never a dispatch without credentials.

Each test starts one app on a private event loop and drives it synchronously from Hypothesis
(``loop.run_until_complete`` per example), so hundreds of requests share one server.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import feishu_payloads
import pytest
from aiohttp.test_utils import TestClient, TestServer
from feishu_payloads import encrypted_body, load, plain_body, signed_headers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_cards.settings import Settings
from lark_cards.transport.envelope import Envelope
from lark_cards.transport.webhook import create_app

PATH = feishu_payloads.EVENTS_PATH
# Outside the replay window means older or newer than this many seconds (the default window).
WINDOW = int(feishu_payloads.ENCRYPTED.replay_window or 0)
EXAMPLES = 400
Headers = dict[str, str] | None

hostile = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one server per test, shared by all examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


class Harness:
    """A webhook app on its own loop; ``post`` is synchronous so Hypothesis can call it."""

    def __init__(self, app_settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.dispatched: list[Envelope] = []
        self.requests = 0
        self.acked = 0  # responses that said {"msg": "ok"}
        app = create_app(
            app_settings, self.dispatched.append, clock=lambda: float(feishu_payloads.NOW)
        )
        self.client = TestClient(TestServer(app), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())

    def post(
        self, body: bytes, headers: dict[str, str] | None = None, **kw: Any
    ) -> tuple[int, Any]:
        """POST (or ``method=``) ``body`` to ``path=`` (default: the events route)."""
        return self.loop.run_until_complete(self._post(body, headers, **kw))

    async def _post(
        self,
        body: bytes,
        headers: Any,
        chunked: bool = False,
        method: str = "POST",
        path: str = PATH,
    ) -> tuple[int, Any]:
        data: Any = _chunks(body) if chunked else body
        async with self.client.request(method, path, data=data, headers=headers) as resp:
            status = resp.status
            answer = await resp.json() if resp.content_type == "application/json" else None
        await asyncio.sleep(0)  # let a scheduled dispatch run before the test looks
        self.requests += 1
        self.acked += answer == {"msg": "ok"}
        assert status < 500, (status, answer)
        if status >= 400:
            assert isinstance(answer, dict), answer
            assert isinstance(answer.get("error"), str), answer
        return status, answer

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 8192):
        yield body[start : start + 8192]


@pytest.fixture
def tally() -> Iterator[list[Harness]]:
    """Every harness a test used; afterwards, check Hypothesis really sent that many requests."""
    used: list[Harness] = []
    yield used
    assert sum(h.requests for h in used) >= EXAMPLES


def _harness(used: list[Harness], app_settings: Settings) -> Iterator[Harness]:
    harness = Harness(app_settings)
    used.append(harness)
    yield harness
    harness.close()


@pytest.fixture
def encrypted(tally: list[Harness]) -> Iterator[Harness]:
    yield from _harness(tally, feishu_payloads.ENCRYPTED)


@pytest.fixture
def plain(tally: list[Harness]) -> Iterator[Harness]:
    yield from _harness(tally, feishu_payloads.PLAIN)


@pytest.fixture
def small_limit(tally: list[Harness]) -> Iterator[Harness]:
    yield from _harness(tally, replace(feishu_payloads.ENCRYPTED, max_body_bytes=4096))


# --- strategies ------------------------------------------------------------------------------

# Header values a client can send: no control characters, no lone surrogates.
header_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=80)
signature_headers = st.fixed_dictionaries(
    {},
    optional={
        "X-Lark-Request-Timestamp": st.one_of(header_text, st.integers().map(str)),
        "X-Lark-Request-Nonce": header_text,
        "X-Lark-Signature": st.one_of(
            header_text, st.text("0123456789abcdef", min_size=64, max_size=64)
        ),
    },
)
FEISHU_KEYS = ["schema", "header", "event", "encrypt", "type", "challenge", "token", "uuid"]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["2.0", "url_verification", "im.message.receive_v1", "event_callback"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.one_of(st.sampled_from(FEISHU_KEYS), st.text(max_size=10)), inner, max_size=6
        ),
    ),
    max_leaves=30,
)
fixture_names = st.sampled_from(["p2p_text", "group_text_mentions", "group_post", "unknown_event"])
wrong_tokens = st.one_of(
    st.none(), st.text(max_size=64).filter(lambda t: t != feishu_payloads.TOKEN)
)


def _set_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    target = payload.get("header", payload)
    if token is None:
        target.pop("token", None)
    else:
        target["token"] = token
    return payload


# --- tests -----------------------------------------------------------------------------------


@hostile
@given(body=st.binary(max_size=2048), headers=signature_headers)
def test_random_bytes(encrypted: Harness, body: bytes, headers: dict[str, str]) -> None:
    status, _ = encrypted.post(body, headers)
    assert status in (400, 401)
    assert encrypted.dispatched == []


@hostile
@given(payload=json_value, headers=signature_headers)
def test_random_json_plain_mode(plain: Harness, payload: Any, headers: dict[str, str]) -> None:
    status, _ = plain.post(json.dumps(payload).encode(), headers)
    assert status in (400, 401)
    assert plain.dispatched == []


@hostile
@given(payload=json_value, encrypt_it=st.booleans(), sign_it=st.booleans())
def test_random_json_encrypted_mode(
    encrypted: Harness, payload: Any, encrypt_it: bool, sign_it: bool
) -> None:
    # Even correctly encrypted *and* signed, random JSON lacks the token: never dispatched.
    body = encrypted_body(payload) if encrypt_it else plain_body(payload)
    status, _ = encrypted.post(body, signed_headers(body) if sign_it else None)
    assert status in (400, 401)
    assert encrypted.dispatched == []


@hostile
@given(
    name=fixture_names, token=wrong_tokens, mode=st.sampled_from(["plain", "signed", "unsigned"])
)
def test_valid_envelopes_with_wrong_token(
    plain: Harness, encrypted: Harness, name: str, token: str | None, mode: str
) -> None:
    payload = _set_token(load(name), token)
    if mode == "plain":
        status, answer = plain.post(plain_body(payload))
        assert (status, answer) == (401, {"error": "verification token mismatch"})
    else:
        body = encrypted_body(payload)
        status, _ = encrypted.post(body, signed_headers(body) if mode == "signed" else None)
        assert status == 401
    assert plain.dispatched == encrypted.dispatched == []


@hostile
@given(
    name=fixture_names,
    headers=signature_headers,
    tamper=st.sampled_from(["replace", "body", "timestamp"]),
    skew=st.integers(min_value=WINDOW + 1, max_value=10**10)
    | st.integers(max_value=-(WINDOW + 1), min_value=-(10**10)),
)
def test_bad_signatures(
    encrypted: Harness, name: str, headers: dict[str, str], tamper: str, skew: int
) -> None:
    body = encrypted_body(load(name))
    good = signed_headers(body)
    if tamper == "replace":
        sent = {**good, **headers} if headers else {"Content-Type": good["Content-Type"]}
        if sent == good:
            return  # hypothesis picked exactly the right headers: nothing hostile to send
        status, _ = encrypted.post(body, sent)
    elif tamper == "body":
        status, _ = encrypted.post(body[:-1] + b" }", good)
    else:
        status, _ = encrypted.post(body, signed_headers(body, timestamp=feishu_payloads.NOW + skew))
    assert status == 401
    assert encrypted.dispatched == []


def _mutate(text: str, data: st.DataObject) -> str:
    kind = data.draw(
        st.sampled_from(["truncate", "flip-char", "insert", "flip-byte", "append-block"])
    )
    if kind == "truncate":
        return text[: data.draw(st.integers(0, len(text) - 1))]
    if kind == "flip-char":
        i = data.draw(st.integers(0, len(text) - 1))
        char = data.draw(st.characters(codec="ascii").filter(lambda c: c != text[i]))
        return text[:i] + char + text[i + 1 :]
    if kind == "insert":
        i = data.draw(st.integers(0, len(text)))
        return text[:i] + data.draw(st.text(min_size=1, max_size=8)) + text[i:]
    raw = bytearray(base64.b64decode(text))
    if kind == "flip-byte":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    else:
        raw += data.draw(st.binary(min_size=16, max_size=16))
    return base64.b64encode(bytes(raw)).decode()


@hostile
@given(name=fixture_names, sign_it=st.booleans(), data=st.data())
def test_mutated_ciphertext(
    encrypted: Harness, name: str, sign_it: bool, data: st.DataObject
) -> None:
    original = json.loads(encrypted_body(load(name)))["encrypt"]
    mutated = _mutate(original, data)
    body = plain_body({"encrypt": mutated})
    before = len(encrypted.dispatched)
    status, answer = encrypted.post(body, signed_headers(body) if sign_it else None)
    if not sign_it:
        assert (status, answer) == (401, {"error": "unsigned request"})  # uniform: no oracle
    # A signed mutation is, by definition, from someone holding the key. It may still decrypt to
    # a valid envelope (an IV flip only changes the first block); then and only then it counts.
    assert len(encrypted.dispatched) - before == (answer == {"msg": "ok"})
    assert encrypted.acked == len(encrypted.dispatched)


@hostile
@given(
    size=st.integers(min_value=4097, max_value=64 * 1024),
    filler=st.sampled_from([b" ", b"{", b"\x00", b"a"]),
    chunked=st.booleans(),
    sign_it=st.booleans(),
)
def test_oversized_bodies(
    small_limit: Harness, size: int, filler: bytes, chunked: bool, sign_it: bool
) -> None:
    body = filler * size
    headers = signed_headers(body) if sign_it else None
    answer = small_limit.post(body, headers, chunked=chunked)
    assert answer == (413, {"error": "request entity too large"})
    assert small_limit.dispatched == []


@hostile
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST", "OPTIONS"]),
    path=st.one_of(
        st.sampled_from([PATH, PATH + "/", "/healthz", "/", "/lark", "/LARK/EVENTS"]),
        st.text(st.characters(codec="ascii", blacklist_categories=("Cc",)), max_size=30).map(
            lambda p: "/" + p.replace("?", "").replace("#", "").lstrip("/")  # "//x" is a host
        ),
    ),
    body=st.binary(max_size=256),
)
def test_random_routes(encrypted: Harness, method: str, path: str, body: bytes) -> None:
    status, answer = encrypted.post(body, method=method, path=path)
    if (method, path) == ("GET", "/healthz"):
        assert (status, answer) == (200, {"status": "ok"})
    assert encrypted.dispatched == []


def test_control_a_valid_request_still_dispatches() -> None:
    # Guard against a harness that rejects everything: the same machinery accepts Feishu's own.
    harness = Harness(feishu_payloads.ENCRYPTED)
    try:
        body = encrypted_body(load("p2p_text"))
        assert harness.post(body, signed_headers(body)) == (200, {"msg": "ok"})
        assert len(harness.dispatched) == 1
    finally:
        harness.close()
