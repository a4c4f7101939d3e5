"""Render time: lark-cards' markdown → card JSON vs Errbot's own imtext converter, in one run.

Both get the same documents: Errbot's ``!render test`` document (errbot/core_plugins/test.md),
a 200-row pipe table (4 columns, some bold cells) and a ~50 KB log in one fenced code block.
lark-cards is timed on ``render_markdown(text)``: parse, pieces, packing into cards within the
budgets, templates — everything up to the card JSON objects ``send_message`` sends. Errbot is
timed on ``imtext().convert(text)`` with the converter built once and reused without
``reset()``, as Errbot's backends do (irc, telegram, text, xmpp keep one converter and only
call ``convert``). Each side is warmed up, then each run times enough calls to last about
``--min-run`` seconds; the runs of the two sides alternate, so both see the same machine load,
and the figure is the median per-call time over ``--runs`` runs.

Usage: python bench/render.py [--runs N] [--min-run SECONDS]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import errbot
from errbot.rendering import imtext

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lark_cards.render import render_markdown

WARMUP_CALLS = 5


def render_test_document() -> str:
    return (Path(errbot.__file__).parent / "core_plugins" / "test.md").read_text(encoding="utf-8")


def table_document(rows: int = 200) -> str:
    lines = ["Host | Status | Latency ms | Note", "---- | ------ | ---------: | ----"]
    for i in range(rows):
        status = "**DOWN**" if i % 7 == 0 else "up"
        note = f"restarted by `deploy-{i % 13}`" if i % 5 == 0 else "ok"
        lines.append(f"web-{i:03d}.prod.example.com | {status} | {(i * 37) % 900 + 3} | {note}")
    return "Fleet status:\n\n" + "\n".join(lines) + "\n"


def log_document(target_bytes: int = 50 * 1024) -> str:
    levels = ("INFO", "DEBUG", "WARNING", "ERROR")
    lines, size, i = [], 0, 0
    while size < target_bytes:
        line = (
            f"2024-05-01 12:{i // 60 % 60:02d}:{i % 60:02d},{i * 7 % 1000:03d} "
            f"{levels[i % 4]:<8} errbot.plugins.deploy  job={i} <worker-{i % 8}> "
            f"took {i * 13 % 997} ms & retried {i % 3}x: __init__ *ok* [done]"
        )
        lines.append(line)
        size += len(line) + 1
        i += 1
    return "Last deploy log:\n\n```\n" + "\n".join(lines) + "\n```\n"


def calls_per_run(func: Callable[[str], object], text: str, min_run: float) -> int:
    """After a warm-up, how many calls one run needs to last at least ``min_run`` seconds."""
    for _ in range(WARMUP_CALLS):
        func(text)
    number = 1
    while True:
        elapsed = timed(func, text, number)
        if elapsed >= min_run:
            return number
        number = max(number * 2, int(number * min_run / max(elapsed, 1e-9)) + 1)


def timed(func: Callable[[str], object], text: str, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        func(text)
    return time.perf_counter() - start


def compare(
    first: Callable[[str], object],
    second: Callable[[str], object],
    text: str,
    runs: int,
    min_run: float,
) -> tuple[float, float]:
    """Median seconds per call of each, runs interleaved so both see the same machine load."""
    numbers = calls_per_run(first, text, min_run), calls_per_run(second, text, min_run)
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for func, number, samples in zip((first, second), numbers, timings, strict=True):
            samples.append(timed(func, text, number) / number)
    return statistics.median(timings[0]), statistics.median(timings[1])


def main(runs: int, min_run: float) -> None:
    converter = imtext()  # built once and reused, as Errbot's backends do
    documents = {
        "!render test (test.md)": render_test_document(),
        "200-row pipe table": table_document(),
        "~50 KB log in a fence": log_document(),
    }
    print(
        f"median of {runs} interleaved runs, each >= {min_run:.2f} s of calls, "
        f"after {WARMUP_CALLS} warm-up calls"
    )
    header = f"{'document':26}{'KB':>7}{'cards':>7}{'lark ms':>10}{'imtext ms':>11}{'ratio':>8}"
    print(header)
    for name, text in documents.items():
        cards = len(render_markdown(text))
        lark, errbot_im = compare(render_markdown, converter.convert, text, runs, min_run)
        ratio = lark / errbot_im
        verdict = "faster" if ratio < 1 else "slower"
        print(
            f"{name:26}{len(text.encode()) / 1024:>7.1f}{cards:>7}{lark * 1e3:>10.3f}"
            f"{errbot_im * 1e3:>11.3f}{ratio:>7.2f}x  lark-cards {verdict}"
        )
    print("ratio = lark-cards / imtext (below 1: lark-cards is faster)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--min-run", type=float, default=0.2)
    args = parser.parse_args()
    main(args.runs, args.min_run)
