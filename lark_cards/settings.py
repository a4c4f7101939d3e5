"""Errbot config (``BOT_IDENTITY`` + optional ``LARK_CARDS``) → one validated, frozen ``Settings``.

Validation happens once, at start-up, so a typo stops the bot with one line that names the key
instead of surfacing later as a 401 from Feishu or a traceback deep inside aiohttp.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lark_cards.state.url import parse_state_url

log = logging.getLogger(__name__)

DOMAINS = {
    "feishu": "https://open.feishu.cn",
    "lark": "https://open.larksuite.com",
}
# "webhook": Feishu POSTs events to host:port/path (needs a public URL); "websocket": the bot
# dials Feishu's long connection (docs/feishu-platform.md §2; Feishu China, self-built apps).
MODES = ("webhook", "websocket")

# Feishu retries an unacknowledged event after 15 s, 5 min, 1 h and 6 h (about 7.1 h in all,
# docs/feishu-platform.md §1.8); remembering ids for 8 h covers the last retry.
DEFAULT_DEDUP_TTL = 8 * 3600.0


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the key."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the backend reads from config.py, already checked."""

    app_id: str
    app_secret: str = field(repr=False)
    verification_token: str | None = field(default=None, repr=False)
    encrypt_key: str | None = field(default=None, repr=False)
    base_url: str = DOMAINS["feishu"]
    mode: str = "webhook"
    host: str = "0.0.0.0"
    port: int = 8080
    path: str = "/lark/events"
    # LARK_CARDS options (transport and delivery).
    max_body_bytes: int = 1 << 20
    # Feishu does not document whether a retry is signed anew, so a signed timestamp may be as
    # old as the whole retry ladder: a retry must never be refused for its age. Replays inside
    # the window are stopped by the durable claim on the event (kept at least as long).
    replay_window: float | None = DEFAULT_DEDUP_TTL
    dedup_ttl: float = DEFAULT_DEDUP_TTL
    dedup_max_entries: int = 100_000
    chat_qps: float = 5.0
    # Feishu allows 50 sends/s per app (§4.4); 45 leaves room for its clock and ours to
    # disagree about where a second starts.
    app_qps: float = 45.0
    request_timeout: float = 10.0
    send_deadline: float = 600.0
    shutdown_timeout: float = 10.0
    # LARK_CARDS options (rendering).
    render_mode: str = "card"
    templates_dir: str | None = None
    max_card_bytes: int = 30 * 1024
    max_components: int = 200
    max_tables: int = 5
    table_page_size: int = 10
    upload_images: bool = True
    heading_as_header: bool = True  # a reply's leading heading becomes its card's header
    # LARK_CARDS options (state): None = SQLite in BOT_DATA_DIR; may carry a Redis password.
    state_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: Any) -> Settings:
        """Build settings from an Errbot config module (or any object with the attributes)."""
        identity = getattr(config, "BOT_IDENTITY", None)
        if not isinstance(identity, Mapping):
            raise ConfigError("BOT_IDENTITY must be a dict with at least app_id and app_secret")
        options = getattr(config, "LARK_CARDS", None)
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            raise ConfigError("LARK_CARDS must be a dict when it is set")
        options = dict(options)
        state_url = options.pop("state_url", None)
        return cls(**_identity(identity), **_options(options), state_url=_state_url(state_url))


_IDENTITY_KEYS = {
    "app_id",
    "app_secret",
    "verification_token",
    "encrypt_key",
    "domain",
    "mode",
    "host",
    "port",
    "path",
}
_OPTION_KEYS = {
    "max_body_bytes": int,
    "replay_window": float,
    "dedup_ttl": float,
    "dedup_max_entries": int,
    "chat_qps": float,
    "app_qps": float,
    "request_timeout": float,
    "send_deadline": float,
    "shutdown_timeout": float,
    "max_card_bytes": int,
    "max_components": int,
    "max_tables": int,
    "table_page_size": int,
}
RENDER_MODES = ("card", "auto")


def _identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(identity) - _IDENTITY_KEYS)
    if unknown:
        raise ConfigError(f"BOT_IDENTITY has an unknown key {unknown[0]!r}")
    values: dict[str, Any] = {
        "app_id": _text(identity, "app_id", required=True),
        "app_secret": _text(identity, "app_secret", required=True),
        "verification_token": _text(identity, "verification_token"),
        "encrypt_key": _text(identity, "encrypt_key"),
        "base_url": base_url(identity.get("domain", "feishu")),
        "mode": identity.get("mode", "webhook"),
        "host": _text(identity, "host") or "0.0.0.0",
        "port": identity.get("port", 8080),
        "path": identity.get("path", "/lark/events"),
    }
    if values["mode"] not in MODES:
        raise ConfigError(f"BOT_IDENTITY['mode'] must be one of {', '.join(MODES)}")
    port = values["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError("BOT_IDENTITY['port'] must be an integer from 0 to 65535")
    path = values["path"]
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError("BOT_IDENTITY['path'] must be a string starting with '/'")
    return values


def _without_retired(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """Keys an earlier version took, dropped with a warning: an upgrade must not stop the bot."""
    if "max_retries" not in options:
        return options
    log.warning(
        "LARK_CARDS['max_retries'] is no longer used: sends are retried until "
        "LARK_CARDS['send_deadline'] (default 600 s) has passed"
    )
    return {key: value for key, value in options.items() if key != "max_retries"}


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in _without_retired(options).items():
        if key == "replay_window" and value in (None, 0):
            values[key] = None
        elif key in _OPTION_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"LARK_CARDS['{key}'] must be a positive number")
            values[key] = _OPTION_KEYS[key](value)
        elif key == "render_mode":
            if value not in RENDER_MODES:
                raise ConfigError(f"LARK_CARDS['render_mode'] must be one of {RENDER_MODES}")
            values[key] = value
        elif key == "templates_dir":
            if value is not None and not Path(str(value)).is_dir():
                raise ConfigError(f"LARK_CARDS['templates_dir'] is not a directory: {value!r}")
            values[key] = None if value is None else str(value)
        elif key in ("upload_images", "heading_as_header"):
            if not isinstance(value, bool):
                raise ConfigError(f"LARK_CARDS['{key}'] must be True or False")
            values[key] = value
        else:
            raise ConfigError(f"LARK_CARDS has an unknown key {key!r}")
    if not 1 <= values.get("table_page_size", 10) <= 10:
        raise ConfigError("LARK_CARDS['table_page_size'] must be from 1 to 10 (Feishu's limit)")
    return values


def _state_url(value: Any) -> str | None:
    try:
        return parse_state_url(value).url
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _text(identity: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = identity.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"BOT_IDENTITY['{key}'] is required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"BOT_IDENTITY['{key}'] must be a string")
    return value


def base_url(domain: Any) -> str:
    """Resolve ``domain`` ("feishu", "lark" or a base URL) to the Open API base URL."""
    if not isinstance(domain, str) or not domain:
        raise ConfigError("BOT_IDENTITY['domain'] must be 'feishu', 'lark' or a base URL")
    if domain.lower() in DOMAINS:
        return DOMAINS[domain.lower()]
    parts = urlsplit(domain)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(
            f"BOT_IDENTITY['domain'] must be 'feishu', 'lark' or an http(s) base URL, "
            f"not {domain!r}"
        )
    return domain.rstrip("/")
