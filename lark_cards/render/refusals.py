"""Errbot's own refusals and failures, told apart from replies so they look like failures.

Errbot core sends these through ``send_simple_reply`` like any reply, as fixed English texts
(errbot 6.2.1: ``core_plugins/acls.py`` ``access_denied``, ``core.py`` ``unknown_command`` and
``MSG_ERROR_OCCURRED``). As ordinary cards they looked like success; rendered with the
``error`` template (a coloured header, the text as typed) a user sees at once that the
command did not run. A user's own ``error.json.j2`` overrides the look.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Refusal", "errbot_refusal"]


@dataclass(frozen=True)
class Refusal:
    """How a refusal is shown: the error card's header ``title`` and ``color``."""

    title: str
    color: str


_REFUSALS: tuple[tuple[re.Pattern[str], Refusal], ...] = (
    (
        re.compile(r"You're not allowed to access this command[^\n]*"),
        Refusal("Not allowed", "orange"),
    ),
    (re.compile(r"This command requires bot-admin privileges"), Refusal("Admins only", "orange")),
    (  # Errbot cuts the command at spaces only: it may hold quotes and line breaks
        re.compile(
            r'Command "[^ ]*?"(?: / "[^ ]*? [^ ]*?")? not found\.(?:\n\nDid you mean .*)?',
            re.DOTALL,
        ),
        Refusal("Command not found", "orange"),
    ),
    (
        re.compile(r"Computer says nooo\. See logs for details(?::\n.*)?", re.DOTALL),
        Refusal("Command failed", "red"),
    ),
)


def errbot_refusal(text: str) -> Refusal | None:
    """The refusal ``text`` is, if it is one of Errbot's own, else None. Whole texts only:
    a plugin's reply that merely mentions such words stays a reply."""
    stripped = text.strip()
    for pattern, refusal in _REFUSALS:
        if pattern.fullmatch(stripped):
            return refusal
    return None
