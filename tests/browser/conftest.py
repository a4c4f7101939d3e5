"""Real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium.

Nothing is downloaded: the driver is ``/usr/bin/chromedriver`` given to selenium explicitly, so
Selenium Manager never runs. Where Chromium, the driver or selenium is missing the tests skip
and say which one (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "demo" / "screenshots"  # gitignored (/demo/)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)) and not shutil.which(path):
            return f"{path} not found (apt-get install {package})"
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    reason = _missing()
    if reason:
        pytest.skip(f"browser tests need real Chromium: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout: float = 30):
    """``condition(driver)`` once it is true; a message redrawn in place (PATCH) replaces its
    element, so a stale element only means: look it up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition)


def open_page(driver, url: str, chat: str | None = None) -> None:
    """Load the sandbox page at ``url``, wait until its script is ready and, given ``chat``,
    open that chat."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    if chat:
        driver.find_element(By.CSS_SELECTOR, f'.chat-item[data-chat-id="{chat}"]').click()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@dataclass
class Demo:
    url: str
    process: subprocess.Popen[str]
    lines: list[str]


@pytest.fixture
def demo(tmp_path: Path, processes) -> Iterator[Demo]:
    """``make demo``'s exact path: the runner starts the sandbox and a real errbot."""
    demo_dir = str(tmp_path / "demo")
    process = processes.python(
        "lark_cards.sandbox", "--demo", "--port", "0", "--demo-dir", demo_dir
    )
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"Open (http://127\.0\.0\.1:\d+/)", line)
            if match:
                found.put(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    try:
        url = found.get(timeout=90)
    except queue.Empty:
        pytest.fail("the demo did not print its URL:\n" + "".join(lines))
    yield Demo(url, process, lines)
    # Ctrl-C with the page still open (a long poll pending): both stop, cleanly and soon.
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0, "".join(lines)


@dataclass
class FakeBot:
    """A bot endpoint in a thread: checks events like lark-cards' webhook, answers as told."""

    url: str
    received: list[dict]
    answers: list[dict]


@dataclass
class SandboxProcess:
    url: str
    identity: dict
    bot: FakeBot
    token: str = ""

    def api(self, method: str, path: str, body: object = None, *, form: bytes | None = None,
            content_type: str = "application/json") -> dict:  # fmt: skip
        """Call the sandbox's Open API as the bot would (urllib: these tests are sync)."""
        import json
        import urllib.error
        import urllib.request

        if not self.token and not path.startswith("/open-apis/auth"):
            self.token = self.api(
                "POST",
                "/open-apis/auth/v3/tenant_access_token/internal",
                {"app_id": self.identity["app_id"], "app_secret": self.identity["app_secret"]},
            )["tenant_access_token"]
        data = form if form is not None else (json.dumps(body).encode() if body else None)
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method)
        request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())


@contextlib.contextmanager
def bot_server(respond: Callable[[bytes, Any], tuple[int, Any]]) -> Iterator[str]:
    """A webhook bot on a free loopback port, in a thread: ``respond(body, headers)`` gives
    each push's status and JSON answer. Yields the URL to deliver to."""
    import http.server
    import json

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, answer = respond(body, self.headers)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lark/events"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_bot() -> Iterator[FakeBot]:
    import time

    from lark_cards.settings import Settings
    from lark_cards.transport.webhook import authenticate

    settings = Settings(
        app_id="cli_sandbox0000000001",
        app_secret="unused",
        encrypt_key="browser-encrypt-key",
        verification_token="browser-token",
    )
    bot = FakeBot("", [], [])

    def respond(body: bytes, headers: Any) -> tuple[int, Any]:
        envelope = authenticate(settings, body, headers, now=time.time())
        bot.received.append({"event_type": envelope.event_type, "event": envelope.event})
        return 200, bot.answers.pop(0) if bot.answers else {}

    with bot_server(respond) as url:
        bot.url = url
        yield bot


@pytest.fixture
def sandbox(fake_bot: FakeBot, processes) -> SandboxProcess:
    """``python -m lark_cards sandbox`` (no errbot) delivering to ``fake_bot``; stopped with
    Ctrl-C afterwards (the ``processes`` fixture)."""
    import ast

    process = processes.python(
        "lark_cards.sandbox", "--port", "0", "--bot-url", fake_bot.url,
        "--encrypt-key", "browser-encrypt-key", "--verification-token", "browser-token",
    )  # fmt: skip
    assert process.stdout is not None
    url, identity = "", None
    for line in process.stdout:
        if line.startswith("Sandbox page: "):
            url = line.split(": ", 1)[1].strip()
        if line.startswith("BOT_IDENTITY = "):
            identity = ast.literal_eval(line.split(" = ", 1)[1])
            break
    assert url, "the sandbox did not print its URL"
    assert identity, "the sandbox did not print its BOT_IDENTITY"
    return SandboxProcess(url, identity, fake_bot)
