"""The page draws what the Python renderer writes: every golden case of the renderer
(``tests/fixtures/render/*.md``' expected elements and ``tests/golden/*.json``' whole cards) is
drawn by static/cards.js in real Chromium and must show, per case, exactly the words a Feishu
client shows (worked out in Python, ``card_text``), every table with its columns and all its
rows, headers in their colour, no "unsupported component" and no raw markup. A renderer change
the page cannot draw, or a page change that draws it differently, fails here by case name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markdown_it.utils import read_fixture_file

from . import card_text
from .conftest import SandboxProcess, open_page

TESTS = Path(__file__).resolve().parents[1]
# What must never show outside code: markdown the page failed to read, entities not decoded.
RAW_MARKERS = ("**", "|---", "|:-", "&#", "&lt;", "&gt;", "&amp;", "<font", "<text_tag")

DRAW = """
const cards = arguments[0];
const host = document.createElement('div');
host.style.width = '720px';
document.body.appendChild(host);
const text = (node) => node.innerText.split(/\\s+/).filter(Boolean);
const out = cards.map((card) => {
  const node = window.FeishuCard.render(card, {people: {}});
  host.replaceChildren(node);
  node.querySelectorAll('details').forEach((d) => { d.open = true; });
  const tables = [...node.querySelectorAll('.fs-table')].map((table) => {
    const headers = [...table.querySelectorAll('thead th')].map((th) => text(th).join(' '));
    const rows = [];
    const pages = Number(table.dataset.pages);
    for (let page = 1; page <= pages; page += 1) {
      table.querySelectorAll('tbody tr').forEach((tr) =>
        rows.push([...tr.children].map((td) => text(td).join(' '))));
      const next = table.querySelector('.pager-next');
      if (page < pages) next.click();
    }
    return {headers, rows, pages, columns: table.querySelectorAll('thead th').length};
  });
  node.querySelectorAll('.fs-table').forEach((t) => { t.style.display = 'none'; });
  const words = text(node);
  node.querySelectorAll('pre, code').forEach((c) => { c.style.display = 'none'; });
  const header = node.querySelector('.fs-card-header');
  return {
    words, tables,
    prose: node.innerText,
    unsupported: [...node.querySelectorAll('.fs-unsupported')].map((n) => n.textContent),
    header: header && {
      template: header.dataset.template,
      background: getComputedStyle(header).backgroundColor,
    },
  };
});
host.remove();
return out;
"""


def _cases() -> list[tuple[str, list[dict[str, Any]]]]:
    """(name, cards): each fixture case as one card of its elements, each golden file's cards,
    and the two looks the renderer gives now (a heading as header, an Errbot refusal)."""
    from lark_cards.render import render_markdown, render_template

    cases = []
    for path in sorted((TESTS / "fixtures" / "render").glob("*.md")):
        for line, title, _markdown, expected in read_fixture_file(path):
            card = {"schema": "2.0", "body": {"elements": json.loads(expected)}}
            cases.append((f"{path.name}:{line} {title}", [card]))
    for path in sorted((TESTS / "golden").glob("*.json")):
        value = json.loads(path.read_text(encoding="utf-8"))
        cases.append((path.name, value if isinstance(value, list) else [value]))
    cases.append(("heading as header", render_markdown("# Deploy done\n\n**api** is up")))
    refusal = {"title": "Command not found", "message": 'Command "x" not found.', "color": "orange"}
    cases.append(("error template", [render_template("error", refusal)]))
    return cases


def _problems(name: str, card: dict[str, Any], drawn: dict[str, Any]) -> list[str]:
    expected = card_text.card(card)
    problems = []
    if drawn["unsupported"]:
        problems.append(f"not drawn: {drawn['unsupported']}")
    if drawn["words"] != expected.words:
        problems.append(f"words differ:\n  page:   {drawn['words']}\n  python: {expected.words}")
    want = [table.as_dict() for table in expected.tables]
    got = [{key: t[key] for key in ("headers", "rows", "pages")} for t in drawn["tables"]]
    if got != want:
        problems.append(f"tables differ:\n  page:   {got}\n  python: {want}")
    for table in drawn["tables"]:
        if any(len(row) != table["columns"] for row in table["rows"]):
            problems.append(f"a row without {table['columns']} cells: {table['rows']}")
    for marker in RAW_MARKERS:
        if marker in drawn["prose"]:
            problems.append(f"raw {marker!r} shows: {drawn['prose']!r}")
    header = card.get("header")
    if header:
        if not drawn["header"] or drawn["header"]["template"] != header.get("template", "default"):
            problems.append(f"header {header} drawn as {drawn['header']}")
        elif header.get("template", "default") != "default" and drawn["header"]["background"] in (
            "rgb(255, 255, 255)",
            "rgba(0, 0, 0, 0)",
        ):
            problems.append(f"header template {header['template']} has no colour")
    elif drawn["header"]:
        problems.append(f"a header the card does not have: {drawn['header']}")
    return [f"{name}: {problem}" for problem in problems]


def test_the_page_draws_every_golden_case_as_the_renderer_wrote_it(
    browser, sandbox: SandboxProcess
):
    open_page(browser, sandbox.url)
    cases = _cases()
    assert len(cases) > 30
    problems: list[str] = []
    for name, cards in cases:
        drawn = browser.execute_script(DRAW, cards)
        for number, (card, one) in enumerate(zip(cards, drawn, strict=True), start=1):
            problems += _problems(f"{name} card {number}", card, one)
    assert not problems, "\n".join(problems)
