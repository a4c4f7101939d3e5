"""Buttons that run commands, in real Chromium against ``make demo``'s real errbot.

``!deploy prod`` (plugins/approval) answers with an Approve / Deny card. A click sends a real
``card.action.trigger`` to the bot, which runs ``!approve <id>`` as the person who clicked,
through Errbot's ACLs: Bob is not a bot admin, so his click is refused in a reply under the card
and the card stays as it was; Alice is, so her click turns the card into "approved" in place
and the deploy reports its steps in one card that updates until it says done. The README's
picture of this (docs/approval.png) is refreshed with ``LARK_CARDS_UPDATE_DOCS=1``.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from .conftest import Demo, open_page, wait_for
from .test_demo_page import GROUP, _readme_picture, _send

pytestmark = pytest.mark.e2e

REFUSAL = "This command requires bot-admin privileges"  # Errbot's ACLs, word for word


def _message(driver, message_id: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'.msg[data-message-id="{message_id}"]')


def _read_bot_messages(driver) -> list[tuple[str, str]]:
    """``(message id, text)`` of every bot message; raises StaleElementReferenceException when
    a card update redraws a message while it is read (the deploy card updates every step)."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, ".msg.from-bot")
    return [(m.get_attribute("data-message-id"), m.text) for m in found]


def _bot_messages(driver) -> list[tuple[str, str]]:
    """The bot messages as they are now, read again if a redraw made the reading stale."""
    return wait_for(driver, lambda d: (_read_bot_messages(d),))[0]


def _bot_message_id(driver, shows, timeout: float = 30) -> str:
    """The id of the first bot message whose text ``shows`` accepts, once there is one."""

    def first(d) -> str | None:
        return next((mid for mid, text in _read_bot_messages(d) if shows(text)), None)

    return wait_for(driver, first, timeout)


def _buttons(message) -> dict[str, object]:
    from selenium.webdriver.common.by import By

    return {b.text: b for b in message.find_elements(By.CSS_SELECTOR, ".fs-card .fs-button")}


def _click_as(driver, person: str, message_id: str, label: str) -> None:
    """Choose ``person`` in the page's "As" box, click ``label`` and confirm the dialog."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "sender-select")).select_by_visible_text(person)
    button = _buttons(_message(driver, message_id))[label]
    button.location_once_scrolled_into_view  # noqa: B018 - scrolls the button into view
    button.click()
    dialog = wait_for(driver, ec.alert_is_present(), timeout=5)
    assert "Deploy prod now?" in dialog.text  # the button's confirm, as Feishu asks it
    dialog.accept()
    wait_for(driver, lambda d: any("Running !approve" in t.text for t in _toasts(d)), timeout=10)


def _toasts(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#toasts .toast")


def _is_progress(text: str) -> bool:
    return "Deploying prod" in text or "Deployed prod" in text


def _reply_to(demo: Demo, message_id: str) -> str | None:
    """What the platform recorded as the message's parent (the page shows only a quote)."""
    with urllib.request.urlopen(demo.url + "api/updates?since=0&wait=0", timeout=10) as answer:
        messages = json.loads(answer.read())["messages"]
    return next(m["reply_to"] for m in messages if m["message_id"] == message_id)


def test_approve_button_runs_as_the_clicker_and_updates_the_cards(
    browser, demo: Demo, screenshots: Path
):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.set_window_size(1280, 1100)
    open_page(driver, demo.url, GROUP)
    assert driver.find_element(By.ID, "chat-title").text == "Sandbox group"

    # Alice (a bot admin) asks for a deploy: a card with Approve / Deny.
    _send(driver, "!deploy prod")
    card_id = _bot_message_id(driver, lambda text: "asks to deploy" in text)
    request = _message(driver, card_id)
    assert "Alice asks to deploy prod." in request.text
    assert set(_buttons(request)) == {"Approve", "Deny"}
    driver.save_screenshot(str(screenshots / "approval-request.png"))

    # Bob is not a bot admin: his click is refused, in a reply under the card.
    _click_as(driver, "Bob", card_id, "Approve")
    refusal_id = _bot_message_id(driver, lambda text: REFUSAL in text)
    refusal = _message(driver, refusal_id)
    quote = refusal.find_element(By.CSS_SELECTOR, ".reply-quote").text
    assert quote.startswith("↩ ChatOps Bot: [interactive]"), quote
    assert _reply_to(demo, refusal_id) == card_id
    request = _message(driver, card_id)
    assert request.get_attribute("data-updates") == "0"  # the card is not approved …
    assert set(_buttons(request)) == {"Approve", "Deny"}  # … and still asks
    assert "approved" not in request.text
    assert not any("Deploying" in text or "Deployed" in text for _, text in _bot_messages(driver))
    driver.save_screenshot(str(screenshots / "approval-refused.png"))

    # Alice is: her click approves the request in place and the deploy runs in one card.
    _click_as(driver, "Alice", card_id, "Approve")
    wait_for(driver, lambda d: "approved" in _message(d, card_id).text)
    request = _message(driver, card_id)
    assert "Deploy of prod (asked by Alice) approved by Alice." in request.text
    assert _buttons(request) == {}  # decided: no more buttons
    assert request.get_attribute("data-updates") == "1"
    assert request.find_element(By.CSS_SELECTOR, ".msg-edited").text == "updated ×1"

    progress_id = _bot_message_id(driver, _is_progress, timeout=15)
    wait_for(driver, lambda d: "Deployed prod: 4/4 steps done." in _message(d, progress_id).text)
    progress = _message(driver, progress_id)
    assert int(progress.get_attribute("data-updates")) >= 2  # each step redrew the same card
    assert progress.find_element(By.CSS_SELECTOR, ".msg-edited").text.startswith("updated ×")
    assert _reply_to(demo, progress_id) == card_id  # the deploy answers under the request

    bot = _bot_messages(driver)
    assert [mid for mid, _ in bot] == [card_id, refusal_id, progress_id]
    assert sum(REFUSAL in text for _, text in bot) == 1  # Alice's click was not refused

    wait_for(driver, lambda d: not _toasts(d), timeout=10)
    _readme_picture(driver, screenshots, "approval-done.png", "approval.png")
