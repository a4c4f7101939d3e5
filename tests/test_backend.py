"""The Errbot contract of LarkCardsBackend, without HTTP: events in, sends out."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import threading
from pathlib import Path

import pytest
from api_fakes import FakeOpenAPI
from errbot.backends.base import Message
from errbot_config import BOT_OPEN_ID, errbot_config, offline_backend
from feishu_payloads import envelope

from lark_cards import identifiers
from lark_cards.backend import LarkCardsBackend
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.outbound.delivery import Delivery
from lark_cards.render import render_reply
from lark_cards.transport.envelope import Envelope

BOT = BOT_OPEN_ID
ALICE = "ou_alice000000000000000000000000000"
SENDER = "ou_84aad35d084aa403a838cf73ee18467"
GROUP = "oc_a0553eda9014c201e6969b478895c230"


def directory_fake() -> FakeOpenAPI:
    """The Open API with the profile look-ups the backend makes."""
    fake = FakeOpenAPI()
    fake.on(
        "GET",
        "/open-apis/contact/v3/users/*",
        lambda _: {
            "code": 0,
            "data": {"user": {"name": "Alice Liddell", "email": "alice@example.com"}},
        },
    )
    fake.on("GET", "/open-apis/im/v1/chats/*", lambda _: {"code": 0, "data": {"name": "ops"}})
    chats = [{"chat_id": GROUP, "name": "ops"}, {"chat_id": "oc_two", "name": "dev"}]
    fake.on("GET", "/open-apis/im/v1/chats", lambda _: {"code": 0, "data": {"items": chats}})
    return fake


@pytest.fixture
def backend(tmp_path: Path) -> LarkCardsBackend:
    return offline_backend(errbot_config(tmp_path))


@pytest.fixture
def running(backend: LarkCardsBackend, loop: asyncio.AbstractEventLoop) -> LarkCardsBackend:
    """The backend with its loop running in a thread, as during serve_once."""
    backend.bridge.attach(loop)
    backend.client = directory_fake()
    backend.delivery = Delivery(backend.client, backend.render_options, upload_images=False)
    return backend


def fake_of(bot: LarkCardsBackend) -> FakeOpenAPI:
    assert isinstance(bot.client, FakeOpenAPI)
    return bot.client


def api_calls(bot: LarkCardsBackend) -> list[str]:
    """The Open API paths the backend called, token requests left out."""
    return [c.path for c in fake_of(bot).calls if "tenant_access_token" not in c.path]


def received(backend: LarkCardsBackend, *events: Envelope) -> tuple[list[Message], list[list]]:
    """Hand ``events`` to the backend's inbound side: the messages that reached
    ``callback_message`` and the people lists that reached ``callback_mention``."""
    messages: list[Message] = []
    mentions: list[list] = []
    backend.callback_message = messages.append  # type: ignore[method-assign]
    backend.callback_mention = (  # type: ignore[method-assign]
        lambda msg, people: mentions.append(people)
    )
    for event in events:
        backend.inbound.handle(event)
    return messages, mentions


def test_config_error_stops_startup_with_one_line(tmp_path: Path):
    with pytest.raises(SystemExit) as info:
        LarkCardsBackend(errbot_config(tmp_path, port="80"))
    assert "BOT_IDENTITY['port']" in str(info.value.code)


def test_errbot_does_not_presplit_markdown(backend: LarkCardsBackend):
    assert backend.message_size_limit >= 1_000_000
    assert backend.mode == "lark"


def test_direct_message_becomes_a_person_to_bot_message(backend):
    [msg], mentions = received(backend, envelope("p2p_text"))
    assert msg.body == "!echo hi"
    assert msg.is_direct
    assert msg.frm == LarkPerson(SENDER)
    assert msg.to == backend.bot_identifier
    assert msg.extras["message_id"] == "om_5ce6d572455d361153b7cb51da133945"
    assert mentions == []


def test_group_message_strips_the_bot_mention_and_reports_mentions(backend):
    [msg], [people] = received(backend, envelope("group_text_mentions"))
    assert msg.body == "!echo hi @Alice"
    assert msg.is_group
    assert isinstance(msg.frm, LarkRoomOccupant)
    assert msg.frm.room == LarkRoom(GROUP)
    assert msg.frm.aclattr == SENDER
    assert msg.to == LarkRoom(GROUP)
    assert backend.bot_identifier in people
    assert LarkPerson(ALICE) in people


def test_unknown_events_and_unreadable_messages_do_nothing(backend, caplog):
    caplog.set_level("DEBUG", logger="lark_cards.inbound")
    broken = envelope("p2p_text")
    del broken.event["message"]["chat_id"]
    assert received(backend, envelope("unknown_event"), broken) == ([], [])
    assert "Ignoring event type im.chat.updated_v1" in caplog.text


def incoming(backend: LarkCardsBackend, name: str) -> Message:
    [question], _ = received(backend, envelope(name))
    return question


def test_build_reply_in_a_group_answers_under_the_question(backend):
    question = incoming(backend, "group_text_mentions")
    reply = backend.build_reply(question, "ok", threaded=True)
    assert reply.to == LarkRoom(GROUP)
    assert reply.frm == backend.bot_identifier
    assert reply.parent is question
    assert reply.extras["reply_in_thread"] is True


def test_private_reply_to_a_group_message_goes_to_the_person(backend):
    question = incoming(backend, "group_text_mentions")
    reply = backend.build_reply(question, "psst", private=True)
    assert reply.to == LarkPerson(SENDER)
    assert not isinstance(reply.to, LarkRoomOccupant)
    assert reply.parent is None


def test_prefix_groupchat_reply_mentions_the_asker_on_its_own_line(backend):
    question = incoming(backend, "group_text_mentions")
    reply = backend.build_reply(question, "```\ncode first\n```")
    backend.prefix_groupchat_reply(reply, question.frm)
    assert reply.extras["mention"] == SENDER
    [item] = render_reply(reply.body, mention=reply.extras["mention"])
    mention, code = item.content["body"]["elements"]
    # The mention sits above the reply, so a reply starting with a block stays that block.
    assert mention == {"tag": "markdown", "content": f"<at id={SENDER}></at>"}
    assert code == {"tag": "markdown", "content": "```\ncode first\n```"}


def test_mentions_in_reply_text_stay_text_and_only_open_ids_are_mentioned(backend):
    [item] = render_reply("ping <at id=all></at> <at email=ceo@corp.com></at>", mention="all")
    content = item.content["body"]["elements"][0]["content"]
    assert "<at" not in content  # shown as text (&#60;at …), never a live @all
    assert "&#60;at id=all&#62;" in content


def wait_for_send(bot: LarkCardsBackend, count: int = 1) -> list:
    for _ in range(500):
        if len(messages := fake_of(bot).messages()) >= count:
            return messages
        threading.Event().wait(0.01)
    raise AssertionError(f"expected {count} message(s), got {fake_of(bot).messages()}")


def test_reply_goes_through_the_reply_api_on_the_loop_thread(running):
    question = incoming(running, "group_text_mentions")
    running.send_simple_reply(question, "**done**")
    [call] = wait_for_send(running)
    assert call.path == "/open-apis/im/v1/messages/om_dc13264520392913993dd051dba21dcf/reply"
    assert call.json["msg_type"] == "interactive"
    assert call.json["reply_in_thread"] is False
    card = call.content
    assert card["schema"] == "2.0"
    assert card["body"]["elements"][0] == {"tag": "markdown", "content": "**done**"}
    assert {c.thread for c in fake_of(running).calls} == {"lark-loop"}


def test_messages_without_a_question_are_sent_to_the_chat_or_person(running):
    running.send(LarkRoom(GROUP), "to the room")
    running.send(LarkPerson(ALICE), "to alice")
    running.send(LarkRoomOccupant(ALICE, LarkRoom(GROUP)), "to alice in ops")
    calls = wait_for_send(running, 3)
    sent = [(c.json["receive_id"], c.params["receive_id_type"], c.content) for c in calls]
    targets = sorted((to, kind) for to, kind, _ in sent)
    assert targets == sorted([(GROUP, "chat_id"), (ALICE, "open_id"), (GROUP, "chat_id")])
    # Order is kept per chat (different chats may overtake each other).
    in_group = [card["body"]["elements"][0]["content"] for to, _, card in sent if to == GROUP]
    assert in_group == ["to the room", "to alice in ops"]


def test_send_before_connecting_is_logged_not_raised(backend, caplog):
    backend.send(LarkRoom(GROUP), "too early")
    assert "not connected" in caplog.text


def test_profiles_are_fetched_lazily_once_and_rooms_listed(running):
    alice = running.build_identifier(ALICE)
    assert api_calls(running) == []  # building an identifier costs no API call
    assert alice.fullname == "Alice Liddell"
    assert alice.email == "alice@example.com"
    assert alice.nick == "Alice Liddell"
    assert api_calls(running) == [f"/open-apis/contact/v3/users/{ALICE}"]
    rooms = running.rooms()
    assert rooms == [LarkRoom(GROUP), LarkRoom("oc_two")]
    assert rooms[1].name == "dev"
    # Remembered from the list: no chat call, also for an identifier built later.
    assert running.build_identifier("oc_two").name == "dev"
    assert api_calls(running)[1:] == ["/open-apis/im/v1/chats"]


def test_identifiers_made_without_the_backend_make_no_calls(running):
    assert LarkPerson(ALICE).fullname == ""
    assert LarkRoom("oc_two").name == ""
    assert api_calls(running) == []


def test_while_connected_plugin_made_and_unpickled_identifiers_reach_the_backend(running):
    stored = pickle.loads(pickle.dumps(running.build_identifier(ALICE)))
    identifiers.install(running.identities)  # what connecting does
    try:
        assert stored.fullname == "Alice Liddell"
        assert LarkRoom("oc_two").name == "ops"  # a plugin's own LarkRoom
    finally:
        identifiers.uninstall(running.identities)
    assert LarkRoom("oc_three").name == ""  # after shutdown: nobody to ask


def test_profile_lookup_on_the_loop_thread_does_not_block(running):
    async def on_loop() -> str:
        return running.build_identifier(ALICE).fullname

    assert running.bridge.loop is not None
    name = asyncio.run_coroutine_threadsafe(on_loop(), running.bridge.loop).result(2)
    assert name == ""
    assert api_calls(running) == []


@pytest.mark.parametrize("text", [SENDER, GROUP, f"{GROUP}/{SENDER}"])
def test_identifiers_round_trip_and_pickle(backend, text):
    identifier = backend.build_identifier(text)
    assert str(identifier) == text
    assert backend.build_identifier(str(identifier)) == identifier
    clone = pickle.loads(pickle.dumps(identifier))
    assert clone == identifier
    assert hash(clone) == hash(identifier)


@pytest.mark.parametrize("text", ["", "alice", "ou_", "oc_x/alice", "@bob"])
def test_build_identifier_rejects_other_text(backend, text):
    with pytest.raises(ValueError, match="Feishu identifier"):
        backend.build_identifier(text)


def test_query_room_and_is_from_self(backend):
    assert backend.query_room(GROUP) == LarkRoom(GROUP)
    with pytest.raises(ValueError, match="not a chat id"):
        backend.query_room(SENDER)
    own = Message("x", frm=LarkPerson(BOT), to=LarkPerson(SENDER))
    assert backend.is_from_self(own)
    assert not backend.is_from_self(Message("x", frm=LarkPerson(SENDER), to=backend.bot_identifier))


async def test_shutdown_drains_pending_sends_within_the_bound(backend):
    backend.settings = dataclasses.replace(backend.settings, shutdown_timeout=0.5)
    finished: list[str] = []

    async def send(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        finished.append(name)

    backend.bridge.attach(asyncio.get_running_loop())
    quick = backend.bridge.submit(send("quick", 0.05))
    stuck = backend.bridge.submit(send("stuck", 60))
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    await backend._drain()
    assert asyncio.get_running_loop().time() - started < 2
    assert finished == ["quick"]
    await asyncio.sleep(0.01)  # the futures learn their tasks' ends one loop turn later
    assert quick.done()
    assert stuck.cancelled()


def test_a_slow_to_render_reply_is_not_overtaken_in_its_chat(running):
    big = "\n\n".join(f"paragraph {i} " + "word " * 40 for i in range(1500))  # several cards
    running.send(LarkRoom(GROUP), big)
    running.send(LarkRoom(GROUP), "small and quick")
    for _ in range(1000):
        calls = fake_of(running).messages()
        if calls and calls[-1].content["body"]["elements"][0]["content"] == "small and quick":
            break
        threading.Event().wait(0.01)
    contents = [c.content["body"]["elements"][0]["content"] for c in fake_of(running).messages()]
    assert len(contents) > 2
    assert contents[-1] == "small and quick"
    assert all("small and quick" not in content for content in contents[:-1])


def test_the_inbound_backlog_is_counted_for_the_webhook_bound(tmp_path, monkeypatch):
    backend = offline_backend(errbot_config(tmp_path))
    release = threading.Event()
    monkeypatch.setattr(backend, "callback_message", lambda msg: release.wait(5))
    inbound = type(backend.inbound)(backend, backlog=3)
    for _ in range(3):
        inbound.dispatch(envelope("p2p_text"))
    assert inbound.busy()
    release.set()
    asyncio.run(inbound.drain(5))  # FIFO: returns once the three reached Errbot
    assert not inbound.busy()
    inbound.close()


def test_the_backend_makes_rendering_threads_yield_the_gil_to_the_loop_sooner(
    monkeypatch, tmp_path: Path
):
    import sys

    from lark_cards import bridge

    interval = [0.005]  # CPython's default
    monkeypatch.setattr(sys, "getswitchinterval", lambda: interval[0])
    monkeypatch.setattr(sys, "setswitchinterval", lambda value: interval.__setitem__(0, value))
    LarkCardsBackend(errbot_config(tmp_path))
    assert interval == [bridge.SWITCH_INTERVAL]
    interval[0] = 0.002  # an interval someone chose is kept
    bridge.favour_the_loop()
    assert interval == [0.002]
