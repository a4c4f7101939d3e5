"""Issue 12, item 3 in the page: when the bot refuses a push, the page shows the bot's status
and answer under the message, not a bare "retrying"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import bot_server, open_page, wait_for

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

    def respond(body: bytes, headers: Any) -> tuple[int, Any]:
        try:
            authenticate(settings, body, headers, now=time.time())
            return 200, {"msg": "ok"}
        except Rejected as refused:
            return refused.status, {"error": refused.reason}

    with bot_server(respond) as url:
        yield url


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
