"""Issue 12, item 6: ``make demo``'s errbot dies with the sandbox, however the sandbox ends.

errbot runs in a session of its own, so neither a closed terminal nor a SIGKILL of the
sandbox reached it: it kept running. Now the kernel sends it SIGTERM when its parent dies
(``demo.die_with_parent``), and a SIGHUP (the terminal closing) stops the demo like Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux"),
]

GONE_WITHIN = 10.0  # s: errbot's clean shutdown of an idle bot takes about one


def live_errbots(demo_dir: Path) -> list[int]:
    """The pids of live errbot processes started for ``demo_dir`` (zombies are dead)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(demo_dir) in cmdline and "errbot.cli" in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _start_demo(processes, demo_dir: Path) -> subprocess.Popen[str]:
    process = processes.python(
        "lark_cards.sandbox", "--demo", "--port", "0", "--demo-dir", str(demo_dir)
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if re.search(r"The bot is up", line):
            return process
    raise AssertionError("the demo did not start:\n" + "".join(seen))


def _wait_gone(demo_dir: Path, limit: float = GONE_WITHIN) -> float:
    started = time.monotonic()
    while live_errbots(demo_dir):
        if time.monotonic() - started > limit:
            raise AssertionError(f"errbot still running {limit:g} s after its parent died")
        time.sleep(0.1)
    return time.monotonic() - started


def test_errbot_dies_when_the_sandbox_is_killed(tmp_path: Path, processes):
    demo_dir = tmp_path / "demo"
    demo = _start_demo(processes, demo_dir)
    [errbot] = live_errbots(demo_dir)
    assert _parent_of(errbot) == demo.pid
    try:
        demo.kill()  # SIGKILL: the sandbox runs no cleanup at all
        demo.wait(10)
        took = _wait_gone(demo_dir)
    finally:
        for pid in live_errbots(demo_dir):  # never leave one behind, even when the test fails
            os.kill(pid, signal.SIGKILL)
    assert took < GONE_WITHIN, took
    log = (demo_dir / "errbot.log").read_text()
    assert "Traceback" not in log


def test_a_closed_terminal_stops_the_demo_like_ctrl_c(tmp_path: Path, processes):
    demo_dir = tmp_path / "demo"
    demo = _start_demo(processes, demo_dir)
    assert live_errbots(demo_dir)
    try:
        demo.send_signal(signal.SIGHUP)
        assert demo.wait(40) == 0  # errbot stopped first, then the sandbox, cleanly
        assert live_errbots(demo_dir) == []
    finally:
        for pid in live_errbots(demo_dir):
            os.kill(pid, signal.SIGKILL)
