"""Feishu callback envelopes: what the transport reads before it trusts and routes a request.

Pure: no I/O, no Errbot, no aiohttp. Shapes follow docs/feishu-platform.md §1.1-1.2
(the URL challenge and the schema 2.0 envelope; schema 1.0 is still recognised). Every event
type the project names is defined here, so the transport and the inbound handlers share one
spelling; an event type is a plain string because Feishu adds new ones without warning.

The ``req_str`` / ``opt_str`` / ``req_mapping`` readers are the ones every payload parser uses
(here and in ``lark_cards.inbound.events``): a field of the wrong type is an
:class:`EventError`, never a ``TypeError`` that would escape as a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MESSAGE_RECEIVE = "im.message.receive_v1"
CARD_ACTION = "card.action.trigger"
REACTION_CREATED = "im.message.reaction.created_v1"
REACTION_DELETED = "im.message.reaction.deleted_v1"
REACTION_EVENTS = frozenset({REACTION_CREATED, REACTION_DELETED})
BOT_ADDED = "im.chat.member.bot.added_v1"
BOT_DELETED = "im.chat.member.bot.deleted_v1"
USER_ADDED = "im.chat.member.user.added_v1"
USER_DELETED = "im.chat.member.user.deleted_v1"  # removed by someone, or left by themselves
MEMBER_EVENTS = frozenset({BOT_ADDED, BOT_DELETED, USER_ADDED, USER_DELETED})


class EventError(ValueError):
    """The body is JSON but not a Feishu envelope (or event) we can read."""


@dataclass(frozen=True, slots=True)
class UrlVerification:
    """The challenge Feishu sends when the request URL is saved (§1.1)."""

    challenge: str
    token: str | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """The part of any callback we need before trusting it: id, type, token and the event.

    ``app_id`` is the app the callback is addressed to (``header.app_id``, §1.2; schema 1.0
    carries it in ``event.app_id``), None when the envelope does not say.
    """

    event_id: str
    event_type: str
    token: str | None
    event: Mapping[str, Any]
    app_id: str | None = None


def parse_callback(payload: Any) -> UrlVerification | Envelope:
    """Classify a decrypted JSON body as a URL challenge or an event envelope."""
    if not isinstance(payload, Mapping):
        raise EventError("body is not a JSON object")
    if payload.get("type") == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            raise EventError("url_verification without a challenge")
        return UrlVerification(challenge, opt_str(payload.get("token")))
    if payload.get("schema") == "2.0":
        header = payload.get("header")
        event = payload.get("event")
        if not isinstance(header, Mapping) or not isinstance(event, Mapping):
            raise EventError("schema 2.0 envelope without header or event")
        return Envelope(
            event_id=req_str(header, "event_id"),
            event_type=req_str(header, "event_type"),
            token=opt_str(header.get("token")),
            event=event,
            app_id=_app_id(header),
        )
    if isinstance(payload.get("uuid"), str) and isinstance(payload.get("event"), Mapping):
        # Schema 1.0 (legacy): unique id is ``uuid``, the type lives in ``event.type``.
        event = payload["event"]
        return Envelope(
            event_id=payload["uuid"],
            event_type=f"v1:{event.get('type', '')}",
            token=opt_str(payload.get("token")),
            event=event,
            app_id=_app_id(event),
        )
    raise EventError("unknown envelope")


def _app_id(parent: Mapping[str, Any]) -> str | None:
    """``parent["app_id"]``: None when absent or "" (Feishu's "none"); any other non-string
    is an EventError, so an app id we cannot compare is never taken for "not said"."""
    value = parent.get("app_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventError("app_id is not a string")
    return value


def message_id_of(envelope: Envelope) -> str | None:
    """The message id of a received message, without validating the rest (used for dedup).

    Only ``im.message.receive_v1`` has one, so an unrelated event that happens to mention a
    message is never mistaken for a redelivery of it.
    """
    if envelope.event_type != MESSAGE_RECEIVE:
        return None
    message = envelope.event.get("message")
    return opt_str(message.get("message_id")) if isinstance(message, Mapping) else None


def req_mapping(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``parent[key]`` when it is a JSON object; EventError otherwise."""
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise EventError(f"missing object {key!r}")
    return value


def req_str(parent: Mapping[str, Any], key: str) -> str:
    """``parent[key]`` when it is a non-empty string; EventError otherwise."""
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise EventError(f"missing string {key!r}")
    return value


def opt_str(value: Any) -> str | None:
    """``value`` when it is a non-empty string, else None (Feishu sends "" for "none")."""
    return value if isinstance(value, str) and value else None
