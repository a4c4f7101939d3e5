"""Cards drawn the way Feishu draws them, in real Chromium, against the sandbox alone: a
scripted bot posts cards through the Open API, clicks go back as real card callbacks, and
updates (callback answers, PATCH) appear in place."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from .conftest import SandboxProcess, open_page, wait_for

GROUP = "oc_sandboxgroup000000000000000000000"


def _png(width: int = 60, height: int = 30, rgb: tuple[int, int, int] = (51, 112, 255)) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def _upload_png(sandbox: SandboxProcess) -> str:
    boundary = "sandboxboundary"
    disposition = f"--{boundary}\r\nContent-Disposition: form-data; name="
    parts = [
        f'{disposition}"image_type"\r\n\r\nmessage\r\n'.encode(),
        f'{disposition}"image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'.encode(),
        _png(),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    body = sandbox.api("POST", "/open-apis/im/v1/images", form=b"".join(parts),
                       content_type=f"multipart/form-data; boundary={boundary}")  # fmt: skip
    assert body["code"] == 0, body
    return body["data"]["image_key"]


def _send_card(sandbox: SandboxProcess, card: dict[str, Any]) -> str:
    body = sandbox.api(
        "POST",
        "/open-apis/im/v1/messages?receive_id_type=chat_id",
        {"receive_id": GROUP, "msg_type": "interactive", "content": json.dumps(card)},
    )
    assert body["code"] == 0, body
    return body["data"]["message_id"]


def _message(driver, message_id: str):
    from selenium.webdriver.common.by import By

    return wait_for(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, f'.msg[data-message-id="{message_id}"]')
    )


APPROVAL = {
    "schema": "2.0",
    "config": {"update_multi": True},
    "header": {
        "title": {"tag": "plain_text", "content": "Deploy api-gateway to prod?"},
        "subtitle": {"tag": "plain_text", "content": "requested by Alice"},
        "template": "orange",
    },
    "body": {
        "elements": [
            {"tag": "markdown", "content": "**4.2.0** · <font color='red'>3 migrations</font>"},
            {
                "tag": "column_set",
                "columns": [
                    {"tag": "column", "width": "weighted", "weight": 1, "elements": [
                        {"tag": "button", "text": {"tag": "plain_text", "content": "Approve"},
                         "type": "primary_filled",
                         "behaviors": [{"type": "callback", "value": {"cmd": "!deploy prod"}}]}]},
                    {"tag": "column", "width": "weighted", "weight": 1, "elements": [
                        {"tag": "button", "text": {"tag": "plain_text", "content": "Deny"},
                         "type": "danger",
                         "behaviors": [{"type": "callback", "value": {"cmd": "!deny"}}]}]},
                ],
            },
        ]
    },
}  # fmt: skip


def _done_card(text: str, template: str) -> dict[str, Any]:
    return {
        "schema": "2.0",
        "config": {"update_multi": True},
        "header": {"title": {"tag": "plain_text", "content": text}, "template": template},
        "body": {
            "elements": [{"tag": "markdown", "content": f"<font color='green'>{text}</font>"}]
        },
    }


def test_a_button_click_is_a_real_callback_and_updates_appear_in_place(
    browser, sandbox: SandboxProcess, screenshots: Path
):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, sandbox.url)
    message_id = _send_card(sandbox, APPROVAL)
    message = _message(driver, message_id)
    header = message.find_element(By.CSS_SELECTOR, ".fs-card-header")
    assert header.get_attribute("data-template") == "orange"
    assert header.value_of_css_property("background-color") == "rgba(254, 234, 210, 1)"
    assert "Deploy api-gateway to prod?" in header.text
    assert len(message.find_elements(By.CSS_SELECTOR, ".fs-column-set .fs-column")) == 2
    driver.save_screenshot(str(screenshots / "cards-approval.png"))

    sandbox.bot.answers.append(
        {
            "toast": {"type": "success", "content": "Running !deploy prod…"},
            "card": {"type": "raw", "data": _done_card("Deploying…", "blue")},
        }
    )
    driver.find_element(By.ID, "sender-select").send_keys("Bob")
    message.find_element(By.XPATH, ".//button[normalize-space()='Approve']").click()
    wait_for(driver, lambda d: _message(d, message_id).get_attribute("data-updates") == "1")
    toast = wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".toast-success"))
    assert toast.text == "Running !deploy prod…"
    [callback] = sandbox.bot.received
    assert callback["event_type"] == "card.action.trigger"
    assert callback["event"]["action"]["value"] == {"cmd": "!deploy prod"}
    assert callback["event"]["operator"]["open_id"] == "ou_bob00000000000000000000000000000"
    assert callback["event"]["context"]["open_message_id"] == message_id
    updated = _message(driver, message_id)
    assert "Deploying…" in updated.find_element(By.CSS_SELECTOR, ".fs-card-header").text
    assert len(driver.find_elements(By.CSS_SELECTOR, f'[data-message-id="{message_id}"]')) == 1

    # A later PATCH (progress, §4.3) redraws the same message again.
    patched = sandbox.api(
        "PATCH",
        f"/open-apis/im/v1/messages/{message_id}",
        {"content": json.dumps(_done_card("Deployed ✅", "green"))},
    )
    assert patched["code"] == 0
    wait_for(driver, lambda d: _message(d, message_id).get_attribute("data-updates") == "2")
    header = _message(driver, message_id).find_element(By.CSS_SELECTOR, ".fs-card-header")
    assert "Deployed ✅" in header.text
    assert header.get_attribute("data-template") == "green"
    driver.save_screenshot(str(screenshots / "cards-approval-updated.png"))


MARKDOWN = (
    "- one\n    - nested **bold**\n1. first\n\n> quoted `code`\n\n```python\nprint('hi')\n```\n"
    "[docs](https://example.com) &#42;not italic&#42; "
    '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
)


def test_tables_images_markdown_and_the_json_toggle(
    browser, sandbox: SandboxProcess, screenshots: Path
):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, sandbox.url)
    key = _upload_png(sandbox)
    rows = "\n".join(f"| host-{n} | {n * 10}% |" for n in range(1, 8))
    card = {
        "schema": "2.0",
        "config": {"update_multi": True},
        "header": {"title": {"tag": "plain_text", "content": "Fleet"}, "template": "turquoise"},
        "body": {
            "elements": [
                {"tag": "markdown", "content": f"## Hosts\n\n| Host | CPU |\n|---|--:|\n{rows}"},
                {"tag": "hr"},
                {
                    "tag": "table",
                    "page_size": 2,
                    "columns": [
                        {"name": "h", "display_name": "Host", "data_type": "text"},
                        {"name": "s", "display_name": "State", "data_type": "options"},
                        {"name": "n", "display_name": "Load", "data_type": "number",
                         "format": {"precision": 1}},
                    ],
                    "rows": [
                        {"h": "web-01", "s": [{"text": "up", "color": "green"}], "n": 0.25},
                        {"h": "web-02", "s": [{"text": "down", "color": "red"}], "n": 3},
                        {"h": "web-03", "s": [{"text": "up", "color": "green"}], "n": 1},
                    ],
                },
                {"tag": "img", "img_key": key, "alt": {"tag": "plain_text", "content": "chart"}},
                {"tag": "markdown", "content": MARKDOWN},
            ]
        },
    }  # fmt: skip
    message = _message(driver, _send_card(sandbox, card))

    tables = message.find_elements(By.CSS_SELECTOR, ".fs-table")
    assert len(tables) == 2
    markdown_table, native = tables
    assert markdown_table.get_attribute("data-pages") == "2"  # 7 rows, 5 per page in markdown
    assert len(markdown_table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 5
    markdown_table.find_element(By.CSS_SELECTOR, ".pager-next").click()
    assert len(markdown_table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    assert native.get_attribute("data-pages") == "2"  # page_size 2, 3 rows
    cells = [td.text for td in native.find_elements(By.CSS_SELECTOR, "tbody td")]
    assert cells == ["web-01", "up", "0.3", "web-02", "down", "3.0"]
    assert native.find_element(By.CSS_SELECTOR, ".tag-red").text == "down"

    image = message.find_element(By.CSS_SELECTOR, ".fs-img img")
    wait_for(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", image) == 60)
    assert message.find_element(By.CSS_SELECTOR, "ul ul li strong").text == "bold"
    assert message.find_element(By.CSS_SELECTOR, "ol li").text == "first"
    assert message.find_element(By.CSS_SELECTOR, "blockquote code").text == "code"
    assert (
        message.find_element(By.CSS_SELECTOR, "pre.md-code-block").get_attribute("data-lang")
        == "python"
    )
    link = message.find_element(By.CSS_SELECTOR, "a.md-link")
    assert link.get_attribute("href") == "https://example.com/"
    body_text = message.text
    assert "*not italic*" in body_text  # &#42; is a literal star, not emphasis
    assert "<script>" in body_text  # raw HTML is shown as text …
    assert driver.execute_script("return window.__xss") is None  # … and never runs
    assert message.find_elements(By.CSS_SELECTOR, ".fs-card script") == []

    raw = message.find_element(By.CSS_SELECTOR, ".card-json")
    assert not raw.is_displayed()
    message.find_element(By.CSS_SELECTOR, ".json-toggle").click()
    assert json.loads(raw.text) == card
    driver.save_screenshot(str(screenshots / "cards-kitchen-sink.png"))


def test_preview_shows_cards_and_budgets(browser, sandbox: SandboxProcess, screenshots: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    open_page(driver, sandbox.url)
    driver.find_element(By.ID, "preview-tab").click()
    output = driver.find_element(By.ID, "preview-output")
    select = Select(driver.find_element(By.ID, "sample-select"))
    budgets = next(o.text for o in select.options if o.text.startswith("Budgets"))
    select.select_by_visible_text(budgets)
    wait_for(driver, lambda d: output.get_attribute("data-rendered"))
    assert len(driver.find_elements(By.CSS_SELECTOR, ".preview-card")) >= 2
    summary = driver.find_element(By.CSS_SELECTOR, ".preview-summary").text
    assert summary.endswith("cards")
    # At 1280 px the longest sample title must not push the dropdown over the card count.
    assert driver.execute_script("return window.innerWidth") == 1280
    dropdown = _box(driver, "#sample-select")
    count = _box(driver, ".preview-summary")
    assert not _overlap(dropdown, count), (dropdown, count)
    first = driver.find_elements(By.CSS_SELECTOR, ".preview-card")[0]
    labels = [b.text for b in first.find_elements(By.CSS_SELECTOR, ".budget-label")]
    assert labels == ["bytes", "components", "tables"]
    assert first.find_elements(By.CSS_SELECTOR, ".fs-card table")
    assert not driver.find_elements(By.CSS_SELECTOR, ".budget.over")
    driver.save_screenshot(str(screenshots / "preview-budgets.png"))

    box = driver.find_element(By.ID, "preview-input")
    box.clear()
    box.send_keys("Inline `red`{:color='red'} and a [link](https://example.com)")
    before = output.get_attribute("data-rendered")
    driver.find_element(By.ID, "preview-button").click()
    # Wait for this render, not for cards the Budgets preview already drew (it has colours
    # too): a new data-rendered and the one card this markdown makes.
    wait_for(
        driver,
        lambda d: (
            output.get_attribute("data-rendered") != before
            and d.find_element(By.CSS_SELECTOR, ".preview-summary").text == "1 card"
        ),
    )
    assert len(driver.find_elements(By.CSS_SELECTOR, ".preview-card")) == 1
    assert driver.find_elements(By.CSS_SELECTOR, ".preview-card .md-font")


def _box(driver, selector: str) -> tuple[float, float, float, float]:
    """The element's bounding box in the viewport: left, top, right, bottom."""
    rect = driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [r.left, r.top, r.right, r.bottom];",
        selector,
    )
    return tuple(rect)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("chat", ["direct"])
def test_the_direct_chat_sends_as_alice(browser, sandbox: SandboxProcess, chat: str):
    from selenium.webdriver.common.by import By

    driver = browser
    open_page(driver, sandbox.url)
    driver.find_element(By.XPATH, "//li[.//span[text()='direct']]").click()
    box = driver.find_element(By.ID, "composer-input")
    box.send_keys("!whoami")
    driver.find_element(By.ID, "send-button").click()
    wait_for(driver, lambda d: sandbox.bot.received)
    event = sandbox.bot.received[0]
    assert event["event_type"] == "im.message.receive_v1"
    assert event["event"]["message"]["chat_type"] == "p2p"
    assert event["event"]["sender"]["sender_id"]["open_id"] == "ou_alice000000000000000000000000000"
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".msg-delivery.delivery-delivered"))
