"""Build request bodies and headers exactly as Feishu sends them, for tests and benchmarks.

Fixtures live in ``tests/fixtures/events``; encryption and signing use the production functions
(their own known-answer tests pin them to the reference, feishu-platform.md §1.6-1.7).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from lark_cards.settings import Settings
from lark_cards.transport.envelope import Envelope, parse_callback
from lark_cards.transport.security import encrypt, signature

FIXTURES = Path(__file__).parent / "fixtures" / "events"
FIXTURE_NAMES = (
    "p2p_text",
    "group_text_mentions",
    "group_post",
    "url_verification",
    "unknown_event",
)

# The token in every fixture; tests configure the app with it.
TOKEN = "rvaYgkPtXGbKvXLbHQVnSgJwlmuTvfBM"
ENCRYPT_KEY = "test-encrypt-key"
# The app every fixture is addressed to (header.app_id); the webhook refuses other apps' events.
APP_ID = "cli_9f5343c580712544"
NOW = 1_700_000_000  # wall-clock seconds the tests pin the app's clock to
# An app configured like a production one (Encrypt Key + token), and a token-only one.
ENCRYPTED = Settings(
    app_id=APP_ID, app_secret="s", verification_token=TOKEN, encrypt_key=ENCRYPT_KEY
)
PLAIN = replace(ENCRYPTED, encrypt_key=None)
EVENTS_PATH = ENCRYPTED.path  # the default POST route


def load(name: str) -> dict[str, Any]:
    """A fresh (mutable) copy of ``fixtures/events/<name>.json``."""
    return copy.deepcopy(_cache(name))


def envelope(name: str, **event: Any) -> Envelope:
    """The parsed envelope of fixture ``name``, with ``event`` keys replaced (None included)."""
    payload = load(name)
    payload["event"].update(event)
    parsed = parse_callback(payload)
    assert isinstance(parsed, Envelope)
    return parsed


_LOADED: dict[str, dict[str, Any]] = {}


def _cache(name: str) -> dict[str, Any]:
    if name not in _LOADED:
        _LOADED[name] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return _LOADED[name]


def plain_body(payload: Any) -> bytes:
    """The JSON bytes of an unencrypted callback."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def encrypted_body(
    payload: Any, encrypt_key: str = ENCRYPT_KEY, *, iv: bytes | None = None
) -> bytes:
    """``{"encrypt": base64(iv + AES-256-CBC(json))}`` as Feishu posts it (§1.6)."""
    return plain_body({"encrypt": encrypt(encrypt_key, plain_body(payload), iv=iv)})


def signed_headers(
    body: bytes,
    encrypt_key: str = ENCRYPT_KEY,
    *,
    timestamp: int | str = NOW,
    nonce: str = "1234567890",
) -> dict[str, str]:
    """The three §1.7 headers for ``body`` (the raw bytes that will be sent)."""
    ts = str(timestamp)
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(ts, nonce, encrypt_key, body),
    }


def signed_request(
    payload: Any,
    encrypt_key: str = ENCRYPT_KEY,
    *,
    timestamp: int | str = NOW,
    nonce: str = "1234567890",
) -> tuple[bytes, dict[str, str]]:
    """An encrypted body and its signature headers: what Feishu sends with an Encrypt Key."""
    body = encrypted_body(payload, encrypt_key)
    return body, signed_headers(body, encrypt_key, timestamp=timestamp, nonce=nonce)


def with_ids(
    payload: dict[str, Any], *, event_id: str | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """A copy of a schema 2.0 fixture with a new event id and/or message id."""
    payload = copy.deepcopy(payload)
    if event_id is not None:
        payload["header"]["event_id"] = event_id
    if message_id is not None:
        payload["event"]["message"]["message_id"] = message_id
    return payload
