"""The demo page in real Chromium: Errbot's own commands come back as Feishu cards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ROOT, Demo, open_page, wait_for

pytestmark = pytest.mark.e2e

GROUP = "oc_sandboxgroup000000000000000000000"
UPDATE_DOCS = os.environ.get("LARK_CARDS_UPDATE_DOCS") == "1"


def _send(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "composer-input")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "send-button").click()


def _readme_picture(driver, screenshots: Path, name: str, docs_name: str) -> None:
    """The conversation from its first question, saved as ``screenshots/<name>`` and, with
    ``LARK_CARDS_UPDATE_DOCS=1``, as the README's ``docs/<docs_name>``."""
    from selenium.webdriver.common.by import By

    question = driver.find_elements(By.CSS_SELECTOR, ".msg.from-user")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", question)
    driver.save_screenshot(str(screenshots / name))
    if UPDATE_DOCS:
        (ROOT / "docs").mkdir(exist_ok=True)
        driver.save_screenshot(str(ROOT / "docs" / docs_name))


def _bot_cards(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, ".msg.from-bot .fs-card")


def test_help_and_render_test_arrive_as_cards_with_tables_and_colours(
    browser, demo: Demo, screenshots: Path
):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, demo.url, GROUP)

    _send(driver, "!help")
    wait_for(driver, lambda d: len(_bot_cards(d)) >= 1)
    help_card = _bot_cards(driver)[0]
    assert "All commands" in help_card.text
    assert "!help" in help_card.text
    driver.save_screenshot(str(screenshots / "demo-help.png"))

    _send(driver, "!render test")
    wait_for(
        driver, lambda d: any(c.find_elements(By.CSS_SELECTOR, "table") for c in _bot_cards(d))
    )
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
    wait_for(driver, lambda d: raw.is_displayed())
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
    open_page(driver, demo.url)
    _send(driver, "!status")
    wait_for(driver, lambda d: any("Plugins" in c.text for c in _bot_cards(d)))
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
    wait_for(driver, lambda d: len(_bot_cards(d)) >= 2)
    _readme_picture(driver, screenshots, "demo-status.png", "demo.png")


def test_the_demo_runs_over_the_long_connection_and_heals_a_dropped_socket(
    browser, demo: Demo, screenshots: Path
):
    """``make demo``'s default: the bot opened no port, it connected to the sandbox. The
    page's Drop button cuts that socket as a network would; the bot connects again (the page
    shows a new connection) and the next command is answered, once."""
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, demo.url, GROUP)
    summary = driver.find_element(By.ID, "longconn-summary")
    wait_for(driver, lambda d: summary.text.startswith("Long connection: 1 connected"))
    (first,) = driver.find_elements(By.CSS_SELECTOR, "#connection-list li.connection")
    first_id = first.get_attribute("data-connection-id")
    drop = next(
        b for b in first.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Drop"
    )
    drop.click()

    def reconnected(d) -> bool:
        items = d.find_elements(By.CSS_SELECTOR, "#connection-list li.connection")
        ids = [item.get_attribute("data-connection-id") for item in items]
        return bool(ids) and first_id not in ids

    wait_for(driver, reconnected, timeout=20)
    assert summary.text.startswith("Long connection: 1 connected")
    driver.save_screenshot(str(screenshots / "demo-longconn-reconnected.png"))
    before = len(_bot_cards(driver))
    _send(driver, "!echo still here")
    wait_for(driver, lambda d: len(_bot_cards(d)) > before)
    assert "still here" in _bot_cards(driver)[-1].text
    assert not any("--bot-port" in line or "healthz" in line for line in demo.lines)
