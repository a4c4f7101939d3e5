"""Buttons → Errbot commands: the buttons, and the ACL path through a real Errbot core (ACLs core
plugin + the sample Approval plugin). The click's inbound half is in test_inbound_clicks.py."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_fakes import Call, FakeOpenAPI, connect
from feishu_payloads import PLAIN, load, plain_body
from inbound_fakes import backend_with_acls

from lark_cards.backend import LarkCardsBackend
from lark_cards.identifiers import LarkPerson
from lark_cards.interactive import button, buttons_row, with_buttons
from lark_cards.render.templates import CardTemplates
from lark_cards.render.validate import validate_card
from lark_cards.transport.envelope import parse_callback
from lark_cards.transport.webhook import create_app

BOT = "ou_bot00000000000000000000000000000"
ADMIN = "ou_admin"  # errbot_config's BOT_ADMINS
ALICE = "ou_84aad35d084aa403a838cf73ee18467"  # the fixtures' operator: not an admin
GROUP = "oc_a0553eda9014c201e6969b478895c230"
P2P = "oc_p2p00000000000000000000000000001"
CARD = "om_card0000000000000000000000000001"


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


def test_with_buttons_adds_a_row_at_the_end_of_a_copy() -> None:
    text = {"tag": "markdown", "content": "Deploy?"}
    card = {
        "schema": "2.0",
        "header": {"title": {"tag": "plain_text", "content": "x"}},
        "body": {"elements": [text]},
    }
    approve, deny = button("Approve", "!approve 1"), button("Deny", "!deny 1")
    built = with_buttons(card, [approve, deny])
    assert built["body"]["elements"] == [text, buttons_row(approve, deny)]
    assert built["header"] == card["header"]
    assert card["body"]["elements"] == [text]  # the plugin's card is left as it was
    assert validate_card(built) == []


def test_buttons_on_a_long_text_go_on_its_last_card(connected: LarkCardsBackend) -> None:
    long = "\n\n".join(f"Line {n}: " + "lorem ipsum " * 40 for n in range(200))
    deploy = button("Deploy", "!deploy prod")
    ref = connected.send_buttons(LarkPerson("ou_x"), long, [deploy])
    fake: FakeOpenAPI = connected.client
    message_id = ref.message_id  # waits until every card went out
    cards = [call.content for call in fake.messages()]
    assert len(cards) > 1
    assert message_id == f"om_{len(cards)}"  # the ref updates the last card, the buttons'
    rows = ["column_set" in json.dumps(card) for card in cards]
    assert rows == [False] * (len(cards) - 1) + [True]


# --- a real Errbot core: ACLs apply to the clicker ------------------------------------------------

QUESTION = "om_dc13264520392913993dd051dba21dcf"  # group_text_mentions' message
NAMES = {ADMIN: "Ada Admin", ALICE: "Alice"}


def open_api() -> FakeOpenAPI:
    """The Open API with the profiles the approval flow looks up (names, chat modes)."""
    fake = FakeOpenAPI()

    def user(call: Call) -> dict[str, Any]:
        return {"code": 0, "data": {"user": {"name": NAMES.get(call.path.rsplit("/")[-1], "")}}}

    def chat(call: Call) -> dict[str, Any]:
        mode = "p2p" if call.path.endswith(P2P) else "group"
        return {"code": 0, "data": {"chat_mode": mode}}

    fake.on("GET", "/open-apis/contact/v3/users/*", user)
    fake.on("GET", "/open-apis/im/v1/chats/*", chat)
    return fake


@pytest.fixture
def errbot(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[LarkCardsBackend]:
    """A LarkCardsBackend with Errbot's plugin manager running the ACLs core plugin and the
    sample Approval plugin, connected to a fake Open API on a loop thread."""
    bot = backend_with_acls(tmp_path, LarkPerson(BOT, name="ChatOps Bot"))
    bot.plugin_manager.get_plugin_obj_by_name("Approval").step_seconds = 0.0
    connect(bot, loop, open_api())
    yield bot
    settle(bot)
    bot.shutdown()


def settle(bot: LarkCardsBackend) -> FakeOpenAPI:
    """Wait until every send and update asked for so far has been answered."""

    async def idle() -> None:
        while pending := bot.bridge.pending():
            await asyncio.wait(pending)

    assert bot.bridge.loop is not None
    asyncio.run_coroutine_threadsafe(idle(), bot.bridge.loop).result(10)
    assert isinstance(bot.client, FakeOpenAPI)
    return bot.client


def kind(call: Call) -> str:
    if call.method == "PATCH":
        return "PATCH"
    return "reply" if call.path.endswith("/reply") else "send"


def texts(fake: FakeOpenAPI, only: str | None = None) -> list[str]:
    """Every sent, replied or PATCHed card's text, in order (optionally one kind)."""
    return [
        " ".join(_texts(call.content.get("body")))
        for call in fake.messages()
        if only in (None, kind(call))
    ]


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("content"), str):
            yield node["content"]
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


def handle(bot: LarkCardsBackend, payload: dict[str, Any]) -> FakeOpenAPI:
    """Feishu's callback reaches Errbot (on this thread); returns the fake once all is sent."""
    bot.inbound.handle(parse_callback(payload))  # type: ignore[arg-type]
    return settle(bot)


