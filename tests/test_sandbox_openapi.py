"""The sandbox refuses what Feishu refuses, with Feishu's codes (docs/feishu-platform.md
§3-§5), and keeps what it accepts where the page and tests can see it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from lark_cards.api.client import LarkClient
from lark_cards.api.errors import CARD_REJECTED, LarkAPIError
from lark_cards.sandbox.openapi import FakeOpenPlatform
from lark_cards.sandbox.state import ALICE, GROUP_CHAT, default_chats, default_users

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SECRET = "sandbox-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    platform: FakeOpenPlatform
    clock: Clock
    session: aiohttp.ClientSession
    base: str
    token: str = ""

    async def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        async with self.session.request(
            method, self.base + path, headers=headers, **kwargs
        ) as response:
            return response.status, await response.json()

    async def tenant_token(self, app_secret: str) -> tuple[int, dict[str, Any]]:
        return await self.call(
            "POST",
            "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": "cli_test", "app_secret": app_secret},
        )

    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        chat_id: str = GROUP_CHAT,
        *,
        token: str | None = None,
        **fields: Any,
    ) -> tuple[int, dict[str, Any]]:
        """POST im/v1/messages to ``chat_id``; ``fields`` (``uuid``) join the body."""
        body = {"receive_id": chat_id, "msg_type": msg_type, "content": json.dumps(content)}
        return await self.call(
            "POST",
            "/open-apis/im/v1/messages",
            token=token,
            params={"receive_id_type": "chat_id"},
            json={**body, **fields},
        )

    async def send_card(self, card: dict[str, Any], chat_id: str = GROUP_CHAT, **fields: Any):
        return await self.send("interactive", card, chat_id, **fields)

    async def reply(self, message_id: str, text: str) -> tuple[int, dict[str, Any]]:
        content = json.dumps({"text": text})
        return await self.call(
            "POST",
            f"/open-apis/im/v1/messages/{message_id}/reply",
            json={"msg_type": "text", "content": content},
        )

    async def patch(self, message_id: str, card: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """PATCH the message's content with ``card``."""
        content = json.dumps(card)
        return await self.call(
            "PATCH", f"/open-apis/im/v1/messages/{message_id}", json={"content": content}
        )


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    clock = Clock()
    platform = FakeOpenPlatform(
        app_id="cli_test",
        app_secret=SECRET,
        token_ttl=7200,
        clock=clock,
        users=default_users(),
        chats=default_chats(),
    )
    server = TestServer(platform.app())
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        api = Api(platform, clock, session, str(server.make_url("")).rstrip("/"))
        status, body = await api.tenant_token(SECRET)
        assert status == 200, body
        api.token = body["tenant_access_token"]
        yield api
    await server.close()


def card(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "2.0", "config": {"update_multi": True}, "body": {"elements": list(elements)}}


def markdown(text: str) -> dict[str, Any]:
    return {"tag": "markdown", "content": text}


def table(n: int) -> dict[str, Any]:
    return {
        "tag": "table",
        "columns": [{"name": "k", "display_name": f"Table {n}", "data_type": "text"}],
        "rows": [{"k": "v"}],
    }


# ----- tokens (§3) -----------------------------------------------------------------------------


async def test_a_token_works_until_it_expires_then_99991663(api: Api):
    assert (await api.call("GET", "/open-apis/bot/v3/info"))[0] == 200
    api.clock.now += 7201
    status, body = await api.call("GET", "/open-apis/bot/v3/info")
    assert (status, body["code"]) == (400, 99991663)


@pytest.mark.parametrize(
    ("token", "code"), [("t-not-issued-by-the-sandbox", 99991663), ("", 99991661)]
)
async def test_a_wrong_or_missing_token_is_refused(api: Api, token: str, code: int):
    status, body = await api.send("text", {"text": "hi"}, token=token)
    assert (status, body["code"]) == (400, code)
    assert api.platform.messages == []


async def test_a_wrong_app_secret_gets_no_token(api: Api):
    status, body = await api.tenant_token("guess")
    assert (status, body["code"]) == (400, 10014)


# ----- cards Feishu rejects (§4.1, §5.4) -------------------------------------------------------


async def test_an_oversized_card_is_230025(api: Api):
    status, body = await api.send_card(card(markdown("x" * 31 * 1024)))
    assert (status, body["code"]) == (400, 230025)
    assert api.platform.messages == []


async def test_the_30_kb_limit_is_on_the_request_body_not_only_the_card(api: Api):
    # 29 KB of card JSON, but every quote is escaped again inside the ``content`` string.
    big = card(markdown('"' * (29 * 1024 - 200)))
    status, body = await api.send_card(big)
    assert (status, body["code"]) == (400, 230025)
    assert "request body" in body["msg"]


async def test_six_tables_are_230099_and_five_are_fine(api: Api):
    status, body = await api.send_card(card(*(table(n) for n in range(6))))
    assert (status, body["code"]) == (400, 230099)
    status, body = await api.send_card(card(*(table(n) for n in range(5))))
    assert (status, body["code"]) == (200, 0)


