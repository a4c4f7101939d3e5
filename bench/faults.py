"""Delivery under Feishu's faults: every answer once, in order per chat, and how late.

The scenario of tests/test_faults.py as numbers. 200 commands over 5 chats (3 groups, a p2p
chat, private answers to group questions), each answered 1-3 times from 8 plugin threads at
once, through the ``Outbox`` to a fake Open Platform that fails 30 % of message attempts
(``tests/api_fakes.py``, ``FaultyPlatform``: HTTP 500, 429/99991400 with a 1 s reset, 230020,
an expiring token, timeouts, resets, and answers lost after the message was created). Then a
second bot instance answers the same commands again, as after a crash; then the same commands
go to a platform that never fails, for comparison.

Time is simulated (``SimClock``): the client's backoffs and pacing, the platform's resets,
token lifetimes, 50 ms network latency and 10 s timeouts all run on one virtual clock, so
latencies are in simulated seconds, from the moment a command is taken up (all of them at
once: a burst) to its answer's message. The floor is what the per-chat limit alone allows for
the same burst: 5 answers a second in each chat, the k-th no sooner than k // 5 s.

Usage: python bench/faults.py [--commands N] [--seed N] [--rate R] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the fake platform

from fault_fakes import (
    CHAT_QPS,
    CONVERSATIONS,
    FAULTS,
    Command,
    FaultyPlatform,
    Handed,
    Instance,
    Outcome,
    SimClock,
    latencies,
    make_commands,
    outcome,
    shown,
)


@contextmanager
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop running in its own thread, as the backend's is."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lark-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def floor_latencies(handed: Handed) -> list[float]:
    """The per-chat limit alone: the k-th answer of a chat no sooner than k // 5 s."""
    return sorted(k // CHAT_QPS for order in handed.order.values() for k in range(len(order)))


def row(name: str, values: list[float]) -> str:
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return f"  {name:24}{p50:>8.1f}{p99:>8.1f}{max(values):>8.1f}"


@dataclasses.dataclass
class Run:
    """One faulted run and the restart after it."""

    handed: Handed
    result: Outcome
    latencies: list[float]
    injected: Counter[str]  # this and the next four: before the restart
    knock_on: Counter[str]
    attempts: int
    replayed: int
    tokens: int
    created_again: int = 0
    first_back: int = 0


def faulted_run(
    loop: asyncio.AbstractEventLoop,
    clock: SimClock,
    commands: list[Command],
    seed: int,
    rate: float,
) -> Run:
    platform = FaultyPlatform(clock, seed=seed, rate=rate)
    handed = Instance(platform, loop).answer(commands)
    result = outcome(platform, handed.order, list(handed.sends.values()))
    run = Run(
        handed, result, latencies(platform, handed), platform.injected.copy(),
        platform.knock_on.copy(), platform.attempts, platform.replayed, platform.tokens_issued,
    )  # fmt: skip
    before = platform.count()
    again = Instance(platform, loop).answer(commands)  # another process, the same questions
    run.created_again = platform.count() - before
    ids = {shown(m): m.message_id for ms in platform.created.values() for m in ms}
    run.first_back = sum(
        not future.exception() and [d["message_id"] for d in future.result()] == [ids[reply]]
        for reply, future in again.sends.items()
    )
    return run


def main(count: int, seed: int, rate: float, runs: int) -> None:
    logging.getLogger("lark_cards").setLevel(logging.CRITICAL)  # a warning per retry
    commands = make_commands(count, seed)
    with loop_thread() as loop:
        clock = SimClock()
        clock.install(loop)
        started = time.perf_counter()
        done = [faulted_run(loop, clock, commands, seed, rate) for _ in range(runs)]
        calm = FaultyPlatform(clock, seed=seed, rate=0.0)
        baseline = latencies(calm, Instance(calm, loop).answer(commands))
        elapsed, simulated = time.perf_counter() - started, clock.now
        clock.uninstall()

    answers = done[0].result.replies
    kinds = {"group": "group", "direct": "p2p chat", "private": "private answers"}
    print(
        f"messages: {count} commands, {answers} answers over {len(CONVERSATIONS)} chats "
        f"({', '.join(f'{c.key} {kinds[c.kind]}' for c in CONVERSATIONS)}); 8 plugin threads; "
        f"{runs} runs of seed {seed} (the threads interleave differently each run)"
    )
    injected = sum((run.injected for run in done), Counter())
    knock_on = sum((run.knock_on for run in done), Counter())
    attempts = sum(run.attempts for run in done)
    print(
        f"fault mix: {rate:.0%} of attempts drawn to fail: {injected.total()} of {attempts} "
        f"message attempts ({injected.total() / attempts:.0%}), by kind:"
    )
    for kind, label in FAULTS.items():
        print(f"  {injected[kind]:>5}  {kind:14}{label}")
    refusals = ", ".join(f"{name} {n}" for name, n in sorted(knock_on.items()))
    print(f"  knock-on refusals: {refusals or 'none'}")
    print(
        f"  tokens issued: {sum(run.tokens for run in done)}; sends answered with the message "
        f"their uuid had created: {sum(run.replayed for run in done)}"
    )
    results = [run.result for run in done]
    print(
        f"delivered once: {sum(r.once for r in results)}/{sum(r.replies for r in results)}  "
        f"lost: {sum(len(r.lost) for r in results)}  "
        f"doubled: {sum(len(r.doubled) for r in results)}  "
        f"chats out of order: {sum(len(r.disordered) for r in results)}/{runs * 5}  "
        f"given up: {sum(len(r.given_up) for r in results)}  "
        f"unfinished: {sum(r.unfinished for r in results)}"
    )
    print(
        f"restart: a second instance answering the same {count} commands again created "
        f"{sum(run.created_again for run in done)} new messages; "
        f"{sum(run.first_back for run in done)}/{runs * answers} sends got their first "
        "message back"
    )
    print(f"latency command → delivery, simulated s (a burst of {answers} answers at once):")
    print(f"  {'':24}{'p50':>8}{'p99':>8}{'max':>8}")
    for number, run in enumerate(done, start=1):
        print(row(f"{rate:.0%} faults, run {number}", run.latencies))
    print(row("without faults", baseline))
    print(row("per-chat 5 QPS floor", floor_latencies(done[0].handed)))
    order = done[0].handed.order
    busiest = max(order, key=lambda chat: len(order[chat]))
    print(
        f"per-chat 5 QPS floor: {len(order[busiest])} replies in one chat ({busiest}) at 5/s = "
        f"{len(order[busiest]) / CHAT_QPS:.1f} s"
    )
    ratios = [
        statistics.median(percentile(run.latencies, q) for run in done) / percentile(baseline, q)
        for q in (50, 99)
    ]
    print(
        f"ratio with faults / without (median of runs): p50 {ratios[0]:.2f}x, p99 {ratios[1]:.2f}x"
    )
    print(f"real time: {elapsed:.2f} s for {simulated:.0f} simulated s (all runs)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    main(args.commands, args.seed, args.rate, args.runs)
