"""An Errbot config module for unit tests: Errbot's own template plus its defaults."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import errbot
from errbot.bootstrap import bot_config_defaults


def errbot_config(tmp_path: Path, **identity: Any) -> ModuleType:
    template = Path(errbot.__file__).parent / "config-template.py"
    spec = importlib.util.spec_from_file_location("lark_test_config", template)
    assert spec is not None
    assert spec.loader is not None
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    config.BOT_DATA_DIR = str(tmp_path)
    config.BOT_ADMINS = ("ou_admin",)
    config.BOT_ASYNC = False
    config.BOT_IDENTITY = {"app_id": "cli_test", "app_secret": "s3cret", **identity}
    bot_config_defaults(config)
    return config


BOT_OPEN_ID = "ou_bot00000000000000000000000000000"


class NoPlugins:
    """Errbot's send path asks the plugin manager for callback_botmessage receivers."""

    def get_all_active_plugins(self) -> list[Any]:
        return []


def offline_backend(config: ModuleType) -> Any:
    """A LarkCardsBackend as after connecting (bot identity known), without a loop or plugins."""
    from lark_cards.backend import LarkCardsBackend
    from lark_cards.identifiers import LarkPerson

    bot = LarkCardsBackend(config)
    bot.bot_identifier = LarkPerson(BOT_OPEN_ID, name="ChatOps Bot")
    bot.attach_plugin_manager(NoPlugins())
    return bot