def ask_for_deploy(bot: LarkCardsBackend) -> str:
    """Alice types ``!deploy prod`` in the group; returns the request id on the card."""
    typed = load("group_text_mentions")
    typed["event"]["message"]["content"] = json.dumps({"text": "@_user_1 !deploy prod"})
    fake = handle(bot, typed)
    [card] = fake.messages()
    assert (kind(card), card.path) == ("reply", f"/open-apis/im/v1/messages/{QUESTION}/reply")
    row = card.content["body"]["elements"][-1]
    commands = [c["elements"][0]["behaviors"][0]["value"]["cmd"] for c in row["columns"]]
    assert commands[0].startswith("!approve ")
    assert commands[1].startswith("!deny ")
    fake.calls.clear()
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
    fake = handle(errbot, click(request_id, ALICE, event_id="e1"))
    assert texts(fake) == ["This command requires bot-admin privileges"]
    [refusal] = fake.messages()
    assert refusal.path == f"/open-apis/im/v1/messages/{CARD}/reply"  # under the card
    # The request is still pending: an admin can approve it afterwards.
    fake.calls.clear()
    fake = handle(errbot, click(request_id, ADMIN, event_id="e2"))
    assert any("Deployed **prod**" in text for text in texts(fake))


async def test_a_click_from_an_admin_runs_the_command_once_even_when_retried(
    errbot: LarkCardsBackend,
) -> None:
    request_id = await asyncio.to_thread(ask_for_deploy, errbot)
    app = create_app(PLAIN, errbot.inbound.dispatch, respond=errbot.inbound.answer)
    async with TestClient(TestServer(app)) as http:
        for _ in range(3):  # Feishu retries a callback it thinks failed
            body = plain_body(click(request_id, ADMIN, event_id="retried"))
            async with http.post(PLAIN.path, data=body) as resp:
                toast = (await resp.json())["toast"]
                assert toast == {"type": "info", "content": f"Running !approve {request_id}…"}
    await asyncio.sleep(0)  # the last dispatch is scheduled with call_soon
    await errbot.inbound.drain(10)  # the click has reached Errbot and the command has run
    fake = await asyncio.to_thread(settle, errbot)
    assert sum("Deployed **prod**" in text for text in texts(fake)) == 1
    assert not any("no pending deploy request" in text for text in texts(fake))
    assert any("approved" in text and "Ada Admin" in text for text in texts(fake, "PATCH"))
    progress = [call.path for call in fake.messages() if kind(call) == "reply"]
    assert progress == [f"/open-apis/im/v1/messages/{CARD}/reply"]  # the progress card


def test_admin_commands_from_a_group_card_need_allowmuc(errbot: LarkCardsBackend) -> None:
    errbot.bot_config.ACCESS_CONTROLS = {}
    request_id = ask_for_deploy(errbot)
    fake = handle(errbot, click(request_id, ADMIN, event_id="e3"))
    assert texts(fake) == ["This command may only be issued through a direct message"]


def test_an_admin_click_in_a_p2p_chat_runs_without_allowmuc(errbot: LarkCardsBackend) -> None:
    errbot.bot_config.ACCESS_CONTROLS = {}
    request_id = ask_for_deploy(errbot)
    fake = handle(errbot, click(request_id, ADMIN, event_id="e4", chat=P2P))
    assert any("Deployed **prod**" in text for text in texts(fake))


def test_anyone_may_deny_and_a_denied_request_cannot_be_approved(errbot: LarkCardsBackend) -> None:
    request_id = ask_for_deploy(errbot)
    deny = click(request_id, ALICE, event_id="e5")
    deny["event"]["action"]["value"] = {"cmd": f"!deny {request_id}"}
    fake = handle(errbot, deny)
    assert "Deploy of **prod** denied." in texts(fake, "reply")
    assert any("**denied** by Alice" in text for text in texts(fake, "PATCH"))
    fake.calls.clear()
    fake = handle(errbot, click(request_id, ADMIN, event_id="e6"))
    assert texts(fake) == [f"There is no pending deploy request `{request_id}`."]


def test_a_button_may_ask_for_its_answer_to_replace_the_card(errbot: LarkCardsBackend) -> None:
    request_id = ask_for_deploy(errbot)
    deny = click(request_id, ALICE, event_id="e7")
    deny["event"]["action"]["value"] = {"cmd": f"!deny {request_id}", "replace": True}
    fake = handle(errbot, deny)
    on_card = [c for c in fake.messages() if c.path == f"/open-apis/im/v1/messages/{CARD}"]
    assert [kind(c) for c in on_card] == ["PATCH"]  # the answer took the clicked card's place
    assert "Deploy of **prod** denied." in " ".join(_texts(on_card[0].content))
    assert "Deploy of **prod** denied." not in texts(fake, "reply")


def test_a_refused_click_never_replaces_the_card(errbot: LarkCardsBackend) -> None:
    request_id = ask_for_deploy(errbot)
    refused = click(request_id, ALICE, event_id="e8")  # Alice is not an admin
    refused["event"]["action"]["value"] = {"cmd": f"!approve {request_id}", "replace": True}
    fake = handle(errbot, refused)
    assert not [c for c in fake.messages() if c.path == f"/open-apis/im/v1/messages/{CARD}"]
    assert any("bot-admin" in text for text in texts(fake, "reply"))
