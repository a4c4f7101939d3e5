"""The demo page in real Chromium: Errbot's own commands come back as Feishu cards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ROOT, Demo

pytestmark = pytest.mark.e2e

GROUP = "oc_sandboxgroup000000000000000000000"
UPDATE_DOCS = os.environ.get("LARK_CARDS_UPDATE_DOCS") == "1"


def _wait(driver, condition, timeout: float = 30):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A message redrawn in place (PATCH) replaces its element: look it up again.
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition)


def _send(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "composer-input")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "send-button").click()


def _bot_cards(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, ".msg.from-bot .fs-card")


def test_help_and_render_test_arrive_as_cards_with_tables_and_colours(
    browser, demo: Demo, screenshots: Path
):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(demo.url)
    _wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    driver.find_element(By.CSS_SELECTOR, f'.chat-item[data-chat-id="{GROUP}"]').click()

    _send(driver, "!help")
    _wait(driver, lambda d: len(_bot_cards(d)) >= 1)
    help_card = _bot_cards(driver)[0]
    assert "All commands" in help_card.text
    assert "!help" in help_card.text
    driver.save_screenshot(str(screenshots / "demo-help.png"))

    _send(driver, "!render test")
    _wait(driver, lambda d: any(c.find_elements(By.CSS_SELECTOR, "table") for c in _bot_cards(d)))
    card = next(c for c in _bot_cards(driver) if c.find_elements(By.CSS_SELECTOR, "table"))
    headers = [th.text for th in card.find_elements(By.CSS_SELECTOR, "table th")]
    assert headers[:2] == ["First Header", "Second Header"]
    assert "Content Cell" in card.find_element(By.CSS_SELECTOR, "table tbody").text
    colours = {
        span.value_of_css_property("color")
        for span in card.find_elements(By.CSS_SELECTOR, ".md-font")
    }
    assert "rgba(245, 74, 69, 1)" in colours  # Feishu's red, from {:color='red'}
    assert "rgba(51, 112, 255, 1)" in colours  # blue
    assert card.find_elements(By.CSS_SELECTOR, "h1.md-h1")
    assert card.find_elements(By.CSS_SELECTOR, "pre.md-code-block")

    message = card.find_element(By.XPATH, "./ancestor::div[contains(@class, 'msg')]")
    message.location_once_scrolled_into_view  # noqa: B018 - scrolls the card into view
    driver.save_screenshot(str(screenshots / "demo-render-test.png"))

    raw = message.find_element(By.CSS_SELECTOR, ".card-json")
    assert not raw.is_displayed()
    message.find_element(By.CSS_SELECTOR, ".json-toggle").click()
    _wait(driver, lambda d: raw.is_displayed())
    shown = json.loads(raw.text)
    assert shown["schema"] == "2.0"
    assert any(e["tag"] == "table" for e in shown["body"]["elements"]) or "|" in raw.text
    driver.save_screenshot(str(screenshots / "demo-json-toggle.png"))


def test_status_card_for_the_readme(browser, demo: Demo, screenshots: Path):
    """``!status``: a table with coloured states; the README's picture (docs/demo.png) is this
    screen, refreshed with ``LARK_CARDS_UPDATE_DOCS=1``."""
    from selenium.webdriver.common.by import By

    driver = browser
    driver.set_window_size(1280, 1180)
    driver.get(demo.url)
    _wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    _send(driver, "!status")
    _wait(driver, lambda d: any("Plugins" in c.text for c in _bot_cards(d)))
    card = _bot_cards(driver)[-1]
    rows = card.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert rows
    assert card.find_element(By.CSS_SELECTOR, ".fs-table-pager .pager-label").text.startswith(
        "1 / "
    )
    green = {
        s.value_of_css_property("color") for s in card.find_elements(By.CSS_SELECTOR, ".md-font")
    }
    assert "rgba(46, 161, 33, 1)" in green  # "A" (activated) in Feishu's green
    _send(driver, "!whoami")
    _wait(driver, lambda d: len(_bot_cards(d)) >= 2)
    question = driver.find_elements(By.CSS_SELECTOR, ".msg.from-user")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", question)
    driver.save_screenshot(str(screenshots / "demo-status.png"))
    if UPDATE_DOCS:
        (ROOT / "docs").mkdir(exist_ok=True)
        driver.save_screenshot(str(ROOT / "docs" / "demo.png"))
