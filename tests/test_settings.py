from types import SimpleNamespace

import pytest

from lark_cards.settings import ConfigError, Settings


def config(**identity):
    base = {"app_id": "cli_a", "app_secret": "s3cret"}
    return SimpleNamespace(BOT_IDENTITY={**base, **identity})


def test_defaults_match_the_documented_config():
    settings = Settings.from_config(config())
    assert settings.base_url == "https://open.feishu.cn"
    assert (settings.mode, settings.host, settings.port, settings.path) == (
        "webhook",
        "0.0.0.0",
        8080,
        "/lark/events",
    )
    assert settings.verification_token is None
    assert settings.encrypt_key is None
    assert settings.dedup_ttl >= 7.2 * 3600  # outlives Feishu's last retry (6 h after 1 h …)
    assert settings.max_body_bytes == 1 << 20


@pytest.mark.parametrize(
    ("domain", "url"),
    [
        ("feishu", "https://open.feishu.cn"),
        ("lark", "https://open.larksuite.com"),
        ("Lark", "https://open.larksuite.com"),
        ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("https://open.example.com/base", "https://open.example.com/base"),
    ],
)
def test_domain_resolves_to_a_base_url(domain, url):
    assert Settings.from_config(config(domain=domain)).base_url == url


@pytest.mark.parametrize(
    ("identity", "named"),
    [
        ({"app_id": ""}, "app_id"),
        ({"app_secret": None}, "app_secret"),
        ({"app_id": 42}, "app_id"),
        ({"domain": "ftp://x"}, "domain"),
        ({"domain": "open.feishu.cn"}, "domain"),
        ({"mode": "polling"}, "mode"),
        ({"mode": "WebSocket"}, "mode"),
        ({"port": "8080"}, "port"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"path": "lark"}, "path"),
        ({"encrypt_key": 1}, "encrypt_key"),
        ({"app_secert": "typo"}, "app_secert"),
    ],
)
def test_a_bad_key_is_named_in_one_line(identity, named):
    with pytest.raises(ConfigError) as info:
        Settings.from_config(config(**identity))
    message = str(info.value)
    assert named in message
    assert "\n" not in message


def test_long_connection_mode_needs_only_the_app_credentials():
    identity = {"app_id": "cli_a", "app_secret": "s", "mode": "websocket"}
    settings = Settings.from_config(SimpleNamespace(BOT_IDENTITY=identity))
    assert settings.mode == "websocket"
    assert settings.base_url == "https://open.feishu.cn"
    assert settings.encrypt_key is None
    assert settings.verification_token is None


def test_missing_identity_and_bad_options():
    with pytest.raises(ConfigError, match="BOT_IDENTITY"):
        Settings.from_config(SimpleNamespace())
    with pytest.raises(ConfigError, match="LARK_CARDS"):
        Settings.from_config(SimpleNamespace(BOT_IDENTITY=config().BOT_IDENTITY, LARK_CARDS=[]))
    bad = SimpleNamespace(BOT_IDENTITY=config().BOT_IDENTITY, LARK_CARDS={"chat_qps": -1})
    with pytest.raises(ConfigError, match="chat_qps"):
        Settings.from_config(bad)


def test_options_are_read_and_replay_window_can_be_disabled():
    cfg = SimpleNamespace(
        BOT_IDENTITY=config().BOT_IDENTITY,
        LARK_CARDS={"replay_window": None, "max_body_bytes": 2048, "app_qps": 10},
    )
    settings = Settings.from_config(cfg)
    assert settings.replay_window is None
    assert settings.max_body_bytes == 2048
    assert settings.app_qps == 10.0


def test_secrets_stay_out_of_repr():
    settings = Settings.from_config(config(encrypt_key="k3y", verification_token="t0k"))
    text = repr(settings)
    assert "s3cret" not in text
    assert "k3y" not in text
    assert "t0k" not in text


def test_render_options(tmp_path):
    cfg = SimpleNamespace(
        BOT_IDENTITY=config().BOT_IDENTITY,
        LARK_CARDS={"render_mode": "auto", "templates_dir": str(tmp_path), "max_tables": 3},
    )
    settings = Settings.from_config(cfg)
    assert (settings.render_mode, settings.templates_dir, settings.max_tables) == (
        "auto",
        str(tmp_path),
        3,
    )


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"render_mode": "html"}, "render_mode"),
        ({"templates_dir": "/no/such/dir"}, "templates_dir"),
        ({"upload_images": "yes"}, "upload_images"),
        ({"table_page_size": 20}, "table_page_size"),
        ({"max_tabels": 3}, "max_tabels"),
    ],
)
def test_bad_render_options_are_named(options, named):
    cfg = SimpleNamespace(BOT_IDENTITY=config().BOT_IDENTITY, LARK_CARDS=options)
    with pytest.raises(ConfigError, match=named):
        Settings.from_config(cfg)
