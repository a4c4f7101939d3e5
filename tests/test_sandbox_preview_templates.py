"""The sandbox's card preview renders with the user's templates (``--templates-dir``, as
``LARK_CARDS["templates_dir"]``). A user template that is broken, or whose card Feishu would
refuse, is named with Feishu's answer (code + msg, as im/v1 gives it), and the preview shows
what the bot sends instead: the reply made with the shipped template."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from user_templates import GREEN_REPLY, WIDE_REPLY, template_folder

from lark_cards.api.errors import INVALID_PARAM
from lark_cards.render import RenderOptions, render_markdown
from lark_cards.sandbox.cli import add_arguments
from lark_cards.sandbox.runner import Sandbox, SandboxConfig

MARKDOWN = "**deploy** of `api` finished\n\n- web-1 up\n- web-2 up\n"
GREEN, WIDE = GREEN_REPLY, WIDE_REPLY
BROKEN = '{"schema": {% if %} }\n'


def _folder(tmp_path: Path, reply: str | None) -> str:
    return str(template_folder(tmp_path, reply, "card-templates"))


@pytest.fixture
async def preview(tmp_path: Path) -> AsyncIterator[Any]:
    sandboxes: list[Sandbox] = []

    async def ask(reply: str | None, markdown: str = MARKDOWN) -> dict[str, Any]:
        sandbox = Sandbox(SandboxConfig(port=0, templates_dir=_folder(tmp_path, reply)))
        sandboxes.append(sandbox)
        await sandbox.start()
        async with (
            aiohttp.ClientSession() as session,
            session.post(sandbox.url + "/api/preview", json={"markdown": markdown}) as response,
        ):
            assert response.status == 200
            return await response.json()

    yield ask
    for sandbox in sandboxes:
        await sandbox.stop()


async def test_the_users_template_is_used(preview, tmp_path: Path) -> None:
    body = await preview(GREEN)
    directory = str(tmp_path / "card-templates")
    [figures] = body["cards"]
    assert figures["card"]["header"]["template"] == "green"
    assert [figures["card"]] == render_markdown(
        MARKDOWN, options=RenderOptions(templates_dir=directory)
    )
    assert figures["problems"] == []
    assert body["template"] == {
        "dir": directory,
        "used": str(Path(directory) / "reply.json.j2"),
        "fallback": False,
    }
    assert "refused" not in body


async def test_a_folder_without_a_reply_template_renders_the_default(preview) -> None:
    body = await preview(None)
    assert [c["card"] for c in body["cards"]] == render_markdown(MARKDOWN)
    assert body["template"]["used"] is None


async def test_a_card_feishu_refuses_shows_feishus_answer_and_the_fallback(preview) -> None:
    body = await preview(WIDE)
    template = body["template"]
    assert template["fallback"] is True
    assert template["error"]["code"] == INVALID_PARAM
    assert template["error"]["msg"].startswith("Failed to create card content, ext=ErrCode: ")
    assert "wide_screen_mode" in template["error"]["msg"]
    [refused] = body["refused"]
    assert refused["card"]["config"] == {"wide_screen_mode": True}
    assert [p["code"] for p in refused["problems"]] == [INVALID_PARAM]
    # What reaches the chat: the same reply in the shipped template, which Feishu takes.
    assert [c["card"] for c in body["cards"]] == render_markdown(MARKDOWN)
    assert all(c["problems"] == [] for c in body["cards"])


async def test_a_broken_template_is_named_and_the_default_shown(preview, tmp_path) -> None:
    body = await preview(BROKEN)
    error = body["template"]["error"]
    assert error["code"] is None  # never reaches Feishu: the bot uses the default at once
    assert error["msg"].startswith(f"card template {tmp_path / 'card-templates' / 'reply.json.j2'}")
    assert "line 1" in error["msg"]
    assert body["template"]["fallback"] is True
    assert [c["card"] for c in body["cards"]] == render_markdown(MARKDOWN)


async def test_without_templates_dir_the_preview_is_as_before() -> None:
    sandbox = Sandbox(SandboxConfig(port=0))
    await sandbox.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(sandbox.url + "/api/preview", json={"markdown": MARKDOWN}) as response,
        ):
            body = await response.json()
    finally:
        await sandbox.stop()
    assert "template" not in body
    assert [c["card"] for c in body["cards"]] == render_markdown(MARKDOWN)


def test_the_cli_takes_a_templates_folder(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="sandbox")
    add_arguments(parser)
    directory = _folder(tmp_path, GREEN)
    assert parser.parse_args(["--templates-dir", directory]).templates_dir == directory
    assert parser.parse_args([]).templates_dir is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--templates-dir", str(tmp_path / "nowhere")])
    assert "nowhere: not a folder" in capsys.readouterr().err


def test_the_demo_bot_gets_the_same_templates(tmp_path: Path) -> None:
    """``make demo DEMO_ARGS="--templates-dir DIR"``: errbot's config names the folder too, so
    the chat shows what the preview shows."""
    import importlib.util

    from lark_cards.sandbox.demo import write_config

    directory = _folder(tmp_path, GREEN)
    for templates_dir in (directory, None):
        sandbox = Sandbox(SandboxConfig(port=0, templates_dir=templates_dir))
        sandbox.url = "http://127.0.0.1:9000"
        spec = importlib.util.spec_from_file_location(
            "demo_config", write_config(tmp_path, sandbox)
        )
        assert spec is not None
        assert spec.loader is not None
        config = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(config)
        lark_cards = config.LARK_CARDS
        assert lark_cards == {"upload_images": False, "templates_dir": templates_dir}
