"""The ``sandbox`` command line: ``python -m lark_cards sandbox [--demo] …``.

Light on purpose (argparse only at import): ``lark_cards.__main__`` builds every command's
parser up front, and ``render`` must stay fast. The server and errbot start in :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

PROG = "python -m lark_cards sandbox"
BOT_PORT = 8080
DESCRIPTION = (
    "Serve a local Feishu Open Platform on 127.0.0.1 with a browser page that draws every card "
    "the bot sends; --demo also starts errbot with the LarkCards backend wired to it. Events "
    "reach the bot over Feishu's long connection (the bot connects; BOT_IDENTITY mode "
    "'websocket'), or with --webhook as signed POSTs to the bot's event URL."
)


def _delays(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("must be seconds separated by commas") from None
    if any(delay < 0 for delay in delays):
        raise argparse.ArgumentTypeError("delays cannot be negative")
    return delays


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _folder(text: str) -> str:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: not a folder")
    return str(path.resolve())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's options, on ``parser`` (the command's own, or a ``sandbox`` sub-parser)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="page and API port; 0 = any free")
    parser.add_argument("--demo", action="store_true", help="also start errbot wired to it")
    parser.add_argument("--demo-dir", default="demo", help="where --demo writes config and logs")
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="POST events to the bot's event URL (encrypted, signed) instead of the long "
        "connection; implied by --bot-url, --bot-port and --encrypt-key",
    )
    parser.add_argument("--bot-url", help="webhook: the bot's event URL (default: --bot-port's)")
    parser.add_argument("--bot-port", type=int, help=f"webhook: the bot's port ({BOT_PORT})")
    parser.add_argument("--encrypt-key", help="webhook: Encrypt Key for events (default: random)")
    parser.add_argument(
        "--verification-token", help="Verification Token (default: random with --webhook)"
    )
    parser.add_argument(
        "--fragment-bytes",
        type=_positive,
        metavar="N",
        help="long connection: split pushes longer than N bytes over several frames",
    )
    parser.add_argument(
        "--templates-dir",
        type=_folder,
        metavar="DIR",
        help="your own card templates, as LARK_CARDS['templates_dir']: the preview (and the "
        "--demo bot) render with them, and say when Feishu would refuse their cards",
    )
    parser.add_argument(
        "--retry-delays",
        type=_delays,
        default=None,
        metavar="S,S,…",
        help="seconds between event retries when the bot does not ack within 3 s "
        "(default: Feishu's 15,300,3600,21600)",
    )


def run(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """Start what ``args`` asks for and serve until Ctrl-C; returns the exit status."""
    import asyncio
    import secrets

    from .runner import EVENTS_PATH, WEBHOOK, SandboxConfig, serve

    config = SandboxConfig(
        host=args.host,
        port=args.port,
        verification_token=args.verification_token,
        fragment_bytes=args.fragment_bytes,
        templates_dir=args.templates_dir,
    )
    bot_port = args.bot_port or BOT_PORT
    if args.webhook or args.bot_url or args.bot_port is not None or args.encrypt_key:
        # A webhook needs a URL to post to and keys to sign with; fresh ones on every run.
        config.mode = WEBHOOK
        config.bot_url = args.bot_url or f"http://127.0.0.1:{bot_port}{EVENTS_PATH}"
        config.encrypt_key = args.encrypt_key or secrets.token_urlsafe(24)
        config.verification_token = args.verification_token or secrets.token_urlsafe(16)
    if args.retry_delays is not None:
        config.retry_delays = args.retry_delays
    if args.demo:
        from .demo import run_demo

        demo_dir = Path(args.demo_dir).resolve()
        return asyncio.run(run_demo(config, demo_dir=demo_dir, out=out))
    return asyncio.run(serve(config, bot_port=bot_port, out=out))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lark_cards.sandbox``: the same command, standalone."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
