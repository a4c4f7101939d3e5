"""``LARK_CARDS["state_url"]``: which store it names, and how to log it without its password."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["ACCEPTED", "StateURL", "parse_state_url"]

ACCEPTED = (
    "None (a SQLite file in BOT_DATA_DIR), 'memory://', 'redis://host:port/db' "
    "or 'rediss://host:port/db'"
)


@dataclass(frozen=True, slots=True)
class StateURL:
    """A checked ``state_url``; ``label`` is safe to log (no user name, no password)."""

    kind: Literal["sqlite", "memory", "redis"]
    url: str | None = field(repr=False)
    label: str


def parse_state_url(value: object) -> StateURL:
    """Check ``value``; a ValueError's message is one line naming the key and the forms."""
    if value is None:
        return StateURL("sqlite", None, "sqlite (BOT_DATA_DIR)")
    if value == "memory://":
        return StateURL("memory", value, "memory://")
    if isinstance(value, str):
        if value.partition(":")[0].lower() in ("redis", "rediss"):
            return StateURL("redis", value, _redis_label(value))
        shown = _redacted(value)
    else:
        shown = type(value).__name__
    raise ValueError(f"LARK_CARDS['state_url'] must be {ACCEPTED}, not {shown}")


def _redis_label(value: str) -> str:
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port or 6379
    except ValueError:  # a port that is not a number, an unclosed "[" …
        host, port, problem = None, 0, "its host or port cannot be read"
    else:
        db = parts.path.strip("/") or "0"
        problem = "it names no host" if not host else ""
        if not problem and not db.isdigit():
            problem = f"its database {db!r} is not a number"
    if problem:
        raise ValueError(
            f"LARK_CARDS['state_url'] {_redacted(value)} is not a usable Redis URL: {problem} "
            "(expected 'redis://host:port/db' or 'rediss://host:port/db')"
        )
    shown = f"[{host}]" if ":" in str(host) else host
    return f"{parts.scheme}://{shown}:{port}/{int(db)}"


def _redacted(value: str) -> str:
    """``value`` quoted, with anything that may be a password replaced by ``***``."""
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return repr(value)
    except ValueError:
        return repr(value.partition("://")[0] + "://***")
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return repr(parts._replace(netloc=f"{name}:***@{host}").geturl())
