"""Found in review: a *really* closed terminal, not a SIGHUP sent down a pipe.

tests/test_demo_dies_with_parent.py sends SIGHUP to a demo whose stdout is a pipe, so the
"Stopping errbot …" line it prints on the way out is written fine. When the terminal closes
the kernel sends SIGHUP *and* every later write to the tty fails with EIO: ``stop_errbot``
starts with ``say(out, …)`` (runner.py ``say`` → ``stream.write``), which raises before
errbot is sent its SIGINT, so errbot is SIGKILLed by ``run_demo``'s ``finally`` (no clean
shutdown) and the demo exited with a traceback nobody saw. ``say`` now drops what it cannot
write.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from test_demo_dies_with_parent import live_errbots

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux"),
]
ROOT = Path(__file__).resolve().parent.parent


def test_closing_the_terminal_stops_errbot_cleanly(tmp_path: Path):
    demo_dir = tmp_path / "demo"
    master, slave = pty.openpty()

    def controlling_tty() -> None:  # the demo as a session leader on the pty, as in a shell
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lark_cards.sandbox",
            "--demo",
            "--port",
            "0",
            "--demo-dir",
            str(demo_dir),
        ],
        cwd=ROOT,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 90
        while b"The bot is up" not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                seen += os.read(master, 65536)
        os.close(master)  # the terminal window closes: SIGHUP, and the tty is gone
        master = -1
        code = demo.wait(40)
        log = (demo_dir / "errbot.log").read_text()
        assert live_errbots(demo_dir) == []
        assert code == 0, f"demo exited {code}"
        # errbot got its SIGINT and shut down (a SIGKILL leaves no such line)
        assert "Trigger shutdown" in log or "shutdown" in log.lower(), log[-1500:]
    finally:
        if master >= 0:
            os.close(master)
        if demo.poll() is None:
            demo.kill()
        for pid in live_errbots(demo_dir):
            os.kill(pid, 9)


def test_the_late_parent_death_check_kills_the_child_even_under_the_sandboxs_handlers(
    monkeypatch: pytest.MonkeyPatch,
):
    """demo.die_with_parent's fallback for a parent that died before prctl ran is
    ``os.kill(os.getpid(), SIGTERM)`` in the forked child. But that child is a fork of the
    sandbox, which handles SIGTERM (runner.stop_on_signals → loop.add_signal_handler): the
    inherited handler swallows the signal, exec goes on, and errbot runs orphaned. Fix: reset
    SIGTERM to SIG_DFL before the kill, or ``os._exit`` in the child (demo.py ``arm``)."""
    import signal

    from lark_cards.sandbox.demo import die_with_parent

    arm = die_with_parent()
    assert arm is not None
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # as the running sandbox has
    try:
        monkeypatch.setattr(os, "getppid", lambda: 1)  # "the parent is already gone"
        child = subprocess.Popen(["sleep", "5"], preexec_fn=arm)
        try:
            code = child.wait(3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            code = None
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == -signal.SIGTERM, "the child outlived its dead parent"
