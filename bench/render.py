"""Render time: lark-cards' markdown → card JSON vs Errbot's own imtext converter, in one run.

All get the same documents: Errbot's ``!render test`` document (errbot/core_plugins/test.md),
Errbot's ``!help`` (tests/fixtures/errbot/help.md), a 200-row pipe table (4 columns, some bold
cells), a ~50 KB log in one fenced code block and 100 CJK paragraphs. A third column is
markdown-it-py's bare ``parse`` (CommonMark + table + strikethrough): the floor. A fourth is
lark-cards' own parse to its syntax tree (``lark_cards.render.parse``: the same parser with
attribute lists, footnotes and raw HTML, and the fast core rules of render/fastpaths.py, which
make the same tokens), so the print shows what is parsing and what comes after it.
lark-cards is timed on ``render_markdown(text)``: parse, pieces, packing into cards within the
budgets, templates — everything up to the card JSON objects ``send_message`` sends. Errbot is
timed on ``imtext().convert(text)`` with the converter built once and reused without
``reset()``, as Errbot's backends do (irc, telegram, text, xmpp keep one converter and only
call ``convert``). Each side is warmed up, then each run times enough calls to last about
``--min-run`` seconds; the runs of the two sides alternate, so both see the same machine load,
and the figure is the median per-call time over ``--runs`` runs.

``--memory`` prints instead the peak of Python allocations (tracemalloc) while rendering a
1 MB reply of tables and prose and a 1 MB log, and what stays allocated after 10,000 renders of
``!help`` (issue 11: below 20 MB, and no growth).

Usage: python bench/render.py [--runs N] [--min-run SECONDS] [--memory]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import errbot
from errbot.rendering import imtext

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from markdown_it import MarkdownIt

from lark_cards.render import parse as lark_parse
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
    funcs: tuple[Callable[[str], object], ...], text: str, runs: int, min_run: float
) -> list[float]:
    """Median seconds per call of each, runs interleaved so all see the same machine load."""
    numbers = [calls_per_run(func, text, min_run) for func in funcs]
    timings: list[list[float]] = [[] for _ in funcs]
    for _ in range(runs):
        for func, number, samples in zip(funcs, numbers, timings, strict=True):
            samples.append(timed(func, text, number) / number)
    return [statistics.median(samples) for samples in timings]


def cjk_document(paragraphs: int = 100) -> str:
    line = (
        "第{}段：部署完成，服务**正常**运行。这是一个较长的中文段落，用于测试渲染速度和卡片拆分。"
    )
    return "\n\n".join(line.format(n) * 3 for n in range(paragraphs)) + "\n"


def main(runs: int, min_run: float) -> None:
    converter = imtext()  # built once and reused, as Errbot's backends do
    # markdown-it-py's own parse, no rendering: the floor issue 11 measures us against.
    bare = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    root = Path(__file__).resolve().parent.parent
    documents = {
        "!render test (test.md)": render_test_document(),
        "!help (fixtures/errbot)": (root / "tests/fixtures/errbot/help.md").read_text("utf-8"),
        "200-row pipe table": table_document(),
        "~50 KB log in a fence": log_document(),
        "100 CJK paragraphs": cjk_document(),
    }
    print(
        f"median of {runs} interleaved runs, each >= {min_run:.2f} s of calls, "
        f"after {WARMUP_CALLS} warm-up calls"
    )
    print(
        f"{'document':25}{'KB':>6}{'cards':>6}{'lark ms':>9}{'imtext':>8}{'parse':>8}"
        f"{'÷imtext':>9}{'÷parse':>8}{'own parse':>11}"
    )
    for name, text in documents.items():
        cards = len(render_markdown(text))
        lark, errbot_im, parse, own = compare(
            (render_markdown, converter.convert, bare.parse, lark_parse), text, runs, min_run
        )
        print(
            f"{name:25}{len(text.encode()) / 1024:>6.1f}{cards:>6}{lark * 1e3:>9.3f}"
            f"{errbot_im * 1e3:>8.3f}{parse * 1e3:>8.3f}{lark / errbot_im:>8.2f}x"
            f"{lark / parse:>7.2f}x{own / parse:>10.2f}x"
        )
    print(
        "÷imtext: lark-cards / errbot's imtext() (below 1: faster); ÷parse: lark-cards / "
        "markdown-it-py's bare parse (issue 11's goal: at most 1.25x); own parse: "
        "lark-cards' parse to its tree / the bare parse (the rest of ÷parse is after it)"
    )


def report_document(target_bytes: int = 1024 * 1024) -> str:
    """A long report: per region a heading, a line of prose and a 40-row table."""
    blocks, size, n = [], 0, 0
    while size < target_bytes:
        rows = "\n".join(f"| web-{n}-{i} | **up** | {i * 7} ms |" for i in range(40))
        block = f"## Region {n}\n\nAll hosts answered in time.\n\n| host | state | p99 |\n"
        blocks.append(block + "|---|---|--:|\n" + rows)
        size += len(blocks[-1]) + 2
        n += 1
    return "\n\n".join(blocks)


def memory(renders: int) -> None:
    """Peaks of one render of each 1 MB reply, and what stays after ``renders`` renders."""
    for name, text in (
        ("1 MB tables and prose", report_document()),
        ("1 MB log", log_document(2**20)),
    ):
        tracemalloc.start()
        cards = render_markdown(text)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{name:25} {len(cards):>4} cards   peak {peak / 2**20:6.2f} MiB (goal < 20)")
    text = (Path(__file__).resolve().parent.parent / "tests/fixtures/errbot/help.md").read_text()
    render_markdown(text)
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(renders):
        render_markdown(text)
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{renders} renders of !help: {after - before} bytes still allocated after them "
        f"(peak during them {peak / 2**20:.2f} MiB; the goal: nothing grows)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--min-run", type=float, default=0.2)
    parser.add_argument("--memory", action="store_true", help="allocation peaks, not time")
    args = parser.parse_args()
    if args.memory:
        memory(10_000)
    else:
        main(args.runs, args.min_run)
