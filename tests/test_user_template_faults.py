"""Found in review: user templates and the Python-built reply card.

- A user template the bot cannot *read* (permission denied, an I/O error: a templates folder
  deployed by another user, a network share) escapes ``CardTemplates.render`` as a raw
  ``OSError``: the reply is lost, ``render --templates-dir`` prints a traceback and the
  sandbox preview answers 500 — though templates.py promises "anything a user template does
  wrong must not lose the message".
- The builtin reply card (render/builtin.py) must equal the shipped reply.json.j2 on the
  contexts the renderer really makes — with a header title and colour, which
  tests/test_render_measures.py never passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lark_cards.render import RenderOptions, render_markdown
from lark_cards.render.templates import DEFAULT_TEMPLATE_DIR
from lark_cards.sandbox.preview import preview

ROOT = Path(__file__).resolve().parent.parent


def unreadable_template(folder: Path) -> Path:
    """A ``reply.json.j2`` that is a file but cannot be read: mode 000 for a normal user;
    as root (which reads anything) a link to /proc/self/mem, whose read() fails with EIO."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reply.json.j2"
    if os.geteuid() == 0:
        if not Path("/proc/self/mem").exists():
            pytest.skip("no unreadable file to make as root")
        path.symlink_to("/proc/self/mem")
    else:
        path.write_text("{}")
        path.chmod(0)
    assert path.is_file()
    return path


def test_an_unreadable_user_template_falls_back_to_the_shipped_one(tmp_path: Path):
    """templates.py _render catches TemplateSyntaxError and UnicodeDecodeError from
    ``env.get_template`` but not OSError (jinja2's FileSystemLoader opens and reads the
    file). Fix: catch OSError there too and raise _Broken naming the file."""
    folder = tmp_path / "tpl"
    unreadable_template(folder)
    [card] = render_markdown("# Hi\n\nbody", options=RenderOptions(templates_dir=str(folder)))
    assert card["header"]["title"]["content"] == "Hi"


def test_the_preview_names_an_unreadable_template_instead_of_failing(tmp_path: Path):
    folder = tmp_path / "tpl"
    unreadable_template(folder)
    result = preview("# Hi\n\nbody", templates_dir=str(folder))  # the page's /api/preview: 500
    assert result["template"]["fallback"] is True


def test_render_cli_says_one_line_for_an_unreadable_template(tmp_path: Path):
    folder = tmp_path / "tpl"
    unreadable_template(folder)
    done = subprocess.run(
        [sys.executable, "-m", "lark_cards", "render", "--templates-dir", str(folder)],
        input="# Hi\n\nbody\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    assert done.returncode == 0


# ----- builtin reply card == reply.json.j2, with headers -----------------------------------------

TITLE_CHARS = st.sampled_from(list("ab \"'\\<>&{}%#*_`~|🎉中\u200b\t")) | st.characters(
    exclude_categories=("Cs", "Cc")
)
TITLE = st.lists(TITLE_CHARS, min_size=1, max_size=40).map("".join)
COLOR = st.sampled_from(["", " {: color='red'}", " {: color='#00ff00'}", " {: color='nope'}"])
BODY = st.sampled_from(
    [
        "body",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "```py\nx = 1\n```",
        "- one\n- two",
        ("lorem ipsum " * 400 + "\n\n") * 8,  # splits into parts
    ]
)


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shipped templates as a *user* folder: reply.json.j2 then goes through jinja2."""
    folder = tmp_path_factory.mktemp("shipped")
    shutil.copy(DEFAULT_TEMPLATE_DIR / "reply.json.j2", folder / "reply.json.j2")
    return str(folder)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(level=st.integers(1, 6), title=TITLE, color=COLOR, body=BODY)
def test_builtin_and_jinja_reply_cards_agree_with_headers(
    shipped_copy: str, level: int, title: str, color: str, body: str
) -> None:
    text = f"{'#' * level} {title}{color}\n\n{body}"
    builtin: list[dict[str, Any]] = render_markdown(text)
    jinja = render_markdown(text, options=RenderOptions(templates_dir=shipped_copy))
    assert builtin == jinja
