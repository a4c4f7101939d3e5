"""Feishu event envelopes → small typed records. Pure: no I/O, no Errbot, no aiohttp.

Shapes follow reference/feishu-platform.md §1.2-1.4 (schema 2.0 envelopes, the
``im.message.receive_v1`` payload and the received ``content`` of each message type).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MESSAGE_RECEIVE = "im.message.receive_v1"
CARD_ACTION = "card.action.trigger"


class EventError(ValueError):
    """The body is JSON but not a Feishu envelope we can read."""


@dataclass(frozen=True, slots=True)
class UrlVerification:
    """The challenge Feishu sends when the request URL is saved (§1.1)."""

    challenge: str
    token: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """The part of any callback we need before trusting it: id, type, token and the event."""

    event_id: str
    event_type: str
    token: str | None
    event: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Mention:
    """One ``@`` in a message: ``key`` is the ``@_user_N`` placeholder used in the text."""

    key: str
    open_id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """``im.message.receive_v1`` reduced to what the backend uses."""

    event_id: str
    message_id: str
    chat_id: str
    chat_type: str  # "p2p" | "group" | "topic_group"
    sender_open_id: str
    sender_type: str
    message_type: str
    text: str  # plain text; mentions still appear as their @_user_N placeholders
    mentions: tuple[Mention, ...] = ()
    root_id: str | None = None
    parent_id: str | None = None
    thread_id: str | None = None

    @property
    def is_direct(self) -> bool:
        return self.chat_type == "p2p"


def parse_callback(payload: Any) -> UrlVerification | Envelope:
    """Classify a decrypted JSON body as a URL challenge or an event envelope."""
    if not isinstance(payload, Mapping):
        raise EventError("body is not a JSON object")
    if payload.get("type") == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            raise EventError("url_verification without a challenge")
        return UrlVerification(challenge, _opt_str(payload.get("token")))
    if payload.get("schema") == "2.0":
        header = payload.get("header")
        event = payload.get("event")
        if not isinstance(header, Mapping) or not isinstance(event, Mapping):
            raise EventError("schema 2.0 envelope without header or event")
        return Envelope(
            event_id=_req_str(header, "event_id"),
            event_type=_req_str(header, "event_type"),
            token=_opt_str(header.get("token")),
            event=event,
        )
    if isinstance(payload.get("uuid"), str) and isinstance(payload.get("event"), Mapping):
        # Schema 1.0 (legacy): unique id is ``uuid``, the type lives in ``event.type``.
        event = payload["event"]
        return Envelope(
            event_id=payload["uuid"],
            event_type=f"v1:{event.get('type', '')}",
            token=_opt_str(payload.get("token")),
            event=event,
        )
    raise EventError("unknown envelope")


def parse_message(envelope: Envelope) -> MessageReceived:
    """Read an ``im.message.receive_v1`` event (§1.3)."""
    if envelope.event_type != MESSAGE_RECEIVE:
        raise EventError(f"not a {MESSAGE_RECEIVE} event")
    sender = _mapping(envelope.event, "sender")
    message = _mapping(envelope.event, "message")
    sender_id = _mapping(sender, "sender_id")
    message_type = _req_str(message, "message_type")
    return MessageReceived(
        event_id=envelope.event_id,
        message_id=_req_str(message, "message_id"),
        chat_id=_req_str(message, "chat_id"),
        chat_type=_req_str(message, "chat_type"),
        sender_open_id=_req_str(sender_id, "open_id"),
        sender_type=_opt_str(sender.get("sender_type")) or "user",
        message_type=message_type,
        text=content_text(message_type, message.get("content")),
        mentions=tuple(_mentions(message.get("mentions"))),
        root_id=_opt_str(message.get("root_id")),
        parent_id=_opt_str(message.get("parent_id")),
        thread_id=_opt_str(message.get("thread_id")),
    )


@dataclass(frozen=True, slots=True)
class CardAction:
    """A click (or form submit, select…) on a card: ``card.action.trigger`` (§6.1).

    ``value`` is always an object. The component's value may be an object or a string (§6.1);
    a non-empty string is read as ``{"cmd": value}`` — a card author who wrote a bare string
    on a button meant it as the command, and the SDKs cannot even build string values (§5.5),
    so only hand-written cards carry them. Any other value (number, list, null) reads as
    ``{}``: no command.
    """

    event_id: str
    operator_open_id: str
    value: Mapping[str, Any]
    tag: str | None = None
    name: str | None = None
    form_value: Mapping[str, Any] | None = None
    open_message_id: str | None = None
    open_chat_id: str | None = None
    host: str | None = None
    token: str | None = None  # delayed-update token: 30 min, at most 2 uses (§4.3)
    raw: Mapping[str, Any] | None = None  # the whole ``action`` object (option, input_value…)

    @property
    def command(self) -> str | None:
        """The command text to run (``value["cmd"]``), or None when the value has none."""
        cmd = self.value.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            return None
        return cmd.strip()

    @property
    def arguments(self) -> dict[str, Any]:
        """The value's other keys: they become the command message's extras (design.md §3)."""
        return {key: item for key, item in self.value.items() if key != "cmd"}


def parse_card_action(envelope: Envelope) -> CardAction:
    """Read a ``card.action.trigger`` callback (§6.1).

    The card's message and chat ids are in ``event.context``; the legacy top-level
    ``open_message_id`` / ``open_chat_id`` (§6.2 field names) are read when ``context`` lacks
    them. Only the operator's ``open_id`` is required: without it nobody can be held to ACLs.
    """
    if envelope.event_type != CARD_ACTION:
        raise EventError(f"not a {CARD_ACTION} event")
    event = envelope.event
    operator = _mapping(event, "operator")
    action = _mapping(event, "action")
    context = event.get("context")
    context = context if isinstance(context, Mapping) else {}
    form_value = action.get("form_value")
    return CardAction(
        event_id=envelope.event_id,
        operator_open_id=_req_str(operator, "open_id"),
        value=_action_value(action.get("value")),
        tag=_opt_str(action.get("tag")),
        name=_opt_str(action.get("name")),
        form_value=form_value if isinstance(form_value, Mapping) else None,
        open_message_id=_opt_str(context.get("open_message_id"))
        or _opt_str(event.get("open_message_id")),
        open_chat_id=_opt_str(context.get("open_chat_id")) or _opt_str(event.get("open_chat_id")),
        host=_opt_str(event.get("host")),
        token=_opt_str(event.get("token")),
        raw=action,
    )


def _action_value(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        return {"cmd": value}
    return {}


def message_id_of(envelope: Envelope) -> str | None:
    """The message id of a message event, without validating the rest (used for dedup)."""
    message = envelope.event.get("message")
    if isinstance(message, Mapping):
        return _opt_str(message.get("message_id"))
    return None


def content_text(message_type: str, content: Any) -> str:
    """Plain text of a received message's ``content`` JSON string (§1.4).

    Text and post become their words (post styles are dropped, links keep their text, code
    blocks keep their code); other types become an empty string — their keys stay in the event.
    """
    try:
        body = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return ""
    if message_type == "text":
        text = body.get("text")
        return text if isinstance(text, str) else ""
    if message_type == "post":
        return _post_text(body)
    return ""


def _post_text(post: Mapping[str, Any]) -> str:
    lines = []
    title = post.get("title")
    if isinstance(title, str) and title:
        lines.append(title)
    paragraphs = post.get("content")
    for paragraph in paragraphs if isinstance(paragraphs, list) else ():
        if isinstance(paragraph, list):
            lines.append("".join(_post_node_text(node) for node in paragraph))
    return "\n".join(lines)


def _post_node_text(node: Any) -> str:
    if not isinstance(node, Mapping):
        return ""
    tag = node.get("tag")
    if tag in ("text", "a"):
        return _opt_str(node.get("text")) or ""
    if tag == "at":
        return _opt_str(node.get("user_id")) or ""  # the @_user_N placeholder
    if tag == "code_block":
        return _opt_str(node.get("text")) or ""
    if tag == "emotion":
        return f":{node.get('emoji_type', '')}:"
    if tag == "hr":
        return "---"
    return ""


def _mentions(raw: Any) -> list[Mention]:
    mentions = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            continue
        ids = item.get("id")
        open_id = _opt_str(ids.get("open_id")) if isinstance(ids, Mapping) else None
        mentions.append(Mention(item["key"], open_id, _opt_str(item.get("name")) or ""))
    return mentions


_PLACEHOLDER = re.compile(r"@_user_\d+|@_all")


def resolve_mentions(
    text: str, mentions: tuple[Mention, ...], bot_open_id: str | None
) -> tuple[str, list[Mention]]:
    """Replace ``@_user_N`` placeholders for Errbot.

    The bot's own mention is removed (so ``@bot !help`` reads as ``!help`` in a group), every
    other mention reads as ``@Name``. Returns the new text and the mentions other than the bot.
    """
    bot_keys = [m.key for m in mentions if bot_open_id is not None and m.open_id == bot_open_id]
    if bot_keys:
        own = "|".join(re.escape(key) for key in bot_keys)
        text = re.sub(rf"(?:{own})(?!\d)[ \t]*", "", text)
    by_key = {mention.key: mention for mention in mentions}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "@_all":
            return "@all"
        mention = by_key.get(match.group(0))
        if mention is None:
            return match.group(0)
        return f"@{mention.name or mention.open_id or 'someone'}"

    others = [m for m in mentions if m.key not in bot_keys]
    return _PLACEHOLDER.sub(replace, text).strip(), others


def _mapping(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise EventError(f"missing object {key!r}")
    return value


def _req_str(parent: Mapping[str, Any], key: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise EventError(f"missing string {key!r}")
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
