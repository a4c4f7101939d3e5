"""Buttons → Errbot commands: the callback record, buttons, toasts, the click as a message, and
the ACL path through a real Errbot core (ACLs core plugin + the sample Approval plugin)."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from errbot.bootstrap import get_storage_plugin
from errbot.plugin_manager import BotPluginManager
from errbot.repo_manager import BotRepoManager
from errbot_config import errbot_config
from feishu_payloads import ENCRYPTED, NOW, PLAIN, load, plain_body, signed_request

from lark_cards.backend import LarkCardsBackend
from lark_cards.events import (
    CARD_ACTION,
    MESSAGE_RECEIVE,
    CardAction,
    Envelope,
    EventError,
    parse_callback,
    parse_card_action,
)
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.interactive import (
    ChatKinds,
    action_message,
    answer_callback,
    button,
    buttons_row,
    toast_for,
)
from lark_cards.outbound import Sender, target_of
from lark_cards.render.templates import CardTemplates
from lark_cards.render.validate import validate_card
from lark_cards.transport.webhook import create_app

ROOT = Path(__file__).resolve().parent.parent
BOT = "ou_bot00000000000000000000000000000"
ADMIN = "ou_admin"  # errbot_config's BOT_ADMINS
ALICE = "ou_84aad35d084aa403a838cf73ee18467"  # the fixtures' operator: not an admin
GROUP = "oc_a0553eda9014c201e6969b478895c230"
P2P = "oc_p2p00000000000000000000000000001"
CARD = "om_card0000000000000000000000000001"


def envelope(name: str, **changes: Any) -> Envelope:
    payload = load(name)
    for key, value in changes.items():
        payload["event"][key] = value
    parsed = parse_callback(payload)
    assert isinstance(parsed, Envelope)
    return parsed


def kinds(**known: str) -> ChatKinds:
    return ChatKinds(lambda chat_id: {"chat_mode": known[chat_id]} if chat_id in known else {})


# --- the callback record (§6.1) -------------------------------------------------------------


def test_parse_card_action_reads_the_documented_fields() -> None:
    action = parse_card_action(envelope("card_action"))
    assert action.event_id == "0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"
    assert action.operator_open_id == ALICE
    assert action.value == {"cmd": "!approve 7f3a", "request": "7f3a"}
    assert (action.command, action.arguments) == ("!approve 7f3a", {"request": "7f3a"})
    assert (action.tag, action.name, action.host) == ("button", "approve", "im_message")
    assert (action.open_message_id, action.open_chat_id) == (CARD, GROUP)
    assert action.token == "c-295ee57216a5dc9de90fefd0aadb4b1d7d337bc4"
    assert action.form_value is None
    assert action.raw is not None
    assert action.raw["timezone"] == "Asia/Shanghai"


def test_a_string_value_is_the_command_and_forms_keep_their_values() -> None:
    assert parse_card_action(envelope("card_action_p2p")).value == {"cmd": "!status"}
    form = parse_card_action(envelope("card_action_form"))
    assert form.form_value == {"comment": "looks good", "score": "5"}
    assert form.command is None
    for value in (None, 42, ["!x"], "  ", {"cmd": 7}, {"cmd": "  "}):
        changed = load("card_action")
        changed["event"]["action"]["value"] = value
        assert parse_card_action(parse_callback(changed)).command is None  # type: ignore[arg-type]


def test_legacy_top_level_ids_are_read_when_context_lacks_them() -> None:
    action = parse_card_action(
        envelope("card_action", context={}, open_message_id="om_x", open_chat_id="oc_y")
    )
    assert (action.open_message_id, action.open_chat_id) == ("om_x", "oc_y")


def test_unreadable_card_actions_raise() -> None:
    with pytest.raises(EventError, match=CARD_ACTION):
        parse_card_action(Envelope("e", MESSAGE_RECEIVE, None, {}))
    with pytest.raises(EventError, match="operator"):
        parse_card_action(envelope("card_action", operator=None))
    with pytest.raises(EventError, match="open_id"):
        parse_card_action(envelope("card_action", operator={"user_id": "x"}))


# --- buttons (§5.5) -------------------------------------------------------------------------


def card_with(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "2.0", "body": {"elements": list(elements)}}


def test_button_carries_the_command_and_extra_value_keys() -> None:
    element = button("Deploy", "!deploy prod", value={"env": "prod"}, style="primary")
    assert element == {
        "tag": "button",
        "text": {"tag": "plain_text", "content": "Deploy"},
        "type": "primary",
        "behaviors": [{"type": "callback", "value": {"cmd": "!deploy prod", "env": "prod"}}],
    }
    linked = button("Docs", url="https://example.com", confirm="Leave Feishu?")
    assert linked["behaviors"] == [{"type": "open_url", "default_url": "https://example.com"}]
    assert linked["confirm"]["text"]["content"] == "Leave Feishu?"
    row = buttons_row(element, linked)
    assert [column["elements"] for column in row["columns"]] == [[element], [linked]]
    assert validate_card(card_with(row)) == []


def test_button_text_is_cut_and_bad_buttons_are_refused() -> None:
    assert len(button("x" * 300, "!x")["text"]["content"]) == 100
    with pytest.raises(ValueError, match="style"):
        button("x", "!x", style="huge")
    with pytest.raises(ValueError, match="cmd="):
        button("x", value={"cmd": "!x"})
    with pytest.raises(ValueError, match="needs"):
        button("x")


def test_the_approval_template_makes_two_command_buttons() -> None:
    card = CardTemplates().render(
        "approval",
        {"approve": "!approve 7f3a", "deny": "!deny 7f3a", "text": "Deploy **prod**?",
         "value": {"request": "7f3a"}, "confirm": "Sure?"},
    )  # fmt: skip
    assert validate_card(card) == []
    [text, row] = card["body"]["elements"]
    assert text == {"tag": "markdown", "content": "Deploy **prod**?"}
    values = [c["elements"][0]["behaviors"][0]["value"] for c in row["columns"]]
    assert values == [
        {"request": "7f3a", "cmd": "!approve 7f3a"},
        {"request": "7f3a", "cmd": "!deny 7f3a"},
    ]
    assert "confirm" in row["columns"][0]["elements"][0]
    assert card["header"]["template"] == "orange"


# --- the 3-second answer ---------------------------------------------------------------------


def test_toasts_say_what_runs_or_why_nothing_does() -> None:
    action = parse_card_action(envelope("card_action"))
    assert toast_for(action) == {"toast": {"type": "info", "content": "Running !approve 7f3a…"}}
    long = CardAction("e", ALICE, {"cmd": "!say " + "x" * 200})
    assert len(toast_for(long)["toast"]["content"]) <= len("Running …") + 60
    assert toast_for(parse_card_action(envelope("card_action_form")))["toast"]["type"] == "error"
    broken = envelope("card_action", operator=None)
    assert answer_callback(broken)["toast"]["type"] == "error"


@pytest.fixture
async def webhook() -> Any:
    """The webhook app with ``respond=answer_callback``, recording what it dispatches."""
    dispatched: list[Envelope] = []
    client = TestClient(TestServer(create_app(PLAIN, dispatched.append, respond=answer_callback)))
    await client.start_server()

    async def post(payload: dict[str, Any]) -> tuple[int, Any]:
        async with client.post(PLAIN.path, data=plain_body(payload)) as resp:
            answer = (resp.status, await resp.json())
        await asyncio.sleep(0)  # let the scheduled dispatch run
        return answer

    yield post, dispatched
    await client.close()


async def test_a_callback_is_answered_with_a_toast_in_the_request(webhook: Any) -> None:
    post, dispatched = webhook
    toast = {"toast": {"type": "info", "content": "Running !approve 7f3a…"}}
    assert await post(load("card_action")) == (200, toast)
    assert [e.event_id for e in dispatched] == ["0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"]


async def test_a_retried_callback_gets_the_toast_but_is_not_dispatched_again(webhook: Any) -> None:
    post, dispatched = webhook
    first = await post(load("card_action"))
    assert await post(load("card_action")) == first
    assert len(dispatched) == 1
    other_click = load("card_action")
    other_click["header"]["event_id"] = "another-click"
    assert await post(other_click) == first
    assert len(dispatched) == 2  # a second click is a second command; a retry is not


async def test_callbacks_pass_the_same_verification_as_events() -> None:
    answered: list[str] = []

    def respond(envelope: Envelope) -> dict[str, Any]:
        answered.append(envelope.event_id)
        return answer_callback(envelope)

    dispatched: list[Envelope] = []
    app = create_app(ENCRYPTED, dispatched.append, respond=respond, clock=lambda: float(NOW))
    async with TestClient(TestServer(app)) as client:
        body, headers = signed_request(load("card_action"))
        async with client.post(ENCRYPTED.path, data=body, headers=headers) as resp:
            assert (await resp.json())["toast"]["type"] == "info"
        forged = load("card_action")
        forged["header"]["token"] = "forged"
        body, headers = signed_request(forged, nonce="n2")
        async with client.post(ENCRYPTED.path, data=body, headers=headers) as resp:
            assert resp.status == 401
        async with client.post(ENCRYPTED.path, data=plain_body(load("card_action"))) as resp:
            assert resp.status == 401  # with an Encrypt Key, only signed bodies count
        await asyncio.sleep(0)
    assert answered == ["0f7a2c3d4e5b6a7980c1d2e3f4a5b6c7"]
    assert len(dispatched) == 1


async def test_respond_failures_and_absence_still_answer_and_dispatch() -> None:
    def broken(_: Envelope) -> dict[str, Any]:
        raise RuntimeError("boom")

    for respond in (broken, None, lambda _: None, lambda _: {"toast": object()}):
        dispatched: list[Envelope] = []
        app = create_app(PLAIN, dispatched.append, respond=respond)
        async with TestClient(TestServer(app)) as client:
            async with client.post(PLAIN.path, data=plain_body(load("card_action"))) as resp:
                assert (resp.status, await resp.json()) == (200, {})
            async with client.post(PLAIN.path, data=plain_body(load("p2p_text"))) as resp:
                assert await resp.json() == {"msg": "ok"}  # other events are unchanged
            await asyncio.sleep(0)
        assert len(dispatched) == 2


# --- the click as an Errbot message -------------------------------------------------------------


@pytest.fixture
def backend(tmp_path: Path) -> LarkCardsBackend:
    bot = LarkCardsBackend(errbot_config(tmp_path))
    bot.bot_identifier = LarkPerson(BOT, name="ChatOps Bot")
    return bot


def test_a_group_click_is_a_message_from_the_clicker_in_the_room(backend) -> None:
    action = parse_card_action(envelope("card_action"))
    msg = action_message(action, backend.bot_identifier, kinds(**{GROUP: "group"}))
    assert msg is not None
    assert msg.body == "!approve 7f3a"
    assert msg.frm == LarkRoomOccupant(ALICE, LarkRoom(GROUP))
    assert msg.frm.aclattr == ALICE
    assert msg.to == LarkRoom(GROUP)
    assert msg.is_group
    assert msg.extras["request"] == "7f3a"
    assert msg.extras["card_message_id"] == CARD
    assert (msg.extras["chat_id"], msg.extras["chat_type"]) == (GROUP, "group")
    assert msg.extras["action"] is action
    assert msg.parent is not None
    assert msg.parent.extras == {"message_id": CARD, "chat_id": GROUP, "chat_type": "group"}
    # Errbot's replies (ACL refusals, the command's output) go under the card.
    reply = backend.build_reply(msg, "done")
    assert target_of(reply).reply_to == CARD
    assert target_of(reply).receive_id == GROUP


def test_a_p2p_click_is_a_direct_message_to_the_bot(backend) -> None:
    action = parse_card_action(envelope("card_action_p2p"))
    msg = action_message(action, backend.bot_identifier, kinds(**{P2P: "p2p"}))
    assert msg is not None
    assert msg.is_direct
    assert msg.frm == LarkPerson(ALICE)
    assert not isinstance(msg.frm, LarkRoomOccupant)
    assert msg.frm.client == P2P
    assert msg.to == backend.bot_identifier
    reply = backend.build_reply(msg, "ok")
    assert target_of(reply).reply_to == "om_card0000000000000000000000000002"


def test_a_card_value_cannot_spoof_the_chat_or_card() -> None:
    payload = load("card_action")
    payload["event"]["action"]["value"] |= {"chat_id": "oc_evil", "card_message_id": "om_evil"}
    action = parse_card_action(parse_callback(payload))  # type: ignore[arg-type]
    msg = action_message(action, LarkPerson(BOT), kinds(**{GROUP: "group"}))
    assert msg is not None
    assert (msg.extras["chat_id"], msg.extras["card_message_id"]) == (GROUP, CARD)


def test_no_command_means_no_message() -> None:
    action = parse_card_action(envelope("card_action_form"))
    assert action_message(action, LarkPerson(BOT), kinds()) is None


def test_chat_kinds_remember_and_look_up_once() -> None:
    asked: list[str] = []

    def lookup(chat_id: str) -> dict[str, Any]:
        asked.append(chat_id)
        return {"oc_a": {"chat_mode": "p2p"}, "oc_t": {"chat_mode": "topic"}}.get(chat_id, {})

    chat_kinds = ChatKinds(lookup, max_entries=2)
    chat_kinds.remember("oc_m", "group")
    assert [chat_kinds("oc_m"), chat_kinds("oc_a"), chat_kinds("oc_a")] == ["group", "p2p", "p2p"]
    assert chat_kinds("oc_t") == "topic_group"
    # Unknown: the stricter "group", and not remembered (asked again next time).
    assert [chat_kinds("oc_gone"), chat_kinds("oc_gone")] == ["group", "group"]
    assert asked == ["oc_a", "oc_t", "oc_gone", "oc_gone"]
    assert chat_kinds("oc_m") == "group"  # evicted (max 2), then looked up: unknown → group


# --- a real Errbot core: ACLs apply to the clicker ------------------------------------------------


class FakeClient:
    """The Open API as far as the approval flow uses it; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self._ids = iter(range(1, 1000))

    def _new(self, kind: str, target: str, content: Any) -> dict[str, Any]:
        self.calls.append((kind, target, content))
        return {"message_id": f"om_bot{next(self._ids)}"}

    async def send_message(self, receive_id: str, msg_type: str, content: Any, **_: Any) -> Any:
        return self._new("send", receive_id, content)

    async def reply_message(self, message_id: str, msg_type: str, content: Any, **_: Any) -> Any:
        return self._new("reply", message_id, content)

    async def request(self, method: str, path: str, *, json: Any = None, **_: Any) -> Any:
        self.calls.append((method, path.rsplit("/", 1)[-1], json))
        return {"code": 0}

    async def chat_info(self, chat_id: str) -> dict[str, Any]:
        return {"chat_mode": "p2p" if chat_id == P2P else "group"}

    async def user_info(self, open_id: str) -> dict[str, Any]:
        return {"name": {ADMIN: "Ada Admin", ALICE: "Alice"}.get(open_id, "")}

    def texts(self, kind: str | None = None, target: str | None = None) -> list[str]:
        """Every sent/patched card's text, in order (optionally one kind or target)."""
        found = []
        for call_kind, call_target, content in self.calls:
            if kind not in (None, call_kind) or target not in (None, call_target):
                continue
            card = json.loads(content["content"]) if call_kind == "PATCH" else content
            found.append(" ".join(_texts(card.get("body"))))
        return found


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("content"), str):
            yield node["content"]
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


