"""Sender: where replies go and what happens when Feishu refuses a card (design.md §4): smaller
cards, then plain text — the user always gets the content, in order."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from errbot.backends.base import Message
from errbot_config import BOT_OPEN_ID, errbot_config, offline_backend
from render_checks import check_cards, words

from lark_cards.api import CARD_REJECTED, LarkAPIError
from lark_cards.backend import LarkCardsBackend
from lark_cards.events import parse_callback, parse_message
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.inbound import to_message
from lark_cards.outbound import Sender, Target, target_of
from lark_cards.render import (
    Outgoing,
    RenderOptions,
    plain_text,
    render_card,
    render_reply,
    render_template,
)
from lark_cards.render.validate import count_tables

FIXTURES = Path(__file__).parent / "fixtures" / "events"
BOT = BOT_OPEN_ID
ALICE = "ou_alice000000000000000000000000000"
SENDER = "ou_84aad35d084aa403a838cf73ee18467"
GROUP = "oc_a0553eda9014c201e6969b478895c230"
OTHER_GROUP = "oc_other0000000000000000000000000"


@dataclass
class Call:
    api: str  # "send" | "reply"
    to: str  # receive_id or the replied-to message id
    msg_type: str
    content: dict[str, Any]
    kwargs: dict[str, Any]
    error: int | None  # the code it was refused with, None when delivered


Reject = Callable[[Call], int | None]


class FakeClient:
    """Records every send; ``reject`` decides which are refused, with which Feishu code."""

    def __init__(self, reject: Reject | None = None) -> None:
        self.calls: list[Call] = []
        self.chat_keys: list[str | None] = []
        self.reject = reject or (lambda call: None)

    async def send_message(
        self,
        receive_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        receive_id_type: str = "chat_id",
        uuid: str | None = None,
        chat_key: str | None = None,
    ) -> dict[str, Any]:
        self.chat_keys.append(chat_key)
        return self._handle("send", receive_id, msg_type, content, receive_id_type=receive_id_type)

    async def reply_message(
        self,
        message_id: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        chat_id: str,
        reply_in_thread: bool = False,
        uuid: str | None = None,
    ) -> dict[str, Any]:
        return self._handle(
            "reply", message_id, msg_type, content, chat_id=chat_id, reply_in_thread=reply_in_thread
        )

    def _handle(
        self, api: str, to: str, msg_type: str, content: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        # A copy, through JSON as on the wire: later mutation cannot change what was "sent".
        call = Call(api, to, msg_type, json.loads(json.dumps(content)), kwargs, None)
        self.calls.append(call)
        call.error = self.reject(call)
        if call.error is not None:
            raise LarkAPIError(call.error, "card content rejected")
        return {"message_id": f"om_{len(self.calls)}"}

    @property
    def delivered(self) -> list[Call]:
        return [call for call in self.calls if call.error is None]


def reject_cards(code: int = 230099, times: int | None = None) -> Reject:
    """Refuse the first ``times`` cards (every card when None) with ``code``."""
    refused = 0

    def reject(call: Call) -> int | None:
        nonlocal refused
        if call.msg_type != "interactive" or (times is not None and refused >= times):
            return None
        refused += 1
        return code

    return reject


TO_GROUP = Target(receive_id=GROUP, receive_id_type="chat_id", chat_key=GROUP)
REPORT = "\n\n".join(
    [
        "# Nightly report",
        "All **twelve** hosts answered; details below.",
        *(
            f"Region {k}\n\n| host | status |\n|---|---|\n| r{k}host1 | healthy |\n"
            f"| r{k}host2 | degraded{k} |"
            for k in range(7)
        ),
        "```\nbackup finished 0412\nrotation done 0413\n```",
        "Signed by the overnight robot.",
    ]
)


def sender(client: FakeClient, options: RenderOptions | None = None) -> Sender:
    return Sender(client, options or RenderOptions(), upload_images=False)  # type: ignore[arg-type]


def message_text(content: dict) -> str:
    """The words of a text message, or of a post message's literal text nodes."""
    if "text" in content:
        return content["text"]
    post = next(iter(content.values()))
    lines = ["".join(node["text"] for node in line) for line in post["content"]]
    return "\n".join([post["title"], *lines] if post["title"] else lines)


