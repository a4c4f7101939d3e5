"""What Feishu refuses, and with which code: the sandbox's checks on every message it accepts.

Each check returns ``None`` or a :class:`Refusal` carrying Feishu's body code, so the Open API
routes answer exactly like Feishu (HTTP 400 ``{"code", "msg"}``) and the backend's fallbacks
see the codes they will see in production (the codes are named in :mod:`lark_cards.api.errors`,
beside the sets the client reacts to). Section numbers are docs/feishu-platform.md.
Card content is judged by the project's own validator (``lark_cards.render.validate``), the
one the renderer is tested against, so the sandbox and the renderer cannot disagree on
what a valid card is.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lark_cards.api.errors import (
    CARD_SCHEMA_MISMATCH,
    CHAT_RATE_LIMITED,
    GATEWAY_RATE_LIMITED,
    INVALID_PARAM,
    MESSAGE_TOO_LARGE,
)
from lark_cards.render.cardspec import CardLimits
from lark_cards.render.validate import validate_card

from .cardv1 import check_card_v1

# §4.1: "text ≤ 150 KB; card and post ≤ 30 KB" — of the request body; over-size → 230025.
TEXT_BODY_LIMIT = 150 * 1024
CARD_BODY_LIMIT = 30 * 1024
MSG_TYPES = frozenset(
    {"text", "post", "image", "file", "audio", "media", "sticker", "interactive"}
    | {"share_chat", "share_user"}
)
RECEIVE_ID_TYPES = frozenset({"open_id", "user_id", "union_id", "email", "chat_id"})
# 230055: an uploaded mp4 goes as ``media``, an opus as ``audio``, anything else as ``file``.
FILE_MESSAGE_TYPES = {"mp4": "media", "opus": "audio"}
UPLOAD_TYPE_MISMATCH = 230055  # "The type of file upload does not match the type of message …"


class UploadedFile(Protocol):
    """What a content check needs of an upload (``uploads.Upload``)."""

    file_type: str


@dataclass(frozen=True)
class Refusal:
    """Feishu's answer to a request it refuses."""

    code: int
    msg: str
    status: int = 400
    headers: tuple[tuple[str, str], ...] = ()


class SlidingWindow:
    """At most ``limit`` events per key in any ``window`` seconds (what "5 QPS" means, §4.4)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._stamps: defaultdict[str, deque[float]] = defaultdict(deque)

    def admit(self, key: str) -> float | None:
        """Record one event for ``key``; None when admitted, else seconds until it would be."""
        now = self._clock()
        stamps = self._stamps[key]
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if len(stamps) >= self.limit:
            return stamps[0] + self.window - now
        stamps.append(now)
        return None


class SendLimits:
    """Feishu's send limits (§4.4): 5/s per chat, 50/s and 1000/min per app; 5/s per PATCHed
    message (§4.3)."""

    def __init__(self, clock: Callable[[], float], *, chat_qps: int = 5, app_qps: int = 50):
        self.per_chat = SlidingWindow(chat_qps, 1.0, clock)
        self.per_message = SlidingWindow(5, 1.0, clock)
        self.app_second = SlidingWindow(app_qps, 1.0, clock)
        self.app_minute = SlidingWindow(1000, 60.0, clock)

    def admit_send(self, chat_id: str) -> Refusal | None:
        return self._admit_app() or _per_key(self.per_chat, chat_id)

    def admit_patch(self, message_id: str) -> Refusal | None:
        return self._admit_app() or _per_key(self.per_message, message_id)

    def _admit_app(self) -> Refusal | None:
        for window in (self.app_second, self.app_minute):
            wait = window.admit("app")
            if wait is not None:
                # §4.4: the gateway limit comes as HTTP 429 with x-ogw-ratelimit-reset.
                reset = str(max(1, round(wait)))
                headers = (
                    ("x-ogw-ratelimit-limit", str(window.limit)),
                    ("x-ogw-ratelimit-reset", reset),
                )
                message = "request trigger frequency limit"
                return Refusal(GATEWAY_RATE_LIMITED, message, 429, headers)
        return None


def _per_key(window: SlidingWindow, key: str) -> Refusal | None:
    if window.admit(key) is None:
        return None
    return Refusal(CHAT_RATE_LIMITED, "This operation triggers the frequency limit.")


def check_body_size(msg_type: str, body: bytes) -> Refusal | None:
    """§4.1: the request body limit (cards and posts 30 KB, text 150 KB)."""
    limit = TEXT_BODY_LIMIT if msg_type == "text" else CARD_BODY_LIMIT
    if len(body) > limit:
        return Refusal(
            MESSAGE_TOO_LARGE,
            f"The message is too large: the request body is {len(body)} bytes, "
            f"the limit for {msg_type} messages is {limit} bytes.",
        )
    return None


def parse_content(
    msg_type: Any,
    raw: Any,
    *,
    image_keys: Collection[str],
    file_keys: Mapping[str, UploadedFile],
) -> dict[str, Any] | Refusal:
    """The message ``content`` (a JSON *string*, §8) → the object, or Feishu's refusal."""
    if not isinstance(msg_type, str) or msg_type not in MSG_TYPES:  # a list is unhashable
        return Refusal(INVALID_PARAM, f"invalid msg_type {msg_type!r}")
    if not isinstance(raw, str):
        return Refusal(INVALID_PARAM, "content must be a JSON string")
    try:
        content = json.loads(raw)
    except ValueError:
        return Refusal(INVALID_PARAM, "content is not valid JSON")
    if not isinstance(content, dict):
        return Refusal(INVALID_PARAM, "content must be a JSON object")
    refusal = _CONTENT_CHECKS.get(msg_type, _no_check)(content, image_keys, file_keys)
    return refusal or content


