"""A worked example of interactive cards: deploys that a bot admin approves with one click.

``!deploy prod`` answers with a card holding **Approve** / **Deny** buttons. Each button's
callback value is ``{"cmd": "!approve <id>"}`` (or ``!deny``), so a click runs that command
*as the person who clicked*, through Errbot's normal path: ``!approve`` is ``admin_only``, so
a click from anyone not in ``BOT_ADMINS`` is refused by Errbot's ACLs exactly as if they had
typed it. The approved deploy then reports its progress in one card that updates in place.

Errbot allows admin-only commands in direct messages only; to approve from a group card, allow
it there in ``config.py``::

    ACCESS_CONTROLS = {"Approval:approve": {"allowmuc": True}}

Pending requests live in memory: a restart forgets them (a real plugin would keep them in
``self`` storage, without the card reference).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, NamedTuple

from errbot import BotPlugin, botcmd
from errbot.backends.base import Message

from lark_cards.interactive import button

STEPS = ("build", "migrate the database", "roll out", "health check")


class Request(NamedTuple):
    # A NamedTuple, not a dataclass: Errbot loads plugin modules without registering them in
    # sys.modules, which dataclasses need to read postponed annotations.
    env: str
    requester: str
    card: Any  # lark_cards.updates.CardRef: the Approve / Deny card, updated once decided


class Approval(BotPlugin):
    """Deploys that need a bot admin's approval, asked and answered with card buttons."""

    step_seconds = 1.0  # how long each pretend deploy step takes

    def activate(self) -> None:
        super().activate()
        self._requests: dict[str, Request] = {}
        self._lock = threading.Lock()

    @botcmd
    def deploy(self, msg: Message, args: str) -> str | None:
        """Ask a bot admin to approve a deploy: !deploy <env>"""
        env = args.strip()
        if not env:
            return "Usage: `!deploy <env>`"
        request_id = secrets.token_hex(3)
        buttons = [
            button(
                "Approve",
                f"!approve {request_id}",
                style="primary",
                confirm=f"Deploy {env} now?",
            ),
            button("Deny", f"!deny {request_id}", style="danger"),
        ]
        where = msg.to if msg.is_group else msg.frm
        card = self._bot.send_buttons(
            where,
            f"**{msg.frm.nick}** asks to deploy **{env}**.\n\nA bot admin may approve it.",
            buttons,
            in_reply_to=msg,
        )
        with self._lock:
            self._requests[request_id] = Request(env, msg.frm.nick, card)
        return None

    @botcmd(admin_only=True)
    def approve(self, msg: Message, args: str) -> str | None:
        """Approve a deploy request and run it (bot admins only): !approve <id>"""
        request = self._take(args)
        if request is None:
            return f"There is no pending deploy request `{args.strip()}`."
        request.card.update(
            f"Deploy of **{request.env}** (asked by {request.requester}) "
            f"**approved** by {msg.frm.nick}."
        )
        with self._bot.progress(msg, f"Deploying **{request.env}**…") as progress:
            for number, step in enumerate(STEPS, start=1):
                progress.update(f"Deploying **{request.env}**: {step} ({number}/{len(STEPS)})…")
                time.sleep(self.step_seconds)
            progress.finish(f"Deployed **{request.env}**: {len(STEPS)}/{len(STEPS)} steps done.")
        return None

    @botcmd
    def deny(self, msg: Message, args: str) -> str:
        """Deny a deploy request: !deny <id> (anyone may say no)"""
        request = self._take(args)
        if request is None:
            return f"There is no pending deploy request `{args.strip()}`."
        request.card.update(
            f"Deploy of **{request.env}** (asked by {request.requester}) "
            f"**denied** by {msg.frm.nick}."
        )
        return f"Deploy of **{request.env}** denied."

    def _take(self, args: str) -> Request | None:
        """The pending request ``args`` names, removed so a second click finds nothing."""
        with self._lock:
            return self._requests.pop(args.strip(), None)
