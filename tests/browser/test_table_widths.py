"""A paged table keeps its columns where they are from page to page, as in the Feishu client:
its columns are sized over all rows, not over the rows of the page shown."""

from __future__ import annotations

from .conftest import SandboxProcess, open_page, wait_for
from .test_cards_page import GROUP, _message, _send_card

# Page 1 short, page 2 long in the first column, page 3 long in the second.
ROWS = (
    [("a", "1") for _ in range(10)]
    + [(f"web-{n}.eu-west-1.compute.internal.example.com", "2") for n in range(10)]
    + [("b", f"a status message that goes on for a while ({n})") for n in range(5)]
)
CARD = {
    "schema": "2.0",
    "config": {"update_multi": True},
    "body": {
        "elements": [
            {
                "tag": "table",
                "page_size": 10,
                "columns": [
                    {"name": "h", "display_name": "Host", "data_type": "text"},
                    {"name": "s", "display_name": "State", "data_type": "markdown"},
                ],
                "rows": [{"h": h, "s": s} for h, s in ROWS],
            },
            {
                "tag": "markdown",
                "content": "| Host | State |\n|---|---|\n"
                + "\n".join(f"| {h} | {s} |" for h, s in ROWS[5:15]),
            },
        ]
    },
}

COLUMNS = """
return [...arguments[0].querySelectorAll('thead th')].map((th) => {
  const box = th.getBoundingClientRect();
  return [Math.round(box.left * 10) / 10, Math.round(box.width * 10) / 10];
});
"""


def test_columns_keep_their_widths_across_pages(browser, sandbox: SandboxProcess):
    from selenium.webdriver.common.by import By

    open_page(browser, sandbox.url, chat=GROUP)
    message = _message(browser, _send_card(sandbox, CARD))
    wait_for(browser, lambda d: message.find_elements(By.CSS_SELECTOR, ".fs-table"))
    tables = message.find_elements(By.CSS_SELECTOR, ".fs-table")
    for table, total, per_page in zip(tables, (25, 10), (10, 5), strict=True):
        pages = -(-total // per_page)
        assert table.get_attribute("data-pages") == str(pages)
        seen = []
        for page in range(1, pages + 1):
            assert table.get_attribute("data-page") == str(page)
            shown = [tr for tr in table.find_elements(By.CSS_SELECTOR, "tr") if tr.text]
            assert len(shown) == 1 + min(per_page, total - (page - 1) * per_page)
            seen.append(browser.execute_script(COLUMNS, table))
            if page < pages:
                table.find_element(By.CSS_SELECTOR, ".pager-next").click()
        assert all(columns == seen[0] for columns in seen), seen
        assert len(seen[0]) == 2
