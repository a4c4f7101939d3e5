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