def text_of(calls: list[Call]) -> str:
    return "\n".join(message_text(call.content) for call in calls)


def assert_words_in_order(source: str, shown: str) -> None:
    stream = "".join(words(shown))
    position = 0
    for word in words(plain_text(source)):
        found = stream.find(word, position)
        assert found >= 0, f"lost or reordered word {word!r}"
        position = found + len(word)


# ----- fallback ----------------------------------------------------------------------------------


async def test_rejected_card_is_resent_as_smaller_cards_and_nothing_is_lost(caplog):
    items = render_reply(REPORT)
    assert len(items) == 2  # 5 tables, then 2
    client = FakeClient(reject_cards(230099, times=1))
    sent = await sender(client).send_all(TO_GROUP, items)

    assert client.calls[0].error == 230099
    assert client.calls[0].content == items[0].content
    delivered = client.delivered
    assert len(sent) == len(delivered)
    assert all(call.msg_type == "interactive" for call in delivered)
    retried = delivered[:-1]  # the rejected card again, smaller; then the second card as is
    assert len(retried) >= 3  # 5 tables at no more than 2 a card
    assert all(count_tables(call.content) <= 2 for call in retried)
    assert delivered[-1].content == items[1].content
    cards = [call.content for call in delivered]
    check_cards(REPORT, cards)
    tables = [e for card in cards for e in card["body"]["elements"] if e["tag"] == "table"]
    assert [t["rows"][0]["c0"] for t in tables] == [f"r{k}host1" for k in range(7)]
    assert "smaller cards" in caplog.text


async def test_rejected_twice_the_content_goes_as_plain_text(caplog):
    items = render_reply(REPORT)
    client = FakeClient(reject_cards(230099))
    await sender(client).send_all(TO_GROUP, items)

    refused = [call for call in client.calls if call.error is not None]
    assert len(refused) > len(items)  # the originals and their smaller versions
    assert all(call.msg_type == "interactive" for call in refused)
    delivered = client.delivered
    assert delivered
    assert all(call.msg_type == "post" for call in delivered)
    shown = text_of(delivered)
    assert_words_in_order(REPORT, shown)
    for cell in ("r0host1", "degraded6", "backup finished 0412", "rotation done 0413"):
        assert cell in shown
    assert "text instead" in caplog.text


@pytest.mark.parametrize("code", sorted(CARD_REJECTED))
async def test_every_card_rejection_code_falls_back(code):
    items = render_reply("**hello** there, general")
    client = FakeClient(reject_cards(code))
    await sender(client).send_all(TO_GROUP, items)
    assert [call.error for call in client.calls[:1]] == [code]
    [delivered] = client.delivered
    assert delivered.msg_type == "post"
    assert words(message_text(delivered.content)) == ["hello", "there", "general"]


async def test_a_card_that_cannot_be_smaller_goes_straight_to_text():
    [item] = render_reply("**only one** short paragraph")
    client = FakeClient(reject_cards(200570))
    await sender(client).send_all(TO_GROUP, [item])
    # one refusal of the original; a smaller card of the same one piece may be tried once
    [delivered] = client.delivered
    assert delivered.msg_type == "post"
    assert words(message_text(delivered.content)) == ["only", "one", "short", "paragraph"]


@pytest.mark.parametrize("code", [230002, 99991663, -1, 230020])
async def test_a_non_card_error_propagates_without_fallback(code):
    items = render_reply(REPORT)
    client = FakeClient(lambda call: code)
    with pytest.raises(LarkAPIError) as info:
        await sender(client).send_all(TO_GROUP, items)
    assert info.value.code == code
    assert len(client.calls) == 1  # no smaller card, no text, no next item


async def test_a_card_code_on_a_text_message_propagates():
    client = FakeClient(lambda call: 230099)
    with pytest.raises(LarkAPIError):
        await sender(client).send_all(TO_GROUP, [Outgoing("text", {"text": "hi"})])
    assert len(client.calls) == 1


