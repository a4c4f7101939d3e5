"""The sandbox answers as Feishu does where lark-oapi (the official SDK) and the bot rely on it:
SDK-shaped uploads, filtered reaction lists, receive_id types, card JSON 1.0, reply and thread
ids, message edits. (Hostile input: test_sandbox_hostile.py; rooms and downloads driven by the
bot's own code: test_sandbox_rooms.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_live import APP_ID, LiveSandbox, delivered_event

from lark_cards.api.reactions import ReactionBook
from lark_cards.inbound.events import parse_message
from lark_cards.sandbox.chats import public
from lark_cards.sandbox.state import ALICE, BOB, GROUP_CHAT, p2p_chat_id

IM = "/open-apis/im/v1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def live(loop: asyncio.AbstractEventLoop) -> Iterator[LiveSandbox]:
    sandbox = LiveSandbox(loop).start()
    yield sandbox
    sandbox.stop()


def sdk_multipart(fields: dict[str, str | bytes]) -> tuple[bytes, dict[str, str]]:
    """The body lark-oapi's sync client sends (``requests_toolbelt.MultipartEncoder`` over a
    dict): every part, the file too, with a bare ``Content-Disposition: form-data; name=``
    and no ``filename``, no Content-Type."""
    body = b""
    for name, value in fields.items():
        data = value if isinstance(value, bytes) else value.encode()
        body += b'--B0UNDARY\r\nContent-Disposition: form-data; name="' + name.encode()
        body += b'"\r\n\r\n' + data + b"\r\n"
    body += b"--B0UNDARY--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=B0UNDARY"}


def upload(live: LiveSandbox, path: str, fields: dict[str, str | bytes]) -> tuple[int, Any]:
    body, headers = sdk_multipart(fields)
    answer = live.call("POST", path, data=body, headers=headers)
    return answer.status, answer.json()


def send(live: LiveSandbox, id_type: str, receive_id: str, msg_type: str, content: Any):
    body = {"receive_id": receive_id, "msg_type": msg_type, "content": json.dumps(content)}
    answer = live.call("POST", f"{IM}/messages", params={"receive_id_type": id_type}, json=body)
    return answer.status, answer.json()


def reply(live: LiveSandbox, message_id: str, text: str, *, in_thread: bool = False):
    body = {"msg_type": "text", "content": json.dumps({"text": text})}
    if in_thread:
        body["reply_in_thread"] = True
    answer = live.call("POST", f"{IM}/messages/{message_id}/reply", json=body)
    return answer.status, answer.json()


# ----- uploads as the official SDK sends them ---------------------------------------------------


def test_an_sdk_file_upload_without_filename_is_read_like_feishu(live: LiveSandbox):
    status, body = upload(
        live,
        f"{IM}/files",
        {"file_type": "stream", "file_name": "dump.bin", "file": b"\xff\xfe\x00 not utf-8"},
    )
    assert (status, body["code"]) == (200, 0)
    stored = live.platform.uploads.files[body["data"]["file_key"]]
    assert (stored.name, stored.data) == ("dump.bin", b"\xff\xfe\x00 not utf-8")


def test_an_sdk_image_upload_without_filename_is_accepted(live: LiveSandbox):
    status, body = upload(live, f"{IM}/images", {"image_type": "message", "image": PNG})
    assert (status, body["code"]) == (200, 0)
    assert live.platform.uploads.images[body["data"]["image_key"]].data == PNG


def test_a_file_needs_a_file_name_and_a_duration_must_be_milliseconds(live: LiveSandbox):
    assert upload(live, f"{IM}/files", {"file_type": "pdf", "file": b"%PDF"})[1]["code"] == 234001
    fields = {"file_type": "mp4", "file_name": "a.mp4", "file": b"\x00" * 8}
    assert upload(live, f"{IM}/files", {**fields, "duration": "1.5s"})[1]["code"] == 234001
    # Feishu's upload doc makes duration optional ("否") even for mp4 and opus.
    key = upload(live, f"{IM}/files", fields)[1]["data"]["file_key"]
    assert live.platform.uploads.files[key].duration is None
    key = upload(live, f"{IM}/files", {**fields, "duration": "3000"})[1]["data"]["file_key"]
    assert live.platform.uploads.files[key].duration == 3000


@pytest.mark.parametrize(
    ("file_type", "right", "wrong"), [("mp4", "media", "file"), ("opus", "audio", "media")]
)
def test_an_mp4_goes_as_media_and_an_opus_as_audio_else_230055(
    live: LiveSandbox, file_type: str, right: str, wrong: str
):
    fields = {"file_type": file_type, "file_name": f"a.{file_type}", "file": b"\x01" * 8}
    key = upload(live, f"{IM}/files", fields)[1]["data"]["file_key"]
    assert send(live, "chat_id", GROUP_CHAT, wrong, {"file_key": key})[1]["code"] == 230055
    assert send(live, "chat_id", GROUP_CHAT, right, {"file_key": key})[1]["code"] == 0


# ----- reactions ------------------------------------------------------------------------------


def test_the_reaction_list_is_filtered_by_reaction_type(live: LiveSandbox):
    question = live.platform.post_user_message(GROUP_CHAT, ALICE, "!deploy")
    path = f"{IM}/messages/{question.message_id}/reactions"
    for emoji in ("THUMBSUP", "SMILE", "THUMBSUP"):
        live.call("POST", path, json={"reaction_type": {"emoji_type": emoji}})
    items = live.call("GET", path, params={"reaction_type": "SMILE"}).json()["data"]["items"]
    assert [i["reaction_type"]["emoji_type"] for i in items] == ["SMILE"]
    assert len(live.call("GET", path).json()["data"]["items"]) == 3


def test_the_bots_remove_reaction_smile_leaves_the_thumbsup(live: LiveSandbox):
    question = live.platform.post_user_message(GROUP_CHAT, ALICE, "!deploy")
    path = f"{IM}/messages/{question.message_id}/reactions"
    live.call("POST", path, json={"reaction_type": {"emoji_type": "THUMBSUP"}})
    client = live.client()
    try:
        removed = live.run(ReactionBook(app_id=APP_ID).remove(client, question.message_id, "SMILE"))
    finally:
        live.run(client.close())
    assert removed == 0
    assert [r.emoji_type for r in question.reactions] == ["THUMBSUP"]


# ----- receive_id types (§4.1) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_type", "receive_id", "person"),
    [
        ("open_id", ALICE, ALICE),
        ("user_id", "alice", ALICE),
        ("union_id", "on_" + BOB[3:], BOB),
        ("email", "bob@sandbox.example", BOB),
    ],
)
def test_every_receive_id_type_reaches_the_persons_direct_chat(
    live: LiveSandbox, id_type: str, receive_id: str, person: str
):
    status, body = send(live, id_type, receive_id, "text", {"text": "hi"})
    assert (status, body["data"]["chat_id"]) == (200, p2p_chat_id(person))


@pytest.mark.parametrize(
    ("id_type", "receive_id"),
    [("open_id", "ou_nobody"), ("user_id", ALICE), ("union_id", "alice"), ("email", "x@y.z")],
)
def test_an_id_that_names_nobody_is_230001_invalid_receive_id(
    live: LiveSandbox, id_type: str, receive_id: str
):
    status, body = send(live, id_type, receive_id, "text", {"text": "hi"})
    assert (status, body["code"]) == (400, 230001)
    assert "invalid receive_id" in body["msg"]
    assert live.platform.messages == []


# ----- replies and threads (§4.2) -------------------------------------------------------------


def test_a_reply_has_the_question_as_parent_and_root_and_no_thread(live: LiveSandbox):
    question = live.platform.post_user_message(GROUP_CHAT, ALICE, "!help")
    first = reply(live, question.message_id, "one")[1]["data"]
    second = reply(live, first["message_id"], "two")[1]["data"]
    assert (first["root_id"], first["parent_id"], first["thread_id"]) == (
        question.message_id,
        question.message_id,
        "",
    )
    assert (second["root_id"], second["parent_id"]) == (question.message_id, first["message_id"])


def test_a_reply_in_thread_opens_a_thread_that_later_replies_stay_in(live: LiveSandbox):
    question = live.platform.post_user_message(GROUP_CHAT, ALICE, "!deploy")
    threaded = reply(live, question.message_id, "on it", in_thread=True)[1]["data"]
    assert threaded["thread_id"].startswith("omt_")
    assert question.thread_id == threaded["thread_id"]  # the root is in its thread too
    # A reply to a message in a thread goes to that thread even without reply_in_thread.
    later = reply(live, threaded["message_id"], "done")[1]["data"]
    assert (later["root_id"], later["parent_id"], later["thread_id"]) == (
        question.message_id,
        threaded["message_id"],
        threaded["thread_id"],
    )


def test_in_a_topic_chat_every_message_is_in_a_thread(live: LiveSandbox):
    topic = {**live.platform.chats[GROUP_CHAT], "group_message_type": "thread"}
    live.platform.chats["oc_topic"] = topic
    started = send(live, "chat_id", "oc_topic", "text", {"text": "news"})[1]["data"]
    assert started["thread_id"].startswith("omt_")
    answer = reply(live, started["message_id"], "ack")[1]["data"]
    assert answer["thread_id"] == started["thread_id"]


def test_a_user_reply_in_thread_is_delivered_with_root_parent_and_thread(live: LiveSandbox):
    bot_card = reply(
        live,
        live.platform.post_user_message(GROUP_CHAT, ALICE, "!x").message_id,
        "card",
        in_thread=True,
    )[1]["data"]
    answer = live.platform.post_user_message(
        GROUP_CHAT, BOB, "!more", reply_to=bot_card["message_id"]
    )
    envelope = delivered_event(answer)
    raw = envelope.event["message"]
    assert (raw["root_id"], raw["parent_id"], raw["thread_id"]) == (
        bot_card["root_id"],
        bot_card["message_id"],
        bot_card["thread_id"],
    )
    received = parse_message(envelope)
    assert (received.root_id, received.thread_id) == (bot_card["root_id"], bot_card["thread_id"])


def test_a_plain_user_message_is_delivered_without_thread_ids(live: LiveSandbox):
    raw = delivered_event(live.platform.post_user_message(GROUP_CHAT, ALICE, "hi"))
    message = raw.event["message"]
    assert (message["root_id"], message["parent_id"], message["thread_id"]) == ("", "", "")


def test_a_user_can_start_a_thread_on_a_bot_message(live: LiveSandbox):
    sent = send(live, "chat_id", GROUP_CHAT, "text", {"text": "status?"})[1]["data"]
    asked = live.platform.post_user_message(
        GROUP_CHAT, ALICE, "!why", reply_to=sent["message_id"], in_thread=True
    )
    assert asked.thread_id.startswith("omt_")
    assert (asked.root_id, asked.reply_to) == (sent["message_id"], sent["message_id"])
    assert live.platform.conversations.get(sent["message_id"]).thread_id == asked.thread_id


# ----- message edits (PUT) --------------------------------------------------------------------


def edit(live: LiveSandbox, message_id: str, msg_type: str, content: Any):
    body = {"msg_type": msg_type, "content": json.dumps(content)}
    answer = live.call("PUT", f"{IM}/messages/{message_id}", json=body)
    return answer.status, answer.json()


def test_a_text_the_bot_sent_can_be_edited_twenty_times(live: LiveSandbox):
    sent = send(live, "chat_id", GROUP_CHAT, "text", {"text": "v0"})[1]["data"]["message_id"]
    for n in range(20):
        status, body = edit(live, sent, "text", {"text": f"v{n + 1}"})
        assert (status, body["code"]) == (200, 0)
    assert json.loads(body["data"]["body"]["content"]) == {"text": "v20"}
    assert edit(live, sent, "text", {"text": "v21"})[1]["code"] == 230001
    assert live.platform.conversations.get(sent).content == {"text": "v20"}


def test_edits_refuse_cards_other_peoples_messages_and_type_changes(live: LiveSandbox):
    card = {"elements": [{"tag": "div", "text": {"tag": "plain_text", "content": "x"}}]}
    card_id = send(live, "chat_id", GROUP_CHAT, "interactive", card)[1]["data"]["message_id"]
    assert edit(live, card_id, "interactive", card)[1]["code"] == 230054
    users = live.platform.post_user_message(GROUP_CHAT, ALICE, "mine").message_id
    assert edit(live, users, "text", {"text": "no"})[1]["code"] == 230001
    text_id = send(live, "chat_id", GROUP_CHAT, "text", {"text": "t"})[1]["data"]["message_id"]
    post = {"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "p"}]]}}
    assert edit(live, text_id, "post", post)[1]["code"] == 230001
    assert edit(live, "om_gone", "text", {"text": "x"})[1]["code"] == 230011


def test_the_group_chat_profile_hides_the_sandboxs_own_keys(live: LiveSandbox):
    shown = live.call("GET", f"{IM}/chats/{GROUP_CHAT}").json()["data"]
    assert shown == public(live.platform.chats[GROUP_CHAT])
    assert "members" not in shown


# ----- found in review: call sequences that left the sandbox in a state Feishu cannot be in ------

ALICE_DM = p2p_chat_id(ALICE)


def create_chat(live: LiveSandbox) -> str:
    answer = live.call("POST", f"{IM}/chats", json={"name": "ops", "user_id_list": [BOB]})
    assert answer.status == 200, answer.json()
    return answer.json()["data"]["chat_id"]


def test_the_bot_cannot_leave_a_direct_chat(live: LiveSandbox):
    """chat-member/delete is a group API: a bot cannot leave a p2p chat, and a send to the
    direct chat answers the same by open_id and by chat_id."""
    answer = live.call(
        "DELETE",
        f"{IM}/chats/{ALICE_DM}/members",
        params={"member_id_type": "app_id"},
        json={"id_list": [APP_ID]},
    )
    by_open_id, _ = send(live, "open_id", ALICE, "text", {"text": "hi"})
    by_chat_id, _ = send(live, "chat_id", ALICE_DM, "text", {"text": "hi"})
    assert by_open_id == by_chat_id, "the same direct chat answers differently by id type"
    assert (answer.status, answer.json()["code"]) == (400, 232008)


def test_members_cannot_be_added_to_a_direct_chat(live: LiveSandbox):
    """chat-member/create on a p2p chat: only groups take members."""
    answer = live.call("POST", f"{IM}/chats/{ALICE_DM}/members", json={"id_list": [BOB]})
    assert BOB not in live.platform.chats[ALICE_DM]["members"]
    assert (answer.status, answer.json()["code"]) == (400, 232008)


def test_a_direct_chat_cannot_become_a_topic_chat(live: LiveSandbox):
    """chat/update on a p2p chat: a DM has no name, type or message mode to change."""
    answer = live.call(
        "PUT",
        f"{IM}/chats/{ALICE_DM}",
        json={"group_message_type": "thread", "chat_type": "public", "name": "x"},
    )
    _, sent = send(live, "open_id", ALICE, "text", {"text": "hi"})
    assert sent["data"]["thread_id"] == "", "a direct message opened a thread"
    assert (answer.status, answer.json()["code"]) == (400, 232008)


def test_a_file_in_a_disbanded_chat_cannot_be_downloaded(live: LiveSandbox):
    """message-resource/get after chat/delete: the chat's messages went with it (232009)."""
    chat_id = create_chat(live)
    live.platform.chats[chat_id]["members"].append(ALICE)
    message = live.platform.post_user_file(chat_id, ALICE, PNG, "shot.png")
    assert live.call("DELETE", f"{IM}/chats/{chat_id}").status == 200
    key = message.content["image_key"]
    answer = live.call(
        "GET", f"{IM}/messages/{message.message_id}/resources/{key}", params={"type": "image"}
    )
    assert (answer.status, answer.json()["code"]) == (400, 232009)


