"""``python -m lark_cards sandbox --templates-dir DIR``: the page's preview renders with the
user's reply template and, for one Feishu refuses, shows Feishu's answer (code and msg) and
the fallback card the bot sends instead."""

from __future__ import annotations

from pathlib import Path

from .conftest import open_page, wait_for

WIDE = """{
  "schema": "2.0",
  "config": {"wide_screen_mode": true},
  "header": {"title": {"tag": "plain_text", "content": "Mine"}, "template": "green"},
  "body": {"elements": {{ elements }}}
}
"""


def test_the_preview_shows_feishus_answer_for_a_refused_template(
    browser, processes, tmp_path: Path, screenshots: Path
):
    from selenium.webdriver.common.by import By

    directory = tmp_path / "card-templates"
    directory.mkdir()
    (directory / "reply.json.j2").write_text(WIDE)
    process = processes.python(
        "lark_cards.sandbox", "--port", "0", "--templates-dir", str(directory)
    )
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        if line.startswith("Sandbox page: "):
            url = line.split(": ", 1)[1].strip()
            break
    assert url, "the sandbox did not print its URL"
    open_page(browser, url)
    browser.find_element(By.ID, "preview-tab").click()
    box = browser.find_element(By.ID, "preview-input")
    box.clear()
    box.send_keys("**deploy** of `api` finished")
    output = browser.find_element(By.ID, "preview-output")
    before = output.get_attribute("data-rendered")
    browser.find_element(By.ID, "preview-button").click()
    wait_for(browser, lambda d: output.get_attribute("data-rendered") != before)
    error = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".preview-template-error"))
    assert str(directory / "reply.json.j2") in error.text
    answer = error.find_element(By.CSS_SELECTOR, ".preview-feishu-error").text
    assert answer.startswith('{"code":230001,"msg":"Failed to create card content')
    assert "wide_screen_mode" in answer
    assert "default reply.json.j2" in error.text
    # The card shown is the fallback, in the shipped template: no green "Mine" header.
    [card] = browser.find_elements(By.CSS_SELECTOR, ".preview-card .fs-card")
    assert "deploy" in card.text
    assert not card.find_elements(By.CSS_SELECTOR, ".tpl-green")
    browser.save_screenshot(str(screenshots / "preview-refused-template.png"))
