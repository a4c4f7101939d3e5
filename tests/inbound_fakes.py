"""Test doubles for ``lark_cards.inbound``: a small stand-in for the backend as it sees it
(``InboundBot``), a parse counter, and a real backend running Errbot's ACLs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from errbot.backends.base import Message
from errbot.bootstrap import get_storage_plugin
from errbot.plugin_manager import BotPluginManager
from errbot.repo_manager import BotRepoManager
from errbot_config import errbot_config

from lark_cards.identifiers import Identities, LarkPerson
from lark_cards.inbound import clicks
from lark_cards.inbound.events import CardAction
from lark_cards.transport.envelope import Envelope

BOT_OPEN_ID = "ou_bot00000000000000000000000000000"
APP_ID = "cli_9f5343c580712544"
ALICE = "ou_84aad35d084aa403a838cf73ee18467"  # the fixtures' sender and clicker
GROUP = "oc_a0553eda9014c201e6969b478895c230"
P2P = "oc_p2p00000000000000000000000000001"
PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


class Directory:
    """Profiles by id; records what was asked."""

    def __init__(self, chats: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.chats = dict(chats or {})
        self.asked: list[str] = []

    def user(self, open_id: str) -> Mapping[str, Any]:
        return {"name": f"Full name of {open_id}"}

    def chat(self, chat_id: str) -> Mapping[str, Any]:
        self.asked.append(chat_id)
        return self.chats.get(chat_id, {})


def chat_modes(**modes: str) -> Directory:
    """A directory that knows the ``chat_mode`` of these chats, e.g. ``chat_modes(oc_x="p2p")``."""
    return Directory({chat_id: {"chat_mode": mode} for chat_id, mode in modes.items()})


class Membership:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def note_joined(self, chat_id: str, joined: bool) -> None:
        self.calls.append(("note_joined", (chat_id, joined)))

    def forget(self, chat_id: str) -> None:
        self.calls.append(("forget", chat_id))


class FakeBot:
    """Records every Errbot callback as ``(name, args, kwargs)`` in ``calls``.

    Errbot's command filters are faked: ``commands`` are known, and the dry run refuses
    whoever is in ``refused`` (by open_id).
    """

    def __init__(self, directory: Directory | None = None, *, commands: tuple[str, ...] = ()):
        self.bot_identifier = LarkPerson(BOT_OPEN_ID, name="ChatOps Bot")
        self.settings = SimpleNamespace(app_id=APP_ID)
        self.directory = directory or chat_modes(**{GROUP: "group", P2P: "p2p"})
        self.room_ops = Membership()
        self.identities = Identities(self.directory)
        self.bot_config = SimpleNamespace(BOT_PREFIX="!", BOT_ALT_PREFIXES=("@bot",))
        self.commands = dict.fromkeys(commands, object())
        self.refused: set[str] = set()
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def _process_command_filters(
        self, msg: Message, cmd: str, args: str, dry_run: bool = False
    ) -> tuple[Message | None, str, str]:
        assert dry_run
        self.calls.append(("filters", (cmd, args), {}))
        return (None if msg.frm.open_id in self.refused else msg), cmd, args

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))

    def callback_message(self, msg: Message) -> None:
        self._record("callback_message", msg)

    def callback_mention(self, msg: Message, people: list[Any]) -> None:
        self._record("callback_mention", msg, people)

    def callback_reaction(self, reaction: Any) -> None:
        self._record("callback_reaction", reaction)

    def callback_room_joined(self, room: Any, identifier: Any = None, invited_by: Any = None):
        self._record("callback_room_joined", room, identifier, invited_by=invited_by)

    def callback_room_left(self, room: Any, identifier: Any = None, kicked_by: Any = None):
        self._record("callback_room_left", room, identifier, kicked_by=kicked_by)

    def names(self) -> list[str]:
        """The callbacks called so far, in order (command filter dry runs left out)."""
        return [name for name, _, _ in self.calls if name != "filters"]

    def messages(self) -> list[Message]:
        return [args[0] for name, args, _ in self.calls if name == "callback_message"]


def count_click_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The event ids of every card action parsed from now on, in order."""
    parsed: list[str] = []
    parse = clicks.parse_card_action

    def counting(envelope: Envelope) -> CardAction:
        parsed.append(envelope.event_id)
        return parse(envelope)

    monkeypatch.setattr(clicks, "parse_card_action", counting)
    return parsed


def backend_with_acls(tmp_path: Path, bot_identifier: LarkPerson) -> Any:
    """A LarkCardsBackend whose plugin manager runs Errbot's ACLs core plugin and the sample
    Approval plugin (``!approve`` is admin only, ``!deny`` is not); not connected."""
    from lark_cards.backend import LarkCardsBackend

    config = errbot_config(tmp_path)
    config.STORAGE = "Memory"
    config.CORE_PLUGINS = ("ACLs",)
    config.BOT_EXTRA_PLUGIN_DIR = str(PLUGINS)
    config.ACCESS_CONTROLS = {"Approval:approve": {"allowmuc": True}}
    bot = LarkCardsBackend(config)
    bot.bot_identifier = bot_identifier
    storage = get_storage_plugin(config)
    manager = BotPluginManager(
        storage, config.BOT_EXTRA_PLUGIN_DIR, False, config.CORE_PLUGINS,
        lambda name, plugin: plugin(bot, name), (None,),
    )  # fmt: skip
    bot.attach_storage_plugin(storage)
    bot.attach_repo_manager(BotRepoManager(storage, str(tmp_path / "plugins"), ()))
    bot.attach_plugin_manager(manager)
    bot.initialize_backend_storage()
    assert manager.update_plugin_places([]) == {}
    assert manager.activate_non_started_plugins() == ""
    return bot
