"""The Errbot contract of LarkCardsBackend, without HTTP: events in, sends out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from errbot.backends.base import Message
from errbot_config import BOT_OPEN_ID, errbot_config, offline_backend

from lark_cards.backend import LarkCardsBackend
from lark_cards.events import parse_callback
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.outbound import Sender
from lark_cards.render import render_reply

FIXTURES = Path(__file__).parent / "fixtures" / "events"
BOT = BOT_OPEN_ID
ALICE = "ou_alice000000000000000000000000000"
SENDER = "ou_84aad35d084aa403a838cf73ee18467"
GROUP = "oc_a0553eda9014c201e6969b478895c230"


class FakeClient:
    """Records what the backend asks of the Open API, and on which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.threads: list[str] = []
        self.sent = asyncio.Event()

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        self.threads.append(threading.current_thread().name)
        self.sent.set()

    async def send_message(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._record("send", *args, **kwargs)
        return {"message_id": "om_sent"}

    async def reply_message(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._record("reply", *args, **kwargs)
        return {"message_id": "om_reply"}

    async def user_info(self, open_id: str) -> dict[str, Any]:
        self._record("user", open_id)
        return {"name": "Alice Liddell", "email": "alice@example.com"}

    async def chat_info(self, chat_id: str) -> dict[str, Any]:
        self._record("chat", chat_id)
        return {"name": "ops"}

    async def list_chats(self) -> list[dict[str, Any]]:
        self._record("chats")
        return [{"chat_id": GROUP, "name": "ops"}, {"chat_id": "oc_two", "name": "dev"}]


@pytest.fixture
def backend(tmp_path: Path) -> LarkCardsBackend:
    return offline_backend(errbot_config(tmp_path))


@pytest.fixture
def running(backend: LarkCardsBackend, loop: asyncio.AbstractEventLoop) -> LarkCardsBackend:
    """The backend with its loop running in a thread, as during serve_once."""
    backend._loop = loop
    backend.client = FakeClient()  # type: ignore[assignment]
    backend.sender = Sender(backend.client, backend.render_options, upload_images=False)
    return backend


def envelope(name: str):
    return parse_callback(json.loads((FIXTURES / f"{name}.json").read_text()))


def capture(backend: LarkCardsBackend, monkeypatch) -> dict[str, list]:
    seen: dict[str, list] = {"messages": [], "mentions": []}
    monkeypatch.setattr(backend, "callback_message", seen["messages"].append)
    monkeypatch.setattr(
        backend, "callback_mention", lambda msg, people: seen["mentions"].append(people)
    )
    return seen


def test_config_error_stops_startup_with_one_line(tmp_path: Path):
    with pytest.raises(SystemExit) as info:
        LarkCardsBackend(errbot_config(tmp_path, port="80"))
    assert "BOT_IDENTITY['port']" in str(info.value.code)


def test_errbot_does_not_presplit_markdown(backend: LarkCardsBackend):
    assert backend.message_size_limit >= 1_000_000
    assert backend.mode == "lark"


def test_direct_message_becomes_a_person_to_bot_message(backend, monkeypatch):
    seen = capture(backend, monkeypatch)
    backend._handle_envelope(envelope("p2p_text"))
    [msg] = seen["messages"]
    assert msg.body == "!echo hi"
    assert msg.is_direct
    assert msg.frm == LarkPerson(SENDER)
    assert msg.to == backend.bot_identifier
    assert msg.extras["message_id"] == "om_5ce6d572455d361153b7cb51da133945"
    assert seen["mentions"] == []


def test_group_message_strips_the_bot_mention_and_reports_mentions(backend, monkeypatch):
    seen = capture(backend, monkeypatch)
    backend._handle_envelope(envelope("group_text_mentions"))
    [msg] = seen["messages"]
    assert msg.body == "!echo hi @Alice"
    assert msg.is_group
    assert isinstance(msg.frm, LarkRoomOccupant)
    assert msg.frm.room == LarkRoom(GROUP)
    assert msg.frm.aclattr == SENDER
    assert msg.to == LarkRoom(GROUP)
    [people] = seen["mentions"]
    assert backend.bot_identifier in people
    assert LarkPerson(ALICE) in people


def test_unknown_events_and_unreadable_messages_do_nothing(backend, monkeypatch, caplog):
    seen = capture(backend, monkeypatch)
    caplog.set_level("DEBUG", logger="lark_cards.backend")
    backend._handle_envelope(envelope("unknown_event"))
    broken = envelope("p2p_text")
    del broken.event["message"]["chat_id"]
    backend._handle_envelope(broken)
    assert seen == {"messages": [], "mentions": []}
    assert "Ignoring event type im.chat.updated_v1" in caplog.text


def incoming(backend: LarkCardsBackend, name: str) -> Message:
    seen: list[Message] = []
    backend.callback_message = seen.append  # type: ignore[method-assign]
    backend.callback_mention = lambda *_: None  # type: ignore[method-assign]
    backend._handle_envelope(envelope(name))
    return seen[0]


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


def wait_for_send(client: FakeClient, count: int = 1) -> None:
    for _ in range(200):
        if len(client.calls) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"expected {count} call(s), got {client.calls}")


def test_reply_goes_through_the_reply_api_on_the_loop_thread(running):
    question = incoming(running, "group_text_mentions")
    running.send_simple_reply(question, "**done**")
    wait_for_send(running.client)
    [(name, args, kwargs)] = running.client.calls
    assert name == "reply"
    assert args[0] == "om_dc13264520392913993dd051dba21dcf"
    assert args[1] == "interactive"
    card = args[2]
    assert card["schema"] == "2.0"
    assert card["body"]["elements"][0] == {"tag": "markdown", "content": "**done**"}
    assert kwargs == {"chat_id": GROUP, "reply_in_thread": False}
    assert running.client.threads == ["lark-loop"]


def test_messages_without_a_question_are_sent_to_the_chat_or_person(running):
    running.send(LarkRoom(GROUP), "to the room")
    running.send(LarkPerson(ALICE), "to alice")
    running.send(LarkRoomOccupant(ALICE, LarkRoom(GROUP)), "to alice in ops")
    wait_for_send(running.client, 3)
    sent = [
        (args[0], kwargs["receive_id_type"], args[2]) for _, args, kwargs in running.client.calls
    ]
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
    assert running.client.calls == []  # building an identifier costs no API call
    assert alice.fullname == "Alice Liddell"
    assert alice.email == "alice@example.com"
    assert alice.nick == "Alice Liddell"
    assert [c[0] for c in running.client.calls] == ["user"]
    rooms = running.rooms()
    assert rooms == [LarkRoom(GROUP), LarkRoom("oc_two")]
    assert rooms[1].name == "dev"
    assert LarkRoom("oc_two").name == "dev"  # remembered from the list, no chat call
    assert [c[0] for c in running.client.calls] == ["user", "chats"]


def test_profile_lookup_on_the_loop_thread_does_not_block(running):
    async def on_loop() -> str:
        return LarkPerson(ALICE).fullname

    name = asyncio.run_coroutine_threadsafe(on_loop(), running._loop).result(2)
    assert name == ""
    assert running.client.calls == []


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

    quick = asyncio.ensure_future(backend._tracked(send("quick", 0.05)))
    stuck = asyncio.ensure_future(backend._tracked(send("stuck", 60)))
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await backend._drain()
    assert asyncio.get_running_loop().time() - started < 2
    assert finished == ["quick"]
    await asyncio.sleep(0)
    assert quick.done()
    assert stuck.cancelled()


def test_a_slow_to_render_reply_is_not_overtaken_in_its_chat(running):
    big = "\n\n".join(f"paragraph {i} " + "word " * 40 for i in range(1500))  # several cards
    running.send(LarkRoom(GROUP), big)
    running.send(LarkRoom(GROUP), "small and quick")
    for _ in range(1000):
        calls = running.client.calls
        if calls and calls[-1][1][2]["body"]["elements"][0]["content"] == "small and quick":
            break
        threading.Event().wait(0.01)
    contents = [args[2]["body"]["elements"][0]["content"] for _, args, _ in running.client.calls]
    assert len(contents) > 2
    assert contents[-1] == "small and quick"
    assert all("small and quick" not in content for content in contents[:-1])


def test_the_inbound_backlog_is_counted_for_the_webhook_bound(backend, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(backend, "_handle_event", lambda envelope: release.wait(5))
    for _ in range(3):
        backend._dispatch(envelope("p2p_text"))
    assert backend._backlog == 3
    release.set()
    backend._inbound.submit(lambda: None).result(5)  # FIFO: runs after the three
    assert backend._backlog == 0
