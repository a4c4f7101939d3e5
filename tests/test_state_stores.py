"""What only one store has to show: SQLite's file survives a restart, stays off the event loop
and stays bounded; memory stays bounded; Redis keys carry their TTL; ``open_state`` picks the
store the URL names and says clearly what is wrong."""

from __future__ import annotations

import sqlite3
import sys
import threading

import pytest

from lark_cards.settings import ConfigError
from lark_cards.state import (
    STATE_FILE,
    MemoryStore,
    ResilientStore,
    SQLiteStore,
    open_state,
)
from lark_cards.state.sqlite import PRUNE_EVERY


async def test_sqlite_state_survives_a_restart(tmp_path):
    first = await open_state(None, tmp_path)
    assert await first.claim(["event:1", "message:1"], 3600)
    await first.put("answer:tok", "given", 3600)
    assert await first.lease("leader", "old-process", 3600)
    assert await first.inbox_add("ev1", "not yet handed over")
    await first.close()

    second = await open_state(None, tmp_path)
    try:
        assert not await second.claim(["message:1"], 3600)
        assert await second.get("answer:tok") == "given"
        assert not await second.lease("leader", "new-process", 3600)
        assert await second.inbox_claim("new-process", 60, 10) == [("ev1", "not yet handed over")]
    finally:
        await second.close()


async def test_sqlite_is_one_wal_file_in_the_data_dir(tmp_path):
    store = await open_state(None, tmp_path / "data")
    await store.close()
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "data" / STATE_FILE
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_never_blocks_the_event_loop_thread(tmp_path):
    threads: set[str] = set()

    def clock() -> float:
        threads.add(threading.current_thread().name)
        return 1_000_000.0

    store = await SQLiteStore.open(tmp_path / "s.sqlite3", clock=clock)
    await store.claim(["k"], 60)
    await store.put("k", "v", 60)
    await store.get("k")
    await store.lease("l", "o", 60)
    await store.inbox_add("e", "p")
    await store.inbox_claim("o", 60, 1)
    await store.close()
    assert threads
    assert all(name.startswith("lark-state-sqlite") for name in threads), threads


async def test_sqlite_replaces_expired_rows_and_prunes_to_its_bound(tmp_path):
    now = [1_000_000.0]
    store = await SQLiteStore.open(tmp_path / "s.sqlite3", max_entries=10, clock=lambda: now[0])
    try:
        for i in range(PRUNE_EVERY + 20):
            assert await store.claim([f"message:{i}"], 60 + i)
        sizes = await store.sizes()
        assert 10 <= sizes["claims"] <= 10 + PRUNE_EVERY
        # The newest survive (the bound drops those that expire soonest first).
        assert not await store.claim([f"message:{PRUNE_EVERY + 19}"], 60)
        now[0] += 10_000  # everything has expired
        assert await store.claim(["message:0"], 60)  # an expired row counts as absent
    finally:
        await store.close()
    reopened = await SQLiteStore.open(tmp_path / "s.sqlite3", max_entries=10, clock=lambda: now[0])
    assert (await reopened.sizes())["claims"] == 1  # pruned at open
    await reopened.close()


async def test_sqlite_inbox_bound_drops_the_oldest_with_a_warning(tmp_path, caplog):
    store = await SQLiteStore.open(tmp_path / "s.sqlite3", max_entries=3)
    for i in range(5):
        await store.inbox_add(f"ev{i}", "p")
    await store.close()
    reopened = await SQLiteStore.open(tmp_path / "s.sqlite3", max_entries=3)
    try:
        assert [e for e, _ in await reopened.inbox_claim("o", 60, 10)] == ["ev2", "ev3", "ev4"]
    finally:
        await reopened.close()
    assert "dropped the 2 oldest" in caplog.text


async def test_memory_store_is_a_bounded_lru():
    now = [0.0]
    store = MemoryStore(max_entries=5, clock=lambda: now[0])
    for i in range(50):
        assert await store.claim([f"message:{i}"], 60)
        await store.put(f"answer:{i}", "v", 60)
        await store.inbox_add(f"ev{i}", "p")
    assert await store.sizes() == {"claims": 5, "values": 5, "inbox": 5}
    assert not await store.claim(["message:49"], 60)
    assert await store.claim(["message:0"], 60)  # evicted, so new again
    now[0] = 61
    assert await store.claim(["message:49"], 60)


async def test_open_state_memory_and_bad_urls(tmp_path):
    store = await open_state("memory://", tmp_path)
    assert isinstance(store, MemoryStore)
    await store.close()
    with pytest.raises(ConfigError, match="state_url") as info:
        await open_state("postgres://u:hunter2@db/x", tmp_path)
    assert "hunter2" not in str(info.value)


async def test_an_unusable_sqlite_file_is_one_line(tmp_path):
    (tmp_path / STATE_FILE).mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match="cannot open the state file") as info:
        await open_state(None, tmp_path)
    assert "\n" not in str(info.value)


async def test_a_redis_url_without_the_redis_package_says_pip_install_redis(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "lark_cards.state.redis", raising=False)
    with pytest.raises(ConfigError, match="pip install redis") as info:
        await open_state("redis://:hunter2@127.0.0.1:6379/0", tmp_path)
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


async def test_redis_claims_and_values_carry_their_ttl(redis_server, tmp_path):
    redis = pytest.importorskip("redis.asyncio", reason="redis package not installed")
    store = await open_state(redis_server.url, tmp_path, prefix="bot-a:")
    other = await open_state(redis_server.url, tmp_path, prefix="bot-b:")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert isinstance(store, ResilientStore)
        assert not store.degraded
        assert await store.claim(["event:1", "message:1"], 8 * 3600)
        assert await store.claim(["event:2"], 60)
        await store.put("answer:tok", "given", 60)
        for key, ttl in [
            ("bot-a:claim:event:1", 8 * 3600),
            ("bot-a:claim:message:1", 8 * 3600),
            ("bot-a:claim:event:2", 60),
            ("bot-a:kv:answer:tok", 60),
        ]:
            assert 0 < await client.pttl(key) <= ttl * 1000
        assert await other.claim(["event:1"], 60)  # another prefix, another namespace
    finally:
        await client.aclose()
        await store.close()
        await other.close()


async def test_redis_inbox_keeps_at_most_max_entries(redis_server, tmp_path, caplog):
    pytest.importorskip("redis", minversion="5", reason="redis package not installed")
    store = await open_state(redis_server.url, tmp_path, max_entries=3)
    try:
        for i in range(5):
            assert await store.inbox_add(f"ev{i}", f"p{i}")
        assert await store.inbox_claim("o", 60, 10) == [("ev2", "p2"), ("ev3", "p3"), ("ev4", "p4")]
        assert "dropped the 1 oldest" in caplog.text
    finally:
        await store.close()