@pytest.fixture
def errbot(tmp_path: Path) -> Iterator[LarkCardsBackend]:
    """A LarkCardsBackend with Errbot's plugin manager running the ACLs core plugin and the
    sample Approval plugin, its loop in a thread as during serve_once."""
    config = errbot_config(tmp_path)
    config.STORAGE = "Memory"
    config.CORE_PLUGINS = ("ACLs",)
    config.BOT_EXTRA_PLUGIN_DIR = str(ROOT / "plugins")
    config.ACCESS_CONTROLS = {"Approval:approve": {"allowmuc": True}}
    bot = LarkCardsBackend(config)
    bot.bot_identifier = LarkPerson(BOT, name="ChatOps Bot")
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
    manager.get_plugin_obj_by_name("Approval").step_seconds = 0.0
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lark-loop", daemon=True)
    thread.start()
    bot._loop = loop
    bot.client = FakeClient()  # type: ignore[assignment]
    bot.sender = Sender(bot.client, bot.render_options, upload_images=False)  # type: ignore[arg-type]
    yield bot
    bot._inbound.shutdown(wait=True)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def settle(bot: LarkCardsBackend, count: int) -> FakeClient:
    """Wait for queued events and then for at least ``count`` API calls."""
    bot._inbound.submit(lambda: None).result(10)  # the inbound thread is FIFO
    client: FakeClient = bot.client  # type: ignore[assignment]
    for _ in range(500):
        if len(client.calls) >= count:
            break
        threading.Event().wait(0.01)
    return client


