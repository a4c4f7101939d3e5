"""Two OS processes race on one store (one SQLite file, or one real Redis): every claim and
every inbox entry must be won by exactly one of them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lark_cards.state import open_state

ROOT = Path(__file__).resolve().parent.parent

# argv: state_url ("-" for SQLite), data_dir, role, N, mode. Prints "ready", waits for a line
# on stdin (so both start together), then prints what it won as one JSON list.
WORKER = r"""
import asyncio, json, random, sys
from lark_cards.state import open_state

async def main(url, data_dir, role, n, mode):
    store = await open_state(None if url == "-" else url, data_dir)
    print("ready", flush=True)
    sys.stdin.readline()
    won = []
    if mode == "claim":
        order = list(range(n))
        random.Random(role).shuffle(order)  # each its own order: contests all along the way
        for i in order:
            if await store.claim([f"event:{role}-{i}", f"message:{i}"], 3600):
                won.append(i)
    else:
        while batch := await store.inbox_claim(role, 3600, 7):
            for event_id, _ in batch:
                won.append(event_id)
                await store.inbox_done(event_id)
    await store.close()
    print(json.dumps(won), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
"""


def race(url: str | None, data_dir: Path, n: int, mode: str) -> tuple[list, list]:
    """Start both workers, release them at once, return what each won."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url or "-", str(data_dir), role, str(n), mode],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for role in ("a", "b")
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [worker.communicate(timeout=90)[0] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    a, b = (json.loads(out.strip().splitlines()[-1]) for out in results)
    return a, b


@pytest.fixture(params=["sqlite", "redis"])
def shared_url(request):
    if request.param == "sqlite":
        return None
    pytest.importorskip("redis", minversion="5", reason="redis package not installed")
    return request.getfixturevalue("redis_server").url


def test_two_processes_never_win_the_same_claim(shared_url, tmp_path):
    n = 2000
    a, b = race(shared_url, tmp_path, n, "claim")
    assert not set(a) & set(b)
    assert sorted(a + b) == list(range(n))
    assert a, "the race never overlapped; it proves nothing"
    assert b, "the race never overlapped; it proves nothing"


def test_two_processes_never_take_the_same_inbox_entry(shared_url, tmp_path):
    n = 300

    async def fill() -> None:
        store = await open_state(shared_url, tmp_path)
        for i in range(n):
            await store.inbox_add(f"ev{i:04}", f"payload {i}")
        await store.close()

    asyncio.run(fill())
    a, b = race(shared_url, tmp_path, n, "inbox")
    assert not set(a) & set(b)
    assert sorted(a + b) == [f"ev{i:04}" for i in range(n)]