async def test_an_image_key_the_sandbox_never_issued_is_200570(api: Api):
    image = {"tag": "img", "img_key": "img_v3_never_uploaded", "alt": {"tag": "plain_text"}}
    status, body = await api.send_card(card(image))
    assert (status, body["code"]) == (400, 200570)
    status, body = await api.send_card(card(markdown("![logo](img_v3_never_uploaded)")))
    assert (status, body["code"]) == (400, 200570)


async def test_an_uploaded_image_key_is_accepted_and_served(api: Api):
    form = aiohttp.FormData()
    form.add_field("image_type", "message")
    form.add_field("image", PNG, filename="logo.png", content_type="image/png")
    status, body = await api.call("POST", "/open-apis/im/v1/images", data=form)
    assert (status, body["code"]) == (200, 0)
    key = body["data"]["image_key"]
    assert key.startswith("img_")
    image = {"tag": "img", "img_key": key, "alt": {"tag": "plain_text", "content": "logo"}}
    assert (await api.send_card(card(image)))[1]["code"] == 0
    async with api.session.get(f"{api.base}/api/images/{key}") as response:
        assert response.status == 404  # the page routes are not part of the bare platform
    headers = {"Authorization": f"Bearer {api.token}"}
    async with api.session.get(f"{api.base}/open-apis/im/v1/images/{key}", headers=headers) as r:
        assert await r.read() == PNG


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"image_type": "message", "image": b"not an image"}, 234001),
        ({"image_type": "sticker", "image": PNG}, 234001),
        ({"image_type": "message", "image": b""}, 234001),
    ],
)
async def test_bad_image_uploads_are_refused(api: Api, fields: dict[str, Any], code: int):
    form = aiohttp.FormData()
    for name, value in fields.items():
        if isinstance(value, bytes):
            form.add_field(name, value, filename="x.bin")
        else:
            form.add_field(name, value)
    status, body = await api.call("POST", "/open-apis/im/v1/images", data=form)
    assert (status, body["code"]) == (400, code)


async def test_file_upload_returns_a_file_key_for_file_messages(api: Api):
    form = aiohttp.FormData()
    form.add_field("file_type", "stream")
    form.add_field("file_name", "report.txt")
    form.add_field("file", b"hello", filename="report.txt")
    status, body = await api.call("POST", "/open-apis/im/v1/files", data=form)
    assert (status, body["code"]) == (200, 0)
    status, body = await api.send("file", {"file_key": body["data"]["file_key"]})
    assert (status, body["code"]) == (200, 0)


async def test_a_card_json_1_0_is_sent_and_only_a_version_change_is_200830(api: Api):
    # Feishu sends 1.0 cards (no "schema"); 200830 is for an update that changes the version.
    v1 = {"config": {"update_multi": True}, "elements": [{"tag": "div", "text": {"tag": "x"}}]}
    status, body = await api.send_card(v1)
    assert (status, body["code"]) == (200, 0)
    sent = body["data"]["message_id"]
    assert (await api.patch(sent, {**v1, "elements": []}))[1]["code"] == 0
    status, body = await api.patch(sent, card(markdown("now 2.0")))
    assert (status, body["code"]) == (400, 200830)
    status, body = await api.send_card({"elements": [{"no": "tag"}]})
    assert (status, body["code"]) == (400, 230099)
    image = {"tag": "img", "img_key": "img_v3_never_uploaded"}
    status, body = await api.send_card({"elements": [image]})
    assert (status, body["code"]) == (400, 200570)


# ----- rate limits (§4.4) ----------------------------------------------------------------------


async def test_the_sixth_message_in_one_second_to_one_chat_is_230020(api: Api):
    for n in range(5):
        assert (await api.send_card(card(markdown(f"m{n}"))))[1]["code"] == 0
        api.clock.now += 0.1
    status, body = await api.send_card(card(markdown("m5")))
    assert (status, body["code"]) == (400, 230020)
    # Another chat has its own limit, and the window slides.
    other = next(c for c in api.platform.chats if c != GROUP_CHAT)
    assert (await api.send_card(card(markdown("dm")), chat_id=other))[1]["code"] == 0
    api.clock.now += 0.6
    assert (await api.send_card(card(markdown("m6"))))[1]["code"] == 0
    assert len(api.platform.messages) == 7
    assert [code for _, r in api.platform.refusals for code in [r.code]] == [230020]


async def test_the_same_uuid_posts_once(api: Api):
    first = await api.send_card(card(markdown("once")), uuid="u-1")
    again = await api.send_card(card(markdown("once")), uuid="u-1")
    assert first[1]["data"]["message_id"] == again[1]["data"]["message_id"]
    assert len(api.platform.messages) == 1


