"""What the template tests share: a user's reply template (one Feishu accepts, one it refuses
for a 1.0 property), a templates folder holding it, and the CLI run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GREEN_REPLY = """{
  "schema": "2.0",
  "config": {"update_multi": true},
  "header": {"title": {"tag": "plain_text", "content": "Bot"}, "template": "green"},
  "body": {"elements": {{ elements }}}
}
"""
# Carried over from card JSON 1.0: wide_screen_mode is no 2.0 property (Feishu: 230001).
WIDE_REPLY = GREEN_REPLY.replace('"update_multi": true', '"wide_screen_mode": true')


def template_folder(tmp_path: Path, reply: str | None, name: str = "mine") -> Path:
    """A user's templates folder under ``tmp_path``, with ``reply`` as reply.json.j2."""
    directory = tmp_path / name
    directory.mkdir()
    if reply is not None:
        (directory / "reply.json.j2").write_text(reply)
    return directory


def run_cli(*args: str, stdin: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m lark_cards ARGS`` in a subprocess from the checkout, ``stdin`` piped in."""
    return subprocess.run(
        [sys.executable, "-m", "lark_cards", *args],
        input=stdin.encode(),
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
