"""``LARK_CARDS["state_url"]``: the accepted forms, and one line naming the key for others."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lark_cards.settings import ConfigError, Settings
from lark_cards.state import parse_state_url

IDENTITY = {"app_id": "cli_a", "app_secret": "s3cret"}


def settings(**options) -> Settings:
    return Settings.from_config(SimpleNamespace(BOT_IDENTITY=IDENTITY, LARK_CARDS=options))


def test_the_default_is_sqlite_in_the_data_dir():
    assert Settings.from_config(SimpleNamespace(BOT_IDENTITY=IDENTITY)).state_url is None
    assert settings(state_url=None).state_url is None
    assert parse_state_url(None).kind == "sqlite"


@pytest.mark.parametrize(
    ("url", "kind", "label"),
    [
        ("memory://", "memory", "memory://"),
        ("redis://localhost:6379/0", "redis", "redis://localhost:6379/0"),
        ("redis://redis.internal", "redis", "redis://redis.internal:6379/0"),
        ("rediss://:pw@cache.example.com:6380/2", "redis", "rediss://cache.example.com:6380/2"),
        ("redis://user:pw@[::1]:7000/3", "redis", "redis://[::1]:7000/3"),
    ],
)
def test_accepted_forms(url, kind, label):
    assert settings(state_url=url).state_url == url
    parsed = parse_state_url(url)
    assert (parsed.kind, parsed.label) == (kind, label)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///tmp/x.db",
        "memory",
        "",
        "postgres://u:hunter2@db/x",
        "redis://:hunter2@cache:port/0",
        "redis://:hunter2@cache:6379/zero",
        "redis:///0",
        "redis://[::1",
        42,
        ["redis://x"],
    ],
)
def test_anything_else_is_one_line_naming_the_key(url):
    with pytest.raises(ConfigError) as info:
        settings(state_url=url)
    message = str(info.value)
    assert "LARK_CARDS['state_url']" in message
    assert "redis://host:port/db" in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_the_url_stays_out_of_repr():
    text = repr(settings(state_url="redis://:hunter2@cache:6379/0"))
    assert "hunter2" not in text
    assert "state_url" not in text