def _no_check(content: dict[str, Any], *_: Any) -> Refusal | None:
    return None


def _check_text(content: dict[str, Any], *_: Any) -> Refusal | None:
    if not isinstance(content.get("text"), str):
        return Refusal(INVALID_PARAM, "text content needs a string 'text'")
    return None


def _check_post(content: dict[str, Any], image_keys: Collection[str], *_: Any) -> Refusal | None:
    # §5.2: at least one locale {title, content: [[node]]}; an outer {"post": …} is 230001.
    if not content or "post" in content:
        return Refusal(INVALID_PARAM, "post content must be {locale: {title, content}}")
    for locale in content.values():
        if not isinstance(locale, dict) or not isinstance(locale.get("content"), list):
            return Refusal(INVALID_PARAM, "post content must be {locale: {title, content}}")
        for paragraph in locale["content"]:
            if not isinstance(paragraph, list):
                return Refusal(INVALID_PARAM, "post content must be a list of paragraphs")
            keys = [n.get("image_key") for n in paragraph if isinstance(n, dict)]
            if any(key is not None and not _known(key, image_keys) for key in keys):
                return Refusal(INVALID_PARAM, "post img uses an image_key that was not uploaded")
    return None


def _check_image(content: dict[str, Any], image_keys: Collection[str], *_: Any) -> Refusal | None:
    if not _known(content.get("image_key"), image_keys):
        return Refusal(INVALID_PARAM, "image_key was not uploaded by this app")
    return None


def _check_file(
    content: dict[str, Any], _images: Collection[str], files: Mapping[str, UploadedFile]
) -> Refusal | None:
    """file, audio and media messages: an uploaded key, of the upload's own type (230055)."""
    key = content.get("file_key")
    if not _known(key, files):
        return Refusal(INVALID_PARAM, "file_key was not uploaded by this app")
    return None


def _file_of_type(msg_type: str) -> ContentCheck:
    def check(
        content: dict[str, Any], images: Collection[str], files: Mapping[str, UploadedFile]
    ) -> Refusal | None:
        refusal = _check_file(content, images, files)
        if refusal is None:
            uploaded = files[content["file_key"]].file_type
            if FILE_MESSAGE_TYPES.get(uploaded, "file") != msg_type:
                return Refusal(
                    UPLOAD_TYPE_MISMATCH,
                    "The type of file upload does not match the type of message being sent: "
                    f"a {uploaded} upload cannot be sent as {msg_type}.",
                )
        return refusal

    return check


def _known(key: Any, keys: Collection[str]) -> bool:
    return isinstance(key, str) and key in keys


# A check of one msg_type's content: (content, uploaded image keys, uploaded files by key).
ContentCheck = Callable[
    [dict[str, Any], Collection[str], Mapping[str, UploadedFile]], Refusal | None
]
_CONTENT_CHECKS: Mapping[str, ContentCheck] = {
    "text": _check_text,
    "post": _check_post,
    "image": _check_image,
    "file": _file_of_type("file"),
    "audio": _file_of_type("audio"),
    "media": _file_of_type("media"),
}


def check_card(
    card: dict[str, Any], image_keys: Collection[str], limits: CardLimits | None = None
) -> Refusal | None:
    """An interactive message's card: card JSON 2.0 judged by the project's validator
    (§5.3-5.6), a card without ``schema`` as the more lenient JSON 1.0 (:mod:`.cardv1`).

    ``limits`` default to Feishu's (30 KB, 200 components, 5 tables); tests pass tighter ones
    to play a Feishu that is stricter than the renderer's budgets.
    """
    if card.get("type") in ("template", "card"):
        return Refusal(INVALID_PARAM, "the sandbox only accepts card JSON, not template/card ids")
    if "schema" not in card:
        refused = check_card_v1(card, image_keys)
        return Refusal(*refused) if refused else None
    problems = validate_card(card, limits or CardLimits(), known_image_keys=frozenset(image_keys))
    if not problems:
        return None
    first = problems[0]
    detail = "; ".join(f"{p.path}: {p.message}" for p in problems[:5])
    return Refusal(
        first.code, f"Failed to create card content, ext=ErrCode: {first.code}; {detail}"
    )


def check_patch(old: dict[str, Any], new: dict[str, Any]) -> Refusal | None:
    """§4.3: a card updates only into a card of the same JSON version: 2.0 → 1.0 (and 1.0 →
    2.0) is 200830, Feishu's code for exactly that and for nothing else."""
    was_v2, is_v2 = old.get("schema") == "2.0", new.get("schema") == "2.0"
    if was_v2 != is_v2:
        versions = ("2.0", "1.0") if was_v2 else ("1.0", "2.0")
        return Refusal(
            CARD_SCHEMA_MISMATCH, "a card JSON {} card cannot become a {} card".format(*versions)
        )
    if was_v2:
        return None  # 2.0 cards are always shared (update_multi defaults to true, §5.3)
    if not all(_shared(card) for card in (old, new)):
        return Refusal(INVALID_PARAM, "both cards must declare config.update_multi = true")
    return None


def _shared(card: dict[str, Any]) -> bool:
    config = card.get("config")
    return isinstance(config, dict) and config.get("update_multi") is True
