"""The page's Feishu-markdown renderer (static/markdown.js), run in real Chromium: the §5.6
subset becomes the right elements, and nothing in the text can become markup or script."""

from __future__ import annotations

import pytest

from .conftest import SandboxProcess, open_page

RED = '<span class="md-font" style="color: rgb(245, 74, 69);">'
BLUE = '<span class="md-font" style="color: rgb(51, 112, 255);">'
LINK = '<a class="md-link" href="https://a.example/x" target="_blank" rel="noopener noreferrer">'
CASES = [
    ("**bold** *em* ~~gone~~",
     '<strong class="md-strong">bold</strong> <em class="md-em">em</em> '
     '<del class="md-del">gone</del>'),
    ("***both***", '<strong class="md-strong"><em class="md-em">both</em></strong>'),
    ("snake_case_name", "snake_case_name"),
    ("__init__", '<strong class="md-strong">init</strong>'),  # as CommonMark reads it
    ("&#42;not em&#42; &#60;b&#62;", "*not em* &lt;b&gt;"),
    ("`a*b*` code", '<code class="md-code-inline">a*b*</code> code'),
    ("line one\nline two", "line one<br>line two"),
    ("<font color='red'>r <font color='blue'>b</font></font>",
     f"{RED}r {BLUE}b</span></span>"),
    ("<font color='expression(alert(1))'>x</font>", '<span class="md-font">x</span>'),
    ("<text_tag color='red'>P1</text_tag>", '<span class="md-text-tag tag-red">P1</span>'),
    ("[ok](https://a.example/x) [bad](javascript:alert(1))", f"{LINK}ok</a> <span>bad</span>"),
    ("![remote](https://evil.example/x.png)", "[image https://evil.example/x.png]"),
    ("<at id=all></at> <at id=ou_bot00000000000000000000000000000></at>",
     '<span class="md-at">@all</span> <span class="md-at">@ChatOps Bot</span>'),
    (":OK: :DONE:", "👌 ✅"),
    ("<b onmouseover=alert(1)>x</b>", "&lt;b onmouseover=alert(1)&gt;x&lt;/b&gt;"),
]  # fmt: skip

BLOCKS = [
    ("# H1\n###### H6", ["h1", "h6"]),
    ("- a\n    - b\n- c", ["ul", "li", "ul", "li", "li"]),
    ("3. three\n4. four", ["ol", "li", "li"]),
    ("> quote\n> more", ["blockquote", "p"]),
    ("```go\nfmt.Println()\n```", ["pre", "code"]),
    ("a\n\n---\n\nb", ["p", "hr", "p"]),
    (
        "| a | b |\n|---|:-:|\n| 1 | 2 |",
        ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"],
    ),
]


def _render(driver, text: str, *, html: bool = True) -> str:
    script = (
        "const node = window.FeishuMarkdown.render(arguments[0], {people: "
        "{'ou_bot00000000000000000000000000000': 'ChatOps Bot'}});"
        "return arguments[1] ? node.firstChild.innerHTML : "
        "[...node.querySelectorAll('*')].map(e => e.tagName.toLowerCase()).join(' ');"
    )
    return driver.execute_script(script, text, html)


@pytest.fixture
def page(browser, sandbox: SandboxProcess):
    open_page(browser, sandbox.url)
    return browser


def test_inline_markdown(page):
    for text, expected in CASES:
        assert _render(page, text) == expected, text
    assert page.execute_script("return window.__xss") is None


def test_block_markdown(page):
    for text, tags in BLOCKS:
        rendered = _render(page, text, html=False).split()
        assert [t for t in rendered if t in set(tags)] == tags, (text, rendered)
    ordered = page.execute_script(
        "return window.FeishuMarkdown.render('3. a').querySelector('ol').start"
    )
    assert ordered == 3
