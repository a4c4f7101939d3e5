"""Received messages and card clicks → small typed records. Pure: no I/O, no Errbot.

Each payload is read once, here: a message's ``content`` JSON string gives both its plain text
and its attachments. Shapes follow docs/feishu-platform.md §1.3-1.4 (the
``im.message.receive_v1`` payload and the received ``content`` of each message type) and §6.1
(``card.action.trigger``). The parsers trust the event type: the inbound handler table picked
the parser by it. Membership and reaction events are in ``room_events``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lark_cards.transport.envelope import Envelope, opt_str, req_mapping, req_str


@dataclass(frozen=True, slots=True)
class Mention:
    """One ``@`` in a message: ``key`` is the ``@_user_N`` placeholder used in the text."""

    key: str
    open_id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """An image or file in a received message, as ``download_file`` fetches it.

    ``kind`` is the download ``type`` ("image" | "file"); ``duration`` (ms) is set for audio
    and video files.
    """

    key: str
    kind: str
    name: str | None = None
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """A received message's ``content``: its plain text and what it carries."""

    text: str = ""
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """``im.message.receive_v1`` reduced to what the backend uses."""

    event_id: str
    message_id: str
    chat_id: str
    chat_type: str  # "p2p" | "group" | "topic_group"
    sender_open_id: str
    message_type: str
    text: str  # plain text; mentions still appear as their @_user_N placeholders
    mentions: tuple[Mention, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    root_id: str | None = None
    thread_id: str | None = None

    @property
    def is_direct(self) -> bool:
        return self.chat_type == "p2p"


def parse_message(envelope: Envelope) -> MessageReceived:
    """Read an ``im.message.receive_v1`` event (§1.3)."""
    message = req_mapping(envelope.event, "message")
    sender_id = req_mapping(req_mapping(envelope.event, "sender"), "sender_id")
    message_type = req_str(message, "message_type")
    content = parse_content(message_type, message.get("content"))
    return MessageReceived(
        event_id=envelope.event_id,
        message_id=req_str(message, "message_id"),
        chat_id=req_str(message, "chat_id"),
        chat_type=req_str(message, "chat_type"),
        sender_open_id=req_str(sender_id, "open_id"),
        message_type=message_type,
        text=content.text,
        mentions=tuple(_mentions(message.get("mentions"))),
        attachments=content.attachments,
        root_id=opt_str(message.get("root_id")),
        thread_id=opt_str(message.get("thread_id")),
    )


def parse_content(message_type: str, content: Any) -> Content:
    """The received ``content`` JSON string of a ``message_type`` message, parsed once (§1.4).

    Text and post become their words (post styles are dropped, links keep their text, code
    blocks keep their code); other types have no text. Images and files (and a post's images)
    become attachments. Unreadable content is an empty :class:`Content`, not an error: the
    message still reaches Errbot.
    """
    try:
        body = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return Content()
    if message_type == "text":
        text = body.get("text")
        return Content(text if isinstance(text, str) else "")
    if message_type == "post":
        post = _unwrapped(body)
        images = (opt_str(node.get("image_key")) for node in _post_media(post))
        return Content(_post_text(post), tuple(Attachment(key, "image") for key in images if key))
    if message_type in ("image", "file", "audio", "media"):
        return Content(attachments=tuple(_files(body)))
    return Content()


def _files(body: Mapping[str, Any]) -> Iterator[Attachment]:
    file_key = opt_str(body.get("file_key"))
    if file_key:
        duration = body.get("duration")
        length = duration if isinstance(duration, int) and not isinstance(duration, bool) else None
        yield Attachment(file_key, "file", opt_str(body.get("file_name")), length)
    image_key = opt_str(body.get("image_key"))  # an image, or a video's cover
    if image_key:
        yield Attachment(image_key, "image")


def _unwrapped(post: Mapping[str, Any]) -> Mapping[str, Any]:
    """A post's ``{title, content}``. Received posts have no locale wrapper (§1.4), but the
    send shape ``{"zh_cn": {title, content}, …}`` (§5.2) reaches bots too — from other apps,
    and as the same format everywhere else — so the first locale holding content is read."""
    if isinstance(post.get("content"), list):
        return post
    for value in post.values():
        if isinstance(value, Mapping) and isinstance(value.get("content"), list):
            return value
    return post


def _post_paragraphs(post: Mapping[str, Any]) -> Iterator[list[Any]]:
    paragraphs = post.get("content")
    for paragraph in paragraphs if isinstance(paragraphs, list) else ():
        if isinstance(paragraph, list):
            yield paragraph


def _post_media(post: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for paragraph in _post_paragraphs(post):
        for node in paragraph:
            if isinstance(node, Mapping) and node.get("tag") in ("img", "media"):
                yield node


def _post_text(post: Mapping[str, Any]) -> str:
    title = opt_str(post.get("title"))
    lines = [title] if title else []
    lines += ["".join(map(_post_node_text, paragraph)) for paragraph in _post_paragraphs(post)]
    return "\n".join(lines)


def _post_node_text(node: Any) -> str:
    if not isinstance(node, Mapping):
        return ""
    tag = node.get("tag")
    if tag in ("text", "a", "code_block", "md"):  # md: the send-only markdown node (§5.2)
        return opt_str(node.get("text")) or ""
    if tag == "at":
        return opt_str(node.get("user_id")) or ""  # the @_user_N placeholder
    if tag == "emotion":
        return f":{node.get('emoji_type', '')}:"
    if tag == "hr":
        return "---"
    return ""


def _mentions(raw: Any) -> Iterator[Mention]:
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            continue
        ids = item.get("id")
        open_id = opt_str(ids.get("open_id")) if isinstance(ids, Mapping) else None
        yield Mention(item["key"], open_id, opt_str(item.get("name")) or "")


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
        """The value's other keys: they become the command message's extras."""
        return {key: item for key, item in self.value.items() if key != "cmd"}


def parse_card_action(envelope: Envelope) -> CardAction:
    """Read a ``card.action.trigger`` callback (§6.1).

    The card's message and chat ids are in ``event.context``; the legacy top-level
    ``open_message_id`` / ``open_chat_id`` (§6.2 field names) are read when ``context`` lacks
    them. Only the operator's ``open_id`` is required: without it nobody can be held to ACLs.
    """
    event = envelope.event
    action = req_mapping(event, "action")
    context = event.get("context")
    context = context if isinstance(context, Mapping) else {}
    form_value = action.get("form_value")
    return CardAction(
        event_id=envelope.event_id,
        operator_open_id=req_str(req_mapping(event, "operator"), "open_id"),
        value=_action_value(action.get("value")),
        tag=opt_str(action.get("tag")),
        name=opt_str(action.get("name")),
        form_value=form_value if isinstance(form_value, Mapping) else None,
        open_message_id=opt_str(context.get("open_message_id"))
        or opt_str(event.get("open_message_id")),
        open_chat_id=opt_str(context.get("open_chat_id")) or opt_str(event.get("open_chat_id")),
        host=opt_str(event.get("host")),
        raw=action,
    )


def _action_value(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        return {"cmd": value}
    return {}
