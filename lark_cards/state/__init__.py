"""State that survives restarts and can be shared by several bot processes.

One config key picks the store, ``LARK_CARDS["state_url"]`` (checked by
:func:`~lark_cards.state.url.parse_state_url` when the settings load):

* ``None`` (default): :class:`SQLiteStore` in ``BOT_DATA_DIR/lark-cards-state.sqlite3``;
* ``"memory://"``: :class:`MemoryStore`, this process only;
* ``"redis://host:port/db"`` / ``"rediss://…"``: Redis through redis-py (``pip install redis``),
  wrapped in :class:`ResilientStore` so an outage degrades to memory with a WARNING.
"""

from __future__ import annotations

import logging
import sqlite3
from os import PathLike
from pathlib import Path

from lark_cards.state.base import StateStore, StateUnavailable
from lark_cards.state.memory import MemoryStore
from lark_cards.state.resilient import ResilientStore
from lark_cards.state.sqlite import STATE_FILE, SQLiteStore
from lark_cards.state.url import StateURL, parse_state_url

__all__ = [
    "STATE_FILE",
    "MemoryStore",
    "ResilientStore",
    "SQLiteStore",
    "StateStore",
    "StateURL",
    "StateUnavailable",
    "open_state",
    "parse_state_url",
]

log = logging.getLogger(__name__)


async def open_state(
    url: str | None,
    data_dir: str | PathLike[str],
    *,
    prefix: str = "lark-cards:",
    max_entries: int = 100_000,
) -> StateStore:
    """Open the store ``url`` names (see the module doc); ``data_dir`` is ``BOT_DATA_DIR``.

    ``prefix`` namespaces Redis keys (give two bots that share one Redis different ones);
    ``max_entries`` bounds each table of the SQLite and memory stores and the Redis inbox.
    Raises :class:`~lark_cards.settings.ConfigError` (one line) for a bad URL, an unusable
    SQLite file or a Redis URL without the redis package.
    """
    from lark_cards.settings import ConfigError  # settings imports this package

    try:
        target = parse_state_url(url)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if target.kind == "memory":
        return MemoryStore(max_entries=max_entries)
    if target.kind == "sqlite":
        path = Path(data_dir) / STATE_FILE
        try:
            store: StateStore = await SQLiteStore.open(path, max_entries=max_entries)
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(f"cannot open the state file {path}: {error}") from None
        log.info("state store: %s", path)
        return store
    try:
        from lark_cards.state.redis import RedisStore
    except ImportError as error:
        raise ConfigError(
            f"LARK_CARDS['state_url'] is a Redis URL ({target.label}) but the redis package "
            f"cannot be imported ({error}): pip install redis (or pip install 'lark-cards[redis]')"
        ) from None
    assert target.url is not None
    primary = RedisStore.from_url(
        target.url, label=target.label, prefix=prefix, max_entries=max_entries
    )
    resilient = ResilientStore(primary, fallback=MemoryStore(max_entries=max_entries))
    await resilient.start()
    if not resilient.degraded:
        log.info("state store: %s", target.label)
    return resilient
