"""The delivery path's promises: where replies go, and what happens when Feishu
refuses a card — smaller cards, then plain text: the user always gets the content, in order."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from api_fakes import Call, FakeOpenAPI, FakeTime
from errbot.backends.base import Message
from errbot_config import errbot_config, offline_backend
from feishu_payloads import envelope
from render_checks import check_cards, words

from lark_cards.api.errors import CARD_REJECTED, LarkAPIError
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.inbound.events import parse_message
from lark_cards.inbound.messages import to_message
from lark_cards.outbound.delivery import Delivery, Sent
from lark_cards.outbound.target import Target, target_of
from lark_cards.render import (
    Outgoing,
    RenderOptions,
    plain_text,
    render_card,
    render_reply,
    render_template,
)
from lark_cards.render.validate import count_tables

if TYPE_CHECKING:  # the backend is only needed, and imported, for build_reply
    from lark_cards.backend import LarkCardsBackend

ALICE = "ou_alice000000000000000000000000000"
SENDER = "ou_84aad35d084aa403a838cf73ee18467"
GROUP = "oc_a0553eda9014c201e6969b478895c230"
OTHER_GROUP = "oc_other0000000000000000000000000"

Reject = Callable[[Call], int | None]


def reject_cards(code: int = 230099, times: int | None = None) -> Reject:
    """Refuse the first ``times`` cards (every card when None) with ``code``."""
    refused = 0

    def reject(call: Call) -> int | None:
        nonlocal refused
        if call.json["msg_type"] != "interactive" or (times is not None and refused >= times):
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


def fake_api(reject: Reject | None = None) -> FakeOpenAPI:
    """The Open API on fake time (pacing and retries cost no waiting), refusing as told."""
    time = FakeTime()
    fake = FakeOpenAPI(clock=time.clock, sleep=time.sleep)
    if reject is not None:
        fake.refuse(reject)
    return fake


async def send_all(fake: FakeOpenAPI, target: Target, items: list[Outgoing]) -> list[Sent]:
    """``items`` through the delivery path, in ``target``'s chat turn."""
    delivery = Delivery(fake, RenderOptions(), upload_images=False)
    async with delivery.turn(target.chat_key):
        return await delivery.send_items(target, items)


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
    fake = fake_api(reject_cards(230099, times=1))
    sent = await send_all(fake, TO_GROUP, items)

    assert fake.messages()[0].code == 230099
    assert fake.messages()[0].content == items[0].content
    delivered = fake.delivered()
    assert len(sent) == len(delivered)
    assert all(call.json["msg_type"] == "interactive" for call in delivered)
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
    fake = fake_api(reject_cards(230099))
    await send_all(fake, TO_GROUP, items)

    refused = [call for call in fake.messages() if call.code != 0]
    assert len(refused) > len(items)  # the originals and their smaller versions
    assert all(call.json["msg_type"] == "interactive" for call in refused)
    delivered = fake.delivered()
    assert delivered
    assert all(call.json["msg_type"] == "post" for call in delivered)
    shown = text_of(delivered)
    assert_words_in_order(REPORT, shown)
    for cell in ("r0host1", "degraded6", "backup finished 0412", "rotation done 0413"):
        assert cell in shown
    assert "text instead" in caplog.text


@pytest.mark.parametrize("code", sorted(CARD_REJECTED))
async def test_every_card_rejection_code_falls_back(code):
    items = render_reply("**hello** there, general")
    fake = fake_api(reject_cards(code))
    await send_all(fake, TO_GROUP, items)
    assert [call.code for call in fake.messages()[:1]] == [code]
    [delivered] = fake.delivered()
    assert delivered.json["msg_type"] == "post"
    assert words(message_text(delivered.content)) == ["hello", "there", "general"]


async def test_a_card_that_cannot_be_smaller_goes_straight_to_text():
    [item] = render_reply("**only one** short paragraph")
    fake = fake_api(reject_cards(200570))
    await send_all(fake, TO_GROUP, [item])
    # one refusal of the original; a smaller card of the same one piece may be tried once
    [delivered] = fake.delivered()
    assert delivered.json["msg_type"] == "post"
    assert words(message_text(delivered.content)) == ["only", "one", "short", "paragraph"]


@pytest.mark.parametrize("code", [230002, 99991663, -1, 230020])
async def test_a_non_card_error_propagates_without_fallback(code):
    items = render_reply(REPORT)
    fake = fake_api(lambda call: code)
    with pytest.raises(LarkAPIError) as info:
        await send_all(fake, TO_GROUP, items)
    assert info.value.code == code
    # no smaller card, no text, no next item: only the client's own retries of the first send
    # (a rate limit, a stale token), which reuse its uuid so Feishu creates it at most once
    attempts = fake.messages()
    assert {call.json["uuid"] for call in attempts} == {attempts[0].json["uuid"]}
    assert all(call.content == items[0].content for call in attempts)


async def test_a_card_code_on_a_text_message_propagates():
    fake = fake_api(lambda call: 230099)
    with pytest.raises(LarkAPIError):
        await send_all(fake, TO_GROUP, [Outgoing("text", {"text": "hi"})])
    assert len(fake.messages()) == 1


async def test_order_of_sends_is_kept_through_a_fallback():
    items = [
        *render_reply("Alpha **first** reply"),
        *render_reply(REPORT),
        *render_reply("Charlie `last` reply"),
    ]

    def reject(call: Call) -> int | None:
        nightly = call.json["msg_type"] == "interactive" and "Nightly" in json.dumps(call.content)
        return 230099 if nightly else None

    fake = fake_api(reject)
    await send_all(fake, TO_GROUP, items)
    shown = [json.dumps(call.content, ensure_ascii=False) for call in fake.delivered()]
    assert "Alpha" in shown[0]
    assert "Charlie" in shown[-1]
    middle = "\n".join(message_text(call.content) for call in fake.delivered()[1:-1])
    assert_words_in_order(REPORT, middle)
    assert all(call.json["msg_type"] == "post" for call in fake.delivered()[1:-1])