def ask_for_deploy(bot: LarkCardsBackend) -> str:
    """Alice types ``!deploy prod`` in the group; returns the request id on the card."""
    typed = load("group_text_mentions")
    typed["event"]["message"]["content"] = json.dumps({"text": "@_user_1 !deploy prod"})
    bot._handle_envelope(parse_callback(typed))  # type: ignore[arg-type]
    client = settle(bot, 1)
    [(kind, question, card)] = client.calls
    assert (kind, question) == ("reply", "om_dc13264520392913993dd051dba21dcf")
    row = card["body"]["elements"][-1]
    commands = [c["elements"][0]["behaviors"][0]["value"]["cmd"] for c in row["columns"]]
    assert commands[0].startswith("!approve ")
    assert commands[1].startswith("!deny ")
    client.calls.clear()
    return commands[0].split()[1]


def click(request_id: str, operator: str, *, event_id: str, chat: str = GROUP) -> dict:
    payload = copy.deepcopy(load("card_action"))
    payload["header"]["event_id"] = event_id
    payload["event"]["operator"]["open_id"] = operator
    payload["event"]["action"]["value"] = {"cmd": f"!approve {request_id}"}
    payload["event"]["context"] = {"open_message_id": CARD, "open_chat_id": chat}
    return payload


def test_a_click_from_a_non_admin_cannot_run_an_admin_only_command(
    errbot: LarkCardsBackend,
) -> None:
    request_id = ask_for_deploy(errbot)
    errbot._handle_envelope(parse_callback(click(request_id, ALICE, event_id="e1")))  # type: ignore[arg-type]
    client = settle(errbot, 1)
    assert client.texts() == ["This command requires bot-admin privileges"]
    assert client.calls[0][:2] == ("reply", CARD)  # the refusal is a reply under the card
    # The request is still pending: an admin can approve it afterwards.
    client.calls.clear()
    errbot._handle_envelope(parse_callback(click(request_id, ADMIN, event_id="e2")))  # type: ignore[arg-type]
    assert any("Deployed **prod**" in text for text in settle(errbot, 3).texts())


