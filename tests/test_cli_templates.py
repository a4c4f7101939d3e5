"""``python -m lark_cards render --templates-dir DIR``: the cards the bot would send with the
user's own templates. A card Feishu would refuse is named on stderr, Feishu's way, before a
bot ever sends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from user_templates import GREEN_REPLY, WIDE_REPLY, run_cli, template_folder

from lark_cards.__main__ import main
from lark_cards.render import RenderOptions, render_markdown

MARKDOWN = "# Deploy\n\n- **prod**: ok\n- staging: `pending`\n"


def test_render_uses_the_users_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    source = tmp_path / "reply.md"
    source.write_text(MARKDOWN)
    directory = template_folder(tmp_path, GREEN_REPLY)
    assert main(["render", "--templates-dir", str(directory), str(source)]) == 0
    out, err = capsys.readouterr()
    [card] = json.loads(out)
    assert card["header"]["template"] == "green"
    assert [card] == render_markdown(MARKDOWN, options=RenderOptions(templates_dir=str(directory)))
    assert [card] != render_markdown(MARKDOWN)
    assert err == ""


def test_a_card_feishu_would_refuse_is_named_on_stderr(tmp_path: Path) -> None:
    """The real thing: a subprocess with the user's folder, markdown on stdin."""
    directory = template_folder(tmp_path, WIDE_REPLY)
    result = run_cli("render", "--templates-dir", str(directory), "-", stdin=MARKDOWN)
    assert result.returncode == 0, result.stderr.decode()
    [card] = json.loads(result.stdout)
    assert card["config"] == {"wide_screen_mode": True}  # what the bot would try first
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("python -m lark_cards render: card 1: Feishu would refuse it (230001")
    assert "wide_screen_mode" in line


def test_a_broken_template_is_named_and_the_default_rendered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    directory = template_folder(tmp_path, '{"schema": {% if %} }\n')
    source = tmp_path / "reply.md"
    source.write_text(MARKDOWN)
    assert main(["render", "--templates-dir", str(directory), str(source)]) == 0
    assert json.loads(capsys.readouterr().out) == render_markdown(MARKDOWN)
    assert f"card template {directory / 'reply.json.j2'}, line 1" in caplog.text


def test_a_missing_templates_dir_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--templates-dir", str(tmp_path / "nope"), "-"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"python -m lark_cards render: --templates-dir {tmp_path / 'nope'}: not a folder"
    ]
