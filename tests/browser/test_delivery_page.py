"""Issue 12, item 3 in the page: when the bot refuses a push, the page shows the bot's status
and answer under the message, not a bare "retrying"."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import open_page, wait_for

GROUP = "oc_sandboxgroup000000000000000000000"


@pytest.fixture
def refusing_bot() -> Iterator[str]:
    """A bot whose Encrypt Key is not the console's: lark-cards' own check refuses every push
    with its 401 and reason; the URL."""
    from lark_cards.settings import Settings
    from lark_cards.transport.webhook import Rejected, authenticate

    settings = Settings(
        app_id="cli_sandbox0000000001", app_secret="unused", encrypt_key="the-bots-own-key"
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                authenticate(settings, body, self.headers, now=time.time())
                status, answer = 200, {"msg": "ok"}
            except Rejected as refused:
                status, answer = refused.status, {"error": refused.reason}
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


def test_a_refused_push_shows_the_bots_answer(
    browser, refusing_bot: str, processes, screenshots: Path
):
    from selenium.webdriver.common.by import By

    process = processes.python(
        "lark_cards.sandbox", "--port", "0", "--bot-url", refusing_bot,
        "--encrypt-key", "the-consoles-key", "--retry-delays", "0.2",
    )  # fmt: skip
    assert process.stdout is not None
    url = next(line.split(": ", 1)[1].strip() for line in process.stdout if "Sandbox page" in line)

    driver = browser
    open_page(driver, url, GROUP)
    box = driver.find_element(By.ID, "composer-input")
    box.send_keys("!help")
    driver.find_element(By.ID, "send-button").click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg-delivery.delivery-failed"))
    [detail] = driver.find_elements(By.CSS_SELECTOR, ".msg.from-user .delivery-detail")
    assert detail.text == 'the bot answered 401: {"error": "signature mismatch"}'
    assert detail.is_displayed()
    driver.save_screenshot(str(screenshots / "delivery-refused.png"))