async def test_a_click_from_an_admin_runs_the_command_once_even_when_retried(
    errbot: LarkCardsBackend,
) -> None:
    request_id = ask_for_deploy(errbot)
    app = create_app(PLAIN, errbot._dispatch, respond=answer_callback)
    async with TestClient(TestServer(app)) as http:
        for _ in range(3):  # Feishu retries a callback it thinks failed
            body = plain_body(click(request_id, ADMIN, event_id="retried"))
            async with http.post(PLAIN.path, data=body) as resp:
                toast = (await resp.json())["toast"]
                assert toast == {"type": "info", "content": f"Running !approve {request_id}…"}
    await asyncio.sleep(0)  # the last dispatch is scheduled with call_soon
    client = await asyncio.to_thread(settle, errbot, 3)
    texts = client.texts()
    assert sum("Deployed **prod**" in text for text in texts) == 1
    assert not any("no pending deploy request" in text for text in texts)
    assert any("approved" in text and "Ada Admin" in text for text in client.texts("PATCH"))
    progress = [call for call in client.calls if call[0] == "reply"]
    assert [target for _, target, _ in progress] == [CARD]  # the progress card: under the card


def test_admin_commands_from_a_group_card_need_allowmuc(errbot: LarkCardsBackend) -> None:
    errbot.bot_config.ACCESS_CONTROLS = {}
    request_id = ask_for_deploy(errbot)
    errbot._handle_envelope(parse_callback(click(request_id, ADMIN, event_id="e3")))  # type: ignore[arg-type]
    refusal = "This command may only be issued through a direct message"
    assert settle(errbot, 1).texts() == [refusal]


