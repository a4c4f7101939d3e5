"""Webhook ack latency: lark-cards' event server vs a bare aiohttp handler, in one run.

Both servers run on 127.0.0.1 in the same process and loop, and get the same number of
sequential POSTs from one client session, interleaved (one to each in turn), while ``--load``
threads render Errbot's ``!help`` in a loop, as a busy bot's Errbot threads do. lark-cards
gets real Feishu-shaped events, encrypted and signed (AES-256-CBC decryption, SHA-256
signature, token check, dedup, hand-off); the bare handler reads the body and returns 200.
Every event has a fresh event_id and message_id so dedup never short-circuits. Requests are
built before timing starts.

Usage: python bench/ack.py [--requests N] [--load THREADS]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lark_cards.bridge import favour_the_loop
from lark_cards.render import render_markdown
from lark_cards.sandbox.delivery import event_request, message_envelope
from lark_cards.settings import Settings
from lark_cards.transport.webhook import create_app

ROOT = Path(__file__).resolve().parent.parent
ENCRYPT_KEY = secrets.token_urlsafe(24)
TOKEN = "bench-verification-token"


async def bare(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"msg": "ok"})


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/lark/events"


async def measure(
    session: aiohttp.ClientSession, url: str, requests: list[tuple[bytes, dict[str, str]]]
) -> list[float]:
    latencies = []
    for body, headers in requests:
        start = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append(time.perf_counter() - start)
    return latencies


def render_loop(stop: threading.Event) -> None:
    """What a busy bot's Errbot threads do: render replies, holding the GIL in bursts. Both
    servers share this process and loop, so both feel it alike."""
    text = (ROOT / "tests" / "fixtures" / "errbot" / "help.md").read_text("utf-8")
    while not stop.is_set():
        render_markdown(text)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(count: int, load: int) -> None:
    settings = Settings(
        app_id="cli_bench",
        app_secret="unused",
        verification_token=TOKEN,
        encrypt_key=ENCRYPT_KEY,
    )
    dispatched = 0

    def dispatch(_envelope: object) -> None:
        nonlocal dispatched
        dispatched += 1

    lark_runner, lark_url = await serve(create_app(settings, dispatch))
    bare_app = web.Application()
    bare_app.router.add_post("/lark/events", bare)
    bare_runner, bare_url = await serve(bare_app)

    def build() -> list[tuple[bytes, dict[str, str]]]:
        return [
            event_request(
                message_envelope(
                    f"!status host-{i}",
                    chat_id="oc_bench",
                    sender_open_id="ou_u",
                    token=TOKEN,
                    app_id=settings.app_id,
                ),
                encrypt_key=ENCRYPT_KEY,
            )
            for i in range(count)
        ]

    lark_requests, bare_requests = build(), build()
    stop = threading.Event()
    workers = [threading.Thread(target=render_loop, args=(stop,)) for _ in range(load)]
    for worker in workers:
        worker.start()
    try:
        async with aiohttp.ClientSession() as session:
            await measure(session, lark_url, build()[:50])  # warm-up, both sides
            await measure(session, bare_url, build()[:50])
            lark, plain = [], []
            for lark_one, bare_one in zip(lark_requests, bare_requests, strict=True):
                lark += await measure(session, lark_url, [lark_one])  # interleaved: the same
                plain += await measure(session, bare_url, [bare_one])  # load on both
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    await lark_runner.cleanup()
    await bare_runner.cleanup()

    print(
        f"requests per server: {count}, interleaved; {load} thread(s) rendering !help "
        f"meanwhile; GIL switch interval {sys.getswitchinterval() * 1e3:g} ms "
        f"(events dispatched by lark-cards: {dispatched})"
    )
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}")
    for name, values in (("bare aiohttp 200", plain), ("lark-cards (decrypt+sign)", lark)):
        p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
        print(f"{name:28}{p50:>10.3f}{p99:>10.3f}")
    print(
        f"ratio lark-cards / bare: p50 {percentile(lark, 50) / percentile(plain, 50):.2f}x, "
        f"p99 {percentile(lark, 99) / percentile(plain, 99):.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--load", type=int, default=1, help="render threads (0: idle)")
    parser.add_argument(
        "--default-switch-interval",
        action="store_true",
        help="keep CPython's 5 ms GIL switch interval (the backend sets 1 ms)",
    )
    args = parser.parse_args()
    if not args.default_switch_interval:
        favour_the_loop()  # as LarkCardsBackend does
    asyncio.run(main(args.requests, args.load))