async def test_messages_are_sent_one_after_another_in_order():
    items = [Outgoing("text", {"text": f"message {i}"}) for i in range(20)]
    fake = fake_api()
    sent = await send_all(fake, TO_GROUP, items)
    assert [call.content["text"] for call in fake.messages()] == [f"message {i}" for i in range(20)]
    assert [data["message_id"] for data in sent] == [f"om_{i}" for i in range(1, 21)]
    stamps = [call.at for call in fake.messages()]  # and paced: 5 a second in one chat
    assert all(later - earlier >= 1.0 for earlier, later in zip(stamps, stamps[5:], strict=False))


async def test_text_fallback_of_a_card_keeps_its_fields():
    items = render_card(
        body="Rolled out.",
        title="Deploy",
        fields=[("environment", "production"), ("version", "build-8841")],
    )
    fake = fake_api(reject_cards(230025))
    await send_all(fake, TO_GROUP, items)
    shown = text_of(fake.delivered())
    assert "Rolled out." in shown
    for word in ("environment", "production", "version", "build-8841"):
        assert word in shown


async def test_text_fallback_of_a_template_card_keeps_its_words():
    card = render_template(
        "card", {"title": "Deploy api", "elements": [{"tag": "markdown", "content": "rolled out"}]}
    )
    fake = fake_api(reject_cards(230099))
    await send_all(fake, TO_GROUP, [Outgoing("interactive", card)])
    shown = text_of(fake.delivered())
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
    fake = fake_api(reject_cards(230099))
    await send_all(fake, target, render_reply(REPORT))
    assert fake.messages()
    for call in fake.messages():
        assert call.path == "/open-apis/im/v1/messages/om_question/reply"
        assert call.json["reply_in_thread"] is True


async def test_new_messages_use_send_with_the_receive_id_type():
    target = Target(receive_id=ALICE, receive_id_type="open_id", chat_key="oc_p2p")
    fake = fake_api()
    await send_all(fake, target, render_reply("hi"))
    [call] = fake.messages()
    assert (call.path, call.json["receive_id"]) == ("/open-apis/im/v1/messages", ALICE)
    assert call.params == {"receive_id_type": "open_id"}


@pytest.fixture
def backend(tmp_path: Path) -> LarkCardsBackend:
    return offline_backend(errbot_config(tmp_path))


def question(backend: LarkCardsBackend, name: str) -> Message:
    event = parse_message(envelope(name))
    return to_message(event, backend.bot_identifier, backend.identities)[0]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("p2p_text", (SENDER, "open_id", f"p2p:{SENDER}", "om_5ce6d572455d361153b7cb51da133945")),
        ("group_text_mentions", (GROUP, "chat_id", GROUP, "om_dc13264520392913993dd051dba21dcf")),
    ],
    ids=["direct chat", "group"],
)
def test_target_of_a_reply_goes_under_the_question(backend, fixture, expected):
    asked = question(backend, fixture)
    target = target_of(backend.build_reply(asked, "ok"))
    assert target.reply_to == asked.extras["message_id"]
    receive_id, id_type, chat_key, reply_to = expected
    assert target == Target(
        receive_id=receive_id,
        receive_id_type=id_type,
        chat_key=chat_key,
        reply_to=reply_to,
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
        receive_id=SENDER, receive_id_type="open_id", chat_key=f"p2p:{SENDER}", reply_to=None
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
        (LarkPerson(ALICE), (ALICE, "open_id", f"p2p:{ALICE}")),
        (LarkPerson(ALICE, chat_id="oc_p2p"), (ALICE, "open_id", f"p2p:{ALICE}")),
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
    fake = fake_api(reject_cards(230099))
    await send_all(fake, TO_GROUP, render_reply("**secret** launch code 0000"))
    assert "230099" in caplog.text
    assert "secret" not in caplog.text  # message content may be private


async def test_the_text_fallback_keeps_markup_inert():
    """Escaped card text must not become a live @all or bold in the fallback (§5.1)."""
    items = render_reply('hello <at user_id="all"></at> <b>bold</b> `<at id=all></at>`')
    fake = fake_api(reject_cards(230099))
    await send_all(fake, TO_GROUP, items)
    [fallback] = fake.delivered()
    assert fallback.json["msg_type"] == "post"
    nodes = [node for line in next(iter(fallback.content.values()))["content"] for node in line]
    assert {node["tag"] for node in nodes} == {"text"}  # literal text nodes only
    assert '<at user_id="all">' in message_text(fallback.content)


async def test_sends_to_a_person_and_replies_in_their_direct_chat_share_its_pace(backend):
    """Addressed by open_id or answered under a question, a direct chat is one chat for the
    5-a-second limit (and one turn, tests/test_delivery.py)."""
    asked = question(backend, "p2p_text")
    person = backend.build_identifier(SENDER)  # no chat id: built from the open_id alone
    to_person = target_of(Message("update", frm=backend.bot_identifier, to=person))
    reply = target_of(backend.build_reply(asked, "ok"))
    assert to_person.chat_key == reply.chat_key == f"p2p:{SENDER}"
    fake = fake_api()
    for n in range(3):
        for target in (to_person, reply):
            await send_all(fake, target, [Outgoing("text", {"text": f"n={n}"})])
    stamps = [call.at for call in fake.messages()]
    assert len({call.path for call in fake.messages()}) == 2  # sends and replies
    assert stamps[:5] == [0.0] * 5
    assert stamps[5] >= 1.0