def test_an_admin_click_in_a_p2p_chat_runs_without_allowmuc(errbot: LarkCardsBackend) -> None:
    errbot.bot_config.ACCESS_CONTROLS = {}
    request_id = ask_for_deploy(errbot)
    payload = click(request_id, ADMIN, event_id="e4", chat=P2P)
    errbot._handle_envelope(parse_callback(payload))  # type: ignore[arg-type]
    assert any("Deployed **prod**" in text for text in settle(errbot, 3).texts())


def test_anyone_may_deny_and_a_denied_request_cannot_be_approved(errbot: LarkCardsBackend) -> None:
    request_id = ask_for_deploy(errbot)
    deny = click(request_id, ALICE, event_id="e5")
    deny["event"]["action"]["value"] = {"cmd": f"!deny {request_id}"}
    errbot._handle_envelope(parse_callback(deny))  # type: ignore[arg-type]
    client = settle(errbot, 2)
    assert "Deploy of **prod** denied." in client.texts("reply")
    assert any("**denied** by Alice" in text for text in client.texts("PATCH"))
    client.calls.clear()
    errbot._handle_envelope(parse_callback(click(request_id, ADMIN, event_id="e6")))  # type: ignore[arg-type]
    assert client is settle(errbot, 1)
    assert client.texts() == [f"There is no pending deploy request `{request_id}`."]


