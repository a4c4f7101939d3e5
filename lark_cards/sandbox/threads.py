"""Where a message sits in its chat: reply chains and threads, as Feishu reports them.

Feishu gives every message three ids (§4.1 response, §1.3 event): ``parent_id`` — the message
it replies to; ``root_id`` — the first message of that reply chain (the replied-to message's
own root, or that message itself); ``thread_id`` (``omt_…``) — the thread it is in. A thread
exists once someone replies *in thread* (``reply_in_thread: true``), and in a topic chat every
message is in one; a reply to a message already in a thread goes into that thread whatever
``reply_in_thread`` says (§4.2). The message that starts a thread carries its ``thread_id``
too. Both the bot's sends and the simulated users' messages are placed here, so replies,
delivered events and the page agree.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .state import StoredMessage


def new_thread_id() -> str:
    return "omt_" + secrets.token_hex(8)


def place(
    message: StoredMessage,
    parent: StoredMessage | None,
    *,
    in_thread: bool = False,
    topic_chat: bool = False,
    roots: dict[str, str] | None = None,
) -> None:
    """Set ``message``'s ``reply_to`` (parent), ``root_id`` and ``thread_id``; a reply that
    starts a thread also gives ``parent`` (the thread's first message) its ``thread_id``.

    ``roots`` (thread_id → the thread's root message) remembers where each thread began, so
    every message in a thread has that root as ``root_id`` — also a plain reply to a message
    in the thread whose own reply chain started elsewhere (the thread's root was a reply)."""
    roots = {} if roots is None else roots
    if parent is None:
        message.reply_to, message.root_id = None, ""
        message.thread_id = new_thread_id() if topic_chat else ""
        if message.thread_id:
            roots[message.thread_id] = message.message_id
        return
    message.reply_to = parent.message_id
    if parent.thread_id:
        message.thread_id = parent.thread_id
        chain_root = parent.root_id if parent.root_id else parent.message_id
        message.root_id = roots.get(parent.thread_id, chain_root)
    elif in_thread or topic_chat:
        parent.thread_id = message.thread_id = new_thread_id()
        message.root_id = roots[message.thread_id] = parent.message_id
    else:
        message.root_id = parent.root_id or parent.message_id
        message.thread_id = ""
    message.reply_in_thread = bool(message.thread_id)


def ids(message: StoredMessage) -> dict[str, str]:
    """The three ids as Feishu writes them, ``""`` for none."""
    return {
        "root_id": message.root_id,
        "parent_id": message.reply_to or "",
        "thread_id": message.thread_id,
    }


def receive_fields(message: StoredMessage) -> dict[str, Any]:
    """What ``event.message`` of ``im.message.receive_v1`` must say about a user's message
    beyond its text: the thread ids, and for an image, file or post its type and content
    (§1.4 shapes: ``{"image_key"}``, ``{"file_key", "file_name"}``, unwrapped post)."""
    fields: dict[str, Any] = ids(message)
    if message.msg_type != "text":
        fields["message_type"] = message.msg_type
        fields["content"] = json.dumps(message.content, ensure_ascii=False)
    return fields


def with_thread(envelope: dict[str, Any], message: StoredMessage) -> dict[str, Any]:
    """``envelope`` (from ``delivery.message_envelope``) with ``message``'s thread ids and
    non-text content filled in; what the page pushes for a user's message."""
    event = envelope.get("event")
    body = event.get("message") if isinstance(event, dict) else None
    if isinstance(body, dict):
        body.update(receive_fields(message))
    return envelope
