"""Build Feishu event envelopes and post them the way Feishu does (encrypted, signed)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from typing import Any

from lark_cards.transport.security import encrypt, signature


def message_envelope(
    text: str,
    *,
    chat_id: str,
    sender_open_id: str,
    chat_type: str = "group",
    message_id: str | None = None,
    event_id: str | None = None,
    mentions: Sequence[dict[str, Any]] = (),
    app_id: str = "cli_sandbox",
    token: str | None = None,
) -> dict[str, Any]:
    """A schema 2.0 ``im.message.receive_v1`` envelope (reference/feishu-platform.md §1.2-1.3)."""
    now_ms = str(int(time.time() * 1000))
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or secrets.token_hex(16),
            "event_type": "im.message.receive_v1",
            "create_time": now_ms,
            "token": token or "",
            "app_id": app_id,
            "tenant_key": "sandbox",
        },
        "event": {
            "sender": {
                "sender_id": {"open_id": sender_open_id, "union_id": "", "user_id": ""},
                "sender_type": "user",
                "tenant_key": "sandbox",
            },
            "message": {
                "message_id": message_id or "om_" + secrets.token_hex(16),
                "root_id": "",
                "parent_id": "",
                "create_time": now_ms,
                "update_time": now_ms,
                "chat_id": chat_id,
                "thread_id": "",
                "chat_type": chat_type,
                "message_type": "text",
                "content": json.dumps({"text": text}, ensure_ascii=False),
                "mentions": list(mentions),
            },
        },
    }


def event_request(
    payload: dict[str, Any], *, encrypt_key: str | None, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of the POST Feishu would make for ``payload`` (§1.6-1.7).

    With an encrypt key the body is ``{"encrypt": …}`` and the request carries the
    timestamp/nonce/signature headers computed over the exact body bytes.
    """
    headers = {"Content-Type": "application/json; charset=utf-8"}
    plain = json.dumps(payload, ensure_ascii=False).encode()
    if not encrypt_key:
        return plain, headers
    body = json.dumps({"encrypt": encrypt(encrypt_key, plain)}).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = secrets.token_hex(8)
    headers |= {
        "X-Lark-Request-Timestamp": ts,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(ts, nonce, encrypt_key, body),
    }
    return body, headers
