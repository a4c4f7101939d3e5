"""Each answer's ``uuid`` comes from what caused it: processing the same question again (after
a crash, or on another instance) sends the same uuids, which Feishu turns into the first
messages for an hour instead of duplicates (docs/feishu-platform.md §4.1)."""

from __future__ import annotations

import asyncio
import dataclasses

from api_fakes import Call, FakeOpenAPI
from errbot.backends.base import Message
from errbot_config import errbot_config, offline_backend
from outbox_wiring import Wiring

from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.outbound.delivery import Delivery, uuid_for
from lark_cards.outbound.target import target_of
from lark_cards.render import RenderOptions, render_reply

ROOM = LarkRoom("oc_room")
ASKER = LarkRoomOccupant("ou_asker", ROOM)


def question(message_id: str = "om_question") -> Message:
    extras = {"message_id": message_id, "chat_id": "oc_room", "chat_type": "group"}
    return Message("!deploy prod", frm=ASKER, to=ROOM, extras=extras)


def click(event_id: str) -> Message:
    extras = {
        "message_id": "om_card",
        "card_message_id": "om_card",
        "chat_id": "oc_room",
        "chat_type": "group",
        "event_id": event_id,
    }
    return Message("!approve 7", frm=ASKER, to=ROOM, extras=extras)


def answer(wired: Wiring, parent: Message, *texts: str) -> list[str]:
    """Send ``texts`` as the command's answers to ``parent``; the uuids Feishu received."""
    before = len(wired.fake.messages())
    for text in texts:
        wired.outbox.send_reply(Message(text, to=ROOM, parent=parent))
    return [call.json["uuid"] for call in wired.messages(before + len(texts))[before:]]


def test_the_same_question_answered_twice_sends_the_same_uuids(loop: asyncio.AbstractEventLoop):
    first, second = Wiring(loop), Wiring(loop)  # e.g. before a crash, and after it
    try:
        uuids = answer(first, question(), "step 1", "step 2", "done")
        assert answer(second, question(), "step 1", "step 2", "done") == uuids
    finally:
        first.outbox.close()
        second.outbox.close()
    assert len(set(uuids)) == 3  # one per answer
    assert all(len(uuid) <= 50 for uuid in uuids)


def test_other_questions_and_clicks_get_other_uuids(wired: Wiring) -> None:
    [to_one] = answer(wired, question("om_one"), "ok")
    [to_two] = answer(wired, question("om_two"), "ok")
    [click_a] = answer(wired, click("ev_a"), "ok")
    [click_b] = answer(wired, click("ev_b"), "ok")  # another click on the same card
    assert len({to_one, to_two, click_a, click_b}) == 4


def test_messages_nobody_asked_for_get_a_fresh_uuid_each(wired: Wiring) -> None:
    wired.outbox.send_reply(Message("nightly digest", to=ROOM))
    wired.outbox.send_reply(Message("nightly digest", to=ROOM))
    one, two = (call.json["uuid"] for call in wired.messages(2))
    assert one != two


def test_a_private_answer_to_a_group_question_keeps_its_cause(tmp_path, loop):
    bot = offline_backend(errbot_config(tmp_path))
    asked = question()
    reply = bot.build_reply(asked, "psst", private=True)
    assert reply.parent is None  # a new message to the person, not a reply in the group
    wired = Wiring(loop)
    try:
        wired.outbox.send_reply(reply)
        wired.outbox.send_reply(bot.build_reply(asked, "psst", private=True))
        one, two = (call.json["uuid"] for call in wired.messages(2))
    finally:
        wired.outbox.close()
    assert one != two  # two answers, two uuids …
    again = Wiring(loop)
    try:
        again.outbox.send_reply(bot.build_reply(asked, "psst", private=True))
        [replayed] = again.messages(1)
    finally:
        again.outbox.close()
    assert replayed.json["uuid"] == one  # … and the same first one when processed again
    assert replayed.json["receive_id"] == "ou_asker"


async def test_fallback_messages_get_their_own_uuids() -> None:
    fake = FakeOpenAPI()

    def refuse_cards(call: Call) -> object:
        if call.json["msg_type"] == "interactive":
            return 400, {"code": 230099, "msg": "card content invalid"}
        return {"code": 0, "data": {"message_id": f"om_{len(fake.calls)}"}}

    fake.on("POST", "/open-apis/im/v1/messages", refuse_cards)
    target = target_of(Message("", to=LarkPerson("ou_asker")))
    seeded = dataclasses.replace(target, uuid_seed="message:om_q#0")
    items = render_reply("| a | b |\n|---|---|\n| 1 | 2 |\n\n" + "words " * 50)
    await Delivery(fake, RenderOptions()).send_items(seeded, items)
    uuids = [call.json["uuid"] for call in fake.messages()]
    assert len(uuids) == len(set(uuids)) >= 2  # the card and each fallback: distinct
    assert uuids[0] == uuid_for(seeded, "0")


def test_a_progress_cards_final_cards_do_not_reuse_its_first_uuid(wired: Wiring) -> None:
    """A final state longer than one card continues in new messages: each needs its own uuid,
    or Feishu would hand back the progress card instead of sending them."""
    progress = wired.outbox.progress(Message("", to=ROOM, parent=question()), "deploying")
    progress.finish("\n\n".join(f"host {n}: " + "ok " * 3000 for n in range(4)))
    created = [c for c in wired.messages(2) if c.method == "POST"]
    uuids = [call.json["uuid"] for call in created]
    assert len(created) >= 2
    assert len(set(uuids)) == len(uuids)