async def test_order_of_sends_is_kept_through_a_fallback():
    items = [
        *render_reply("Alpha **first** reply"),
        *render_reply(REPORT),
        *render_reply("Charlie `last` reply"),
    ]

    def reject(call: Call) -> int | None:
        nightly = call.msg_type == "interactive" and "Nightly" in json.dumps(call.content)
        return 230099 if nightly else None

    client = FakeClient(reject)
    await sender(client).send_all(TO_GROUP, items)
    shown = [json.dumps(call.content, ensure_ascii=False) for call in client.delivered]
    assert "Alpha" in shown[0]
    assert "Charlie" in shown[-1]
    middle = "\n".join(message_text(call.content) for call in client.delivered[1:-1])
    assert_words_in_order(REPORT, middle)
    assert all(call.msg_type == "post" for call in client.delivered[1:-1])


async def test_messages_are_sent_one_after_another_in_order():
    items = [Outgoing("text", {"text": f"message {i}"}) for i in range(20)]
    client = FakeClient()
    sent = await sender(client).send_all(TO_GROUP, items)
    assert [call.content["text"] for call in client.calls] == [f"message {i}" for i in range(20)]
    assert [data["message_id"] for data in sent] == [f"om_{i}" for i in range(1, 21)]


async def test_text_fallback_of_a_card_keeps_its_fields():
    items = render_card(
        body="Rolled out.",
        title="Deploy",
        fields=[("environment", "production"), ("version", "build-8841")],
    )
    client = FakeClient(reject_cards(230025))
    await sender(client).send_all(TO_GROUP, items)
    shown = text_of(client.delivered)
    assert "Rolled out." in shown
    for word in ("environment", "production", "version", "build-8841"):
        assert word in shown


async def test_text_fallback_of_a_template_card_keeps_its_words():
    card = render_template(
        "card", {"title": "Deploy api", "elements": [{"tag": "markdown", "content": "rolled out"}]}
    )
    client = FakeClient(reject_cards(230099))
    await sender(client).send_all(TO_GROUP, [Outgoing("interactive", card)])
    shown = text_of(client.delivered)
    assert "Deploy api" in shown
    assert "rolled out" in shown


# ----- where it goes ---------------------------------------------------------------------------


async def test_replies_use_the_reply_api_with_reply_in_thread_even_in_fallback():
    target = Target(
        receive_id=GROUP,
        receive_id_type="chat_id",
        chat_key=GROUP,
        reply_to="om_question",
        reply_in_thread=True,
    )
    client = FakeClient(reject_cards(230099))
    await sender(client).send_all(target, render_reply(REPORT))
    assert client.calls
    for call in client.calls:
        assert call.api == "reply"
        assert call.to == "om_question"
        assert call.kwargs == {"chat_id": GROUP, "reply_in_thread": True}


async def test_new_messages_use_send_with_the_receive_id_type():
    target = Target(receive_id=ALICE, receive_id_type="open_id", chat_key="oc_p2p")
    client = FakeClient()
    await sender(client).send_all(target, render_reply("hi"))
    [call] = client.calls
    assert (call.api, call.to, call.kwargs) == ("send", ALICE, {"receive_id_type": "open_id"})


@pytest.fixture
def backend(tmp_path: Path) -> LarkCardsBackend:
    return offline_backend(errbot_config(tmp_path))


def question(backend: LarkCardsBackend, name: str) -> Message:
    envelope = parse_callback(json.loads((FIXTURES / f"{name}.json").read_text()))
    msg, _ = to_message(parse_message(envelope), backend.bot_identifier)
    return msg


def test_target_of_a_reply_in_a_p2p_chat(backend):
    asked = question(backend, "p2p_text")
    target = target_of(backend.build_reply(asked, "ok"))
    p2p_chat = asked.extras["chat_id"]
    assert target == Target(
        receive_id=SENDER,
        receive_id_type="open_id",
        chat_key=p2p_chat,
        reply_to=asked.extras["message_id"],
        reply_in_thread=False,
    )


def test_target_of_a_reply_in_a_group(backend):
    asked = question(backend, "group_text_mentions")
    target = target_of(backend.build_reply(asked, "ok"))
    assert target == Target(
        receive_id=GROUP,
        receive_id_type="chat_id",
        chat_key=GROUP,
        reply_to="om_dc13264520392913993dd051dba21dcf",
        reply_in_thread=False,
    )