def test_a_button_may_ask_for_its_answer_to_replace_the_card(errbot: LarkCardsBackend) -> None:
    request_id = ask_for_deploy(errbot)
    deny = click(request_id, ALICE, event_id="e7")
    deny["event"]["action"]["value"] = {"cmd": f"!deny {request_id}", "replace": True}
    errbot._handle_envelope(parse_callback(deny))  # type: ignore[arg-type]
    client = settle(errbot, 2)
    patched = [(target, content) for kind, target, content in client.calls if kind == "PATCH"]
    answer = [
        content for target, content in patched if target == CARD and "denied." in str(content)
    ]
    assert answer, client.calls  # the command's answer took the clicked card's place
    assert "Deploy of **prod** denied." not in client.texts("reply")


def test_a_refused_click_never_replaces_the_card(errbot: LarkCardsBackend) -> None:
    request_id = ask_for_deploy(errbot)
    refused = click(request_id, ALICE, event_id="e8")  # Alice is not an admin
    refused["event"]["action"]["value"] = {"cmd": f"!approve {request_id}", "replace": True}
    errbot._handle_envelope(parse_callback(refused))  # type: ignore[arg-type]
    client = settle(errbot, 1)
    assert not [call for call in client.calls if call[0] == "PATCH" and call[1] == CARD]
    assert any("bot-admin" in text for text in client.texts("reply"))
