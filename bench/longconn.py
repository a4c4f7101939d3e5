"""Long connection: how long the bot is deaf after a dropped socket and after a half-open one.

The sandbox's long-connection hub and the bot's ``LongConnection`` (the production client, with
its real backoff) run in one process on 127.0.0.1. Each round cuts the bot's socket — *drop*:
the TCP connection is aborted, no close frame; *half-open*: the socket stays open but nothing
comes through any more, the case the official SDKs never notice — and times how long until
the hub sees the bot's next connection and a pushed event is acked on it. Half-open rounds
are compared with the liveness bound (2 ping intervals + min(5 s, one interval)).

Usage: python bench/longconn.py [--rounds N] [--ping S] [--nonce S]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lark_cards.sandbox.delivery import message_envelope
from lark_cards.sandbox.longconn import LongConnHub
from lark_cards.settings import Settings
from lark_cards.transport.dedup import MemoryClaims, TTLSet
from lark_cards.transport.endpoint import ClientConfig
from lark_cards.transport.longconn import LongConnection
from lark_cards.transport.pushed import PushedEvents
from lark_cards.transport.reception import Reception

APP_ID, SECRET = "cli_bench", "bench-secret"


async def deaf_for(hub: LongConnHub, fault: str) -> float:
    """Cut the one connection with ``fault``; seconds until an event is acked again."""
    loop = asyncio.get_running_loop()
    (connection,) = hub.open_connections
    started = loop.time()
    getattr(hub, fault)(connection.id)
    while True:
        if any(c.id != connection.id for c in hub.open_connections):
            event = message_envelope("!echo hi", chat_id="oc_bench", sender_open_id="ou_b")
            event["header"]["app_id"] = APP_ID
            status, _, _ = await hub.post(event)
            if status == 200:
                took = loop.time() - started
                for old in hub.connections:  # the half-open socket, left to the OS on Feishu
                    if old.id == connection.id:
                        hub.drop(old.id)
                return took
        await asyncio.sleep(0.01)


async def main(rounds: int, timing: ClientConfig) -> None:
    hub = LongConnHub(app_id=APP_ID, app_secret=SECRET, client_config=timing)
    app = web.Application()
    hub.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    settings = replace(
        Settings(app_id=APP_ID, app_secret=SECRET),
        base_url=f"http://127.0.0.1:{port}",
        mode="websocket",
    )
    reception = Reception(lambda envelope: None, MemoryClaims(TTLSet(3600, 100_000)))
    connection = LongConnection(settings, PushedEvents(settings, reception))
    connection.start()
    try:
        await asyncio.wait_for(hub.wait_connected(1), 10)
        print(
            f"timing: ping every {timing.ping_interval:g} s, ReconnectNonce "
            f"{timing.reconnect_nonce:g} s, liveness {timing.liveness:g} s; {rounds} rounds each"
        )
        for fault in ("drop", "half_open"):
            times = [await deaf_for(hub, fault) for _ in range(rounds)]
            line = (
                f"{fault:>9}: deaf for median {statistics.median(times):.2f} s, "
                f"max {max(times):.2f} s"
            )
            if fault == "half_open":
                line += f" ({max(times) / (timing.liveness + timing.reconnect_nonce):.2f}× "
                line += "the bound: liveness + nonce)"
            else:
                line += f" (nonce {timing.reconnect_nonce:g} s: a random wait up to it)"
            print(line)
    finally:
        await connection.close()
        await hub.close()
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ping", type=float, default=1.0, help="PingInterval the hub gives")
    parser.add_argument("--nonce", type=float, default=0.0, help="ReconnectNonce the hub gives")
    args = parser.parse_args()
    timing = ClientConfig(
        ping_interval=args.ping, reconnect_nonce=args.nonce, reconnect_interval=10
    )
    asyncio.run(main(args.rounds, timing))