def test_target_of_a_threaded_reply(backend):
    asked = question(backend, "group_text_mentions")
    target = target_of(backend.build_reply(asked, "ok", threaded=True))
    assert target.reply_to == "om_dc13264520392913993dd051dba21dcf"
    assert target.reply_in_thread is True


def test_target_of_a_private_reply_to_a_group_message(backend):
    asked = question(backend, "group_text_mentions")
    target = target_of(backend.build_reply(asked, "psst", private=True))
    # not under the group message (that would answer in the group): a new message to the person
    assert target == Target(
        receive_id=SENDER, receive_id_type="open_id", chat_key=SENDER, reply_to=None
    )


def test_target_of_a_private_reply_in_a_p2p_chat_still_replies(backend):
    asked = question(backend, "p2p_text")
    target = target_of(backend.build_reply(asked, "psst", private=True))
    assert target.reply_to == asked.extras["message_id"]
    assert target.receive_id == SENDER


def test_a_message_to_someone_else_is_never_a_reply_in_the_askers_direct_chat(backend):
    asked = question(backend, "p2p_text")  # the sender's direct chat with the bot
    msg = Message("for alice", frm=backend.bot_identifier, to=LarkPerson(ALICE), parent=asked)
    target = target_of(msg)
    assert (target.receive_id, target.reply_to) == (ALICE, None)


def test_target_of_a_message_to_another_chat_is_not_a_reply(backend):
    asked = question(backend, "group_text_mentions")
    msg = Message("elsewhere", frm=backend.bot_identifier, to=LarkRoom(OTHER_GROUP), parent=asked)
    target = target_of(msg)
    assert (target.receive_id, target.reply_to) == (OTHER_GROUP, None)


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (LarkRoom(GROUP), (GROUP, "chat_id", GROUP)),
        (LarkPerson(ALICE), (ALICE, "open_id", ALICE)),
        (LarkPerson(ALICE, chat_id="oc_p2p"), (ALICE, "open_id", "oc_p2p")),
        (LarkRoomOccupant(ALICE, LarkRoom(GROUP)), (GROUP, "chat_id", GROUP)),
    ],
)
def test_target_of_a_new_message(to, expected):
    target = target_of(Message("hi", to=to))
    assert (target.receive_id, target.receive_id_type, target.chat_key) == expected
    assert target.reply_to is None
    assert target.reply_in_thread is False


def test_target_of_a_foreign_identifier_is_an_error():
    class Stranger:
        pass

    with pytest.raises(ValueError, match="not a Feishu identifier"):
        target_of(Message("hi", to=Stranger()))


async def test_fallback_warnings_name_the_code_but_not_the_content(caplog):
    caplog.set_level(logging.INFO)
    client = FakeClient(reject_cards(230099))
    await sender(client).send_all(TO_GROUP, render_reply("**secret** launch code 0000"))
    assert "230099" in caplog.text
    assert "secret" not in caplog.text  # message content may be private


async def test_the_text_fallback_keeps_markup_inert():
    """Escaped card text must not become a live @all or bold in the fallback (§5.1)."""
    items = render_reply('hello <at user_id="all"></at> <b>bold</b> `<at id=all></at>`')
    client = FakeClient(reject_cards(230099))
    await sender(client).send_all(TO_GROUP, items)
    [fallback] = client.delivered
    assert fallback.msg_type == "post"
    nodes = [node for line in next(iter(fallback.content.values()))["content"] for node in line]
    assert {node["tag"] for node in nodes} == {"text"}  # literal text nodes only
    assert '<at user_id="all">' in message_text(fallback.content)


async def test_new_messages_are_ordered_and_paced_by_the_chat_not_the_person(backend):
    """A send to a person and a reply in their direct chat share one turn and rate window."""
    asked = question(backend, "p2p_text")
    msg = Message("update", frm=backend.bot_identifier, to=LarkPerson(SENDER, chat_id="oc_dm"))
    client = FakeClient()
    await sender(client).send_all(target_of(msg), [Outgoing("text", {"text": "x"})])
    assert client.chat_keys == ["oc_dm"]
    assert target_of(backend.build_reply(asked, "ok")).chat_key == asked.extras["chat_id"]