async def test_a_refused_send_is_noted_in_the_chat(api: Api):
    await api.send_card(card(*(table(n) for n in range(6))))
    notes = [m for m in api.platform.conversations.timeline if m.sender_type == "system"]
    assert len(notes) == 1
    assert "230099" in notes[0].content["text"]
    assert notes[0].chat_id == GROUP_CHAT


# ----- replies, updates, reactions (§4.2, §4.3) ------------------------------------------------


async def test_reply_lands_in_the_chat_of_the_question(api: Api):
    question = api.platform.post_user_message(GROUP_CHAT, ALICE, "!help")
    status, body = await api.reply(question.message_id, "hi")
    assert (status, body["data"]["chat_id"]) == (200, GROUP_CHAT)
    assert api.platform.messages[0].reply_to == question.message_id
    status, body = await api.reply("om_unknown", "hi")
    assert (status, body["code"]) == (400, 230011)


async def test_patch_updates_a_card_in_place(api: Api):
    sent = (await api.send_card(card(markdown("Deploying…"))))[1]["data"]["message_id"]
    seq = api.platform.conversations.seq
    status, body = await api.patch(sent, card(markdown("Deployed ✅")))
    assert (status, body["code"]) == (200, 0)
    [message] = api.platform.messages
    assert message.content["body"]["elements"][0]["content"] == "Deployed ✅"
    assert message.updates == 1
    assert [m.message_id for m in api.platform.conversations.since(seq)] == [sent]


async def test_patch_refuses_what_feishu_refuses(api: Api):
    sent = (await api.send_card(card(markdown("v1"))))[1]["data"]["message_id"]
    v1_card = {"config": {"update_multi": True}, "elements": [markdown("1.0")]}
    status, body = await api.patch(sent, v1_card)
    assert (status, body["code"]) == (400, 200830)
    status, body = await api.patch(sent, card(*(table(n) for n in range(6))))
    assert (status, body["code"]) == (400, 230099)
    status, body = await api.patch("om_nope", card())
    assert (status, body["code"]) == (400, 230011)
    text = api.platform.post_user_message(GROUP_CHAT, ALICE, "hello")
    status, body = await api.patch(text.message_id, card(markdown("x")))
    assert (status, body["code"]) == (400, 230001)


async def test_patch_is_limited_to_5_per_second_per_message(api: Api):
    sent = (await api.send_card(card(markdown("0"))))[1]["data"]["message_id"]
    codes = [(await api.patch(sent, card(markdown(str(n)))))[1]["code"] for n in range(6)]
    assert codes == [0, 0, 0, 0, 0, 230020]


async def test_reactions_add_list_and_remove(api: Api):
    question = api.platform.post_user_message(GROUP_CHAT, ALICE, "!deploy")
    path = f"/open-apis/im/v1/messages/{question.message_id}/reactions"
    status, body = await api.call("POST", path, json={"reaction_type": {"emoji_type": "DONE"}})
    assert (status, body["data"]["reaction_type"]) == (200, {"emoji_type": "DONE"})
    reaction_id = body["data"]["reaction_id"]
    items = (await api.call("GET", path))[1]["data"]["items"]
    assert [i["reaction_id"] for i in items] == [reaction_id]
    assert (await api.call("DELETE", f"{path}/{reaction_id}"))[0] == 200
    assert question.reactions == []
    status, body = await api.call("POST", path, json={"reaction_type": {"emoji_type": ""}})
    assert (status, body["code"]) == (400, 231001)


async def test_a_chat_the_bot_is_not_in_is_refused(api: Api):
    status, body = await api.send_card(card(markdown("hi")), chat_id="oc_elsewhere")
    assert (status, body["code"]) == (400, 230002)


async def test_users_chats_and_members(api: Api):
    user = (await api.call("GET", f"/open-apis/contact/v3/users/{ALICE}"))[1]["data"]["user"]
    assert user["name"] == "Alice"
    chats = (await api.call("GET", "/open-apis/im/v1/chats"))[1]["data"]["items"]
    assert [c["chat_id"] for c in chats] == [GROUP_CHAT]  # p2p chats are not listed
    members = (await api.call("GET", f"/open-apis/im/v1/chats/{GROUP_CHAT}/members"))[1]
    assert {m["name"] for m in members["data"]["items"]} == {"Alice", "Bob"}


# ----- the project's own client sees Feishu's codes --------------------------------------------


async def test_the_client_gets_the_card_rejection_code_and_does_not_retry_it(api: Api):
    client = LarkClient(app_id="cli_test", app_secret=SECRET, base_url=api.base)
    await client.start()
    try:
        with pytest.raises(LarkAPIError) as raised:
            await client.send_message(
                GROUP_CHAT, "interactive", card(*(table(n) for n in range(6)))
            )
    finally:
        await client.close()
    assert raised.value.code == 230099
    assert raised.value.code in CARD_REJECTED
    assert len(api.platform.refusals) == 1  # refused once: a card error is not retried
