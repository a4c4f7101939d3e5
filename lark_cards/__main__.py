"""Command line: ``python -m lark_cards COMMAND …``.

``render [FILE|-]`` prints the Feishu cards (card JSON 2.0) that the bot would send for an Errbot
markdown reply: the quickest way to see, diff or paste into Feishu's card builder what a plugin's
output becomes, without a bot, an app or a network. ``--templates-dir DIR`` renders with your
own templates (``LARK_CARDS["templates_dir"]``). A card Feishu would refuse gets one line per
reason on stderr, so you can try a template before the bot sends it.

Each command is a ``_add_<name>`` function that registers a sub-parser whose ``run(args) -> int``
does the work; input the user got wrong raises :class:`CommandError`, which becomes exit status 2
and one line on stderr, never a traceback. Output goes through :func:`_output`, so a reader that
stops early (``… | head -1``) ends the command quietly too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

PROG = "python -m lark_cards"
USAGE_ERROR = 2  # what argparse uses for bad command lines; bad input files get it too
BROKEN_PIPE = 128 + 13  # a shell's status for a command killed by SIGPIPE (13), e.g. `cat | head`


class CommandError(Exception):
    """Bad input from the user (missing file, wrong encoding…): one line on stderr, exit 2."""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (not usage + error) and main()
    returns 2 instead of the parser calling sys.exit, so main(argv) stays testable in-process."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return USAGE_ERROR
    except SystemExit as exc:  # --help / --version: argparse printed them already
        return exc.code if isinstance(exc.code, int) else 0
    try:
        return int(args.run(args))
    except CommandError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command; a new command is one more ``_add_…`` call here."""
    parser = _Parser(
        prog=PROG,
        description="lark-cards: an Errbot backend for Feishu / Lark that answers with cards.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    _add_render(commands)
    _add_sandbox(commands)
    # A new command is one more `_add_<name>(commands)`: its parser, its arguments and
    # `.set_defaults(run=<function(args) -> int>)`; raise CommandError for bad input. Keep
    # heavy imports inside the run function so every command stays fast to start.
    return parser


# --- sandbox ------------------------------------------------------------------------------------


def _add_sandbox(commands: argparse._SubParsersAction[_Parser]) -> None:
    from lark_cards.sandbox.cli import DESCRIPTION, add_arguments, run  # argparse only: light

    sandbox = commands.add_parser(
        "sandbox",
        help="a local Feishu whose page draws every card (--demo: with errbot)",
        description=DESCRIPTION,
    )
    add_arguments(sandbox)
    sandbox.set_defaults(run=run)


# --- render -------------------------------------------------------------------------------------


def _add_render(commands: argparse._SubParsersAction[_Parser]) -> None:
    render = commands.add_parser(
        "render",
        help="print the cards (JSON) the bot sends for a markdown reply",
        description="Print, as a JSON list, the Feishu card JSON 2.0 objects the bot would send "
        "for the Errbot markdown in FILE (default: standard input).",
    )
    render.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="UTF-8 markdown")
    render.add_argument(
        "--templates-dir",
        metavar="DIR",
        help="a folder of your own card templates, as LARK_CARDS['templates_dir'] (files there "
        "win over the shipped ones)",
    )
    render.set_defaults(run=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from lark_cards.render import RenderOptions, render_markdown
    from lark_cards.render.validate import validate_card

    directory = args.templates_dir
    if directory is not None and not os.path.isdir(directory):
        raise CommandError(f"--templates-dir {directory}: not a folder")
    cards = render_markdown(_read_text(args.file), options=RenderOptions(templates_dir=directory))
    for number, card in enumerate(cards, start=1):
        for problem in validate_card(card):  # what a user's template got wrong, Feishu's way
            where = f" at {problem.path}" if problem.path else ""
            print(
                f"{PROG} render: card {number}: Feishu would refuse it "
                f"({problem.code}{where}: {problem.message})",
                file=sys.stderr,
            )
    # Non-ASCII stays readable on a UTF-8 terminal; \u escapes keep other encodings working.
    utf8 = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "") == "utf8"
    return _output(json.dumps(cards, ensure_ascii=not utf8, indent=2))


def _output(text: str) -> int:
    """Print ``text``; the exit status: 0, or :data:`BROKEN_PIPE` when stdout's reader has gone.

    Python ignores SIGPIPE, so writing to a closed pipe (``… | head -1``) raises BrokenPipeError.
    The recipe of Python's ``signal`` docs: flush here so it surfaces here, then point stdout at
    devnull so the interpreter's flush at exit does not raise (and print) it a second time.
    """
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return BROKEN_PIPE
    return 0


def _read_text(name: str) -> str:
    """The UTF-8 text of file ``name`` (``-``: standard input), or a one-line CommandError."""
    label = "standard input" if name == "-" else name
    try:
        if name == "-":
            stdin = sys.stdin
            data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
        else:
            with open(name, "rb") as file:
                data = file.read()
    except OSError as exc:
        raise CommandError(f"cannot read {label}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")  # a BOM is not part of the message
    except UnicodeDecodeError as exc:
        message = f"{label} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        raise CommandError(message) from None


if __name__ == "__main__":
    sys.exit(main())