def test_a_card_in_a_disbanded_chat_cannot_be_patched_or_reacted_to(live: LiveSandbox):
    """PATCH / reactions on a message of a disbanded chat: 232009, as every chat call."""
    chat_id = create_chat(live)
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "v1"}]}}
    _, sent = send(live, "chat_id", chat_id, "interactive", card)
    message_id = sent["data"]["message_id"]
    assert live.call("DELETE", f"{IM}/chats/{chat_id}").status == 200
    card["body"]["elements"][0]["content"] = "v2"
    patched = live.call("PATCH", f"{IM}/messages/{message_id}", json={"content": json.dumps(card)})
    reacted = live.call(
        "POST",
        f"{IM}/messages/{message_id}/reactions",
        json={"reaction_type": {"emoji_type": "SMILE"}},
    )
    assert (patched.status, reacted.status) == (400, 400)
    assert patched.json()["code"] == reacted.json()["code"] == 232009


def test_a_refusal_notice_is_no_message_to_reply_or_react_to(live: LiveSandbox):
    """A refusal's ``system`` notice is the page's, not a Feishu message: reply and reactions
    find no such message (230011)."""
    status, _ = send(live, "chat_id", GROUP_CHAT, "image", {"image_key": "img_no"})
    assert status == 400  # a key it never issued
    [notice] = [m for m in live.platform.conversations.timeline if m.sender_type == "system"]
    replied, answer = reply(live, notice.message_id, "re", in_thread=True)
    reacted = live.call(
        "POST",
        f"{IM}/messages/{notice.message_id}/reactions",
        json={"reaction_type": {"emoji_type": "SMILE"}},
    )
    assert (replied, reacted.status) == (400, 400)
    assert answer["code"] == reacted.json()["code"] == 230011


def test_every_message_of_a_thread_has_the_threads_root(live: LiveSandbox):
    """A thread opened on a message that is itself a reply (A ← B, then reply_in_thread to
    B): a later plain reply to B goes into the same thread (§4.2) with the same root_id."""
    question = live.platform.post_user_message(GROUP_CHAT, ALICE, "!status")
    _, first = reply(live, question.message_id, "re")  # B: a plain reply, root A
    b = first["data"]["message_id"]
    _, in_thread = reply(live, b, "re", in_thread=True)  # opens thread T on B
    _, later = reply(live, b, "re")  # a plain reply to B: into T as well
    t1, t2 = in_thread["data"], later["data"]
    assert t1["thread_id"]
    assert t1["thread_id"] == t2["thread_id"]
    assert t1["root_id"] == t2["root_id"] == b
