"""The one delivery path: a later message to a chat never overtakes an earlier one, whatever
kinds they are, however slow an upload or update is; fallbacks and card replacement.

Sends are made the way Errbot makes them — from another thread, through the ``Outbox`` — while
the fake Open Platform holds one request (an upload, a PATCH) until the test lets it go.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from api_fakes import Call, FakeOpenAPI
from errbot.backends.base import Card, Message
from outbox_wiring import Wiring

from lark_cards.api.errors import LarkAPIError
from lark_cards.identifiers import LarkPerson, LarkRoom
from lark_cards.interactive import REPLACE_CARD, ReplaceCard
from lark_cards.outbound.delivery import Delivery
from lark_cards.outbound.target import target_of
from lark_cards.render import Outgoing, RenderOptions

ROOM = LarkRoom("oc_room")
IMAGE_URL = "https://images.example.com/graph.png"


def reply(text: str, to: Any = ROOM) -> Message:
    return Message(text, to=to)


def shows(call: Call, text: str) -> bool:
    return text in json.dumps(call.content, ensure_ascii=False)


# ----- a later message never overtakes an earlier one ----------------------------------------


def test_a_file_still_uploading_is_not_overtaken_by_text(wired: Wiring) -> None:
    release = wired.hold("POST", "/open-apis/im/v1/files")
    stream = wired.outbox.send_stream(ROOM, io.BytesIO(b"%PDF-1.7 report"), "report.pdf")
    wired.outbox.send_reply(reply("the report is above"))
    wired.quiet(0)
    release()
    file_msg, text_msg = wired.messages(2)
    assert file_msg.json["msg_type"] == "file"
    assert file_msg.content == {"file_key": "file_1"}
    assert shows(text_msg, "the report is above")
    assert stream.status == "success"


def test_a_card_whose_image_is_uploading_is_not_overtaken_by_text(wired: Wiring) -> None:
    release = wired.hold("POST", "/open-apis/im/v1/images")
    wired.outbox.send_card(Card(body="CPU graph", title="Load", image=IMAGE_URL, to=ROOM))
    wired.outbox.send_reply(reply("that was the graph"))
    wired.quiet(0)
    release()
    card, text = wired.messages(2)
    assert shows(card, "img_1")
    assert shows(card, "Load")
    assert shows(text, "that was the graph")


def test_an_update_asked_for_first_lands_before_a_later_text(wired: Wiring) -> None:
    ref = wired.outbox.send_updatable(ROOM, "deploying: 0/3", None)
    assert ref.message_id == "om_1"
    release = wired.hold("PATCH", "/open-apis/im/v1/messages/*")
    ref.update("deploying: 3/3")
    wired.outbox.send_reply(reply("deploy finished"))
    wired.quiet(2)  # the PATCH has arrived and waits for its answer; the text has not
    release()
    _created, patched, text = wired.messages(3)
    assert (patched.method, patched.path) == ("PATCH", "/open-apis/im/v1/messages/om_1")
    assert shows(patched, "deploying: 3/3")
    assert shows(text, "deploy finished")


def test_progress_updates_and_the_final_state_keep_their_place(wired: Wiring) -> None:
    progress = wired.outbox.progress(reply(""), "step 1/3")
    release = wired.hold("PATCH", "/open-apis/im/v1/messages/*")
    progress.update("step 2/3")
    wired.outbox.send_reply(reply("meanwhile"))
    wired.quiet(2)
    release()
    progress.finish("done")
    calls = wired.messages(4)
    assert [c.method for c in calls] == ["POST", "PATCH", "POST", "PATCH"]
    assert shows(calls[1], "step 2/3")
    assert shows(calls[2], "meanwhile")
    assert shows(calls[3], "done")


def test_a_progress_state_set_before_a_message_shows_before_it(wired: Wiring) -> None:
    progress = wired.outbox.progress(reply(""), "step 0")
    progress.update("step 1")
    wired.outbox.send_reply(reply("line A"))
    progress.update("step 2")
    progress.finish("done")
    calls = wired.messages(4)
    shown = [(c.method, json.dumps(c.content, ensure_ascii=False)) for c in calls]
    order = [next(w for w in ("step 0", "step 1", "line A", "step 2", "done") if w in t)
             for _, t in shown]  # fmt: skip
    # "step 2" is skipped: the card's final state comes right after it, with nothing between.
    assert order == ["step 0", "step 1", "line A", "done"]
    assert [method for method, _ in shown] == ["POST", "PATCH", "POST", "PATCH"]
    wired.quiet(4)


def test_only_a_commands_reply_takes_the_clicked_cards_place(wired: Wiring) -> None:
    clicked = Message("!approve", to=ROOM, extras={"message_id": "om_card", "chat_id": "oc_room"})
    clicked.extras[REPLACE_CARD] = ReplaceCard("om_card")
    wired.outbox.progress(Message("", to=ROOM, parent=clicked), "working").finish("ok")
    ref = wired.outbox.send_updatable(ROOM, "a card of its own", clicked)
    assert ref.message_id != "om_card"
    wired.outbox.send_reply(Message("approved", to=ROOM, parent=clicked))
    calls = wired.messages(4)
    assert [c.method for c in calls] == ["POST", "PATCH", "POST", "PATCH"]
    assert calls[0].path.endswith("/om_card/reply")  # the progress card goes under the card
    assert calls[3].path == "/open-apis/im/v1/messages/om_card"  # the reply replaces it


def test_a_direct_chat_is_one_turn_however_the_person_is_addressed(wired: Wiring) -> None:
    by_open_id = LarkPerson("ou_alice")  # build_identifier("ou_alice"), a private answer
    in_their_chat = LarkPerson("ou_alice", chat_id="oc_p2p_alice")  # from a message there
    release = wired.hold("POST", "/open-apis/im/v1/files")
    wired.outbox.send_stream(by_open_id, io.BytesIO(b"log lines"), "build.log")
    wired.outbox.send_reply(reply("see the log", to=in_their_chat))
    wired.quiet(0)
    release()
    file_msg, text = wired.messages(2)
    assert file_msg.params == {"receive_id_type": "open_id"}
    assert shows(text, "see the log")


def test_other_chats_do_not_wait_for_a_slow_chat(wired: Wiring) -> None:
    release = wired.hold("POST", "/open-apis/im/v1/files")
    wired.outbox.send_stream(ROOM, io.BytesIO(b"slow"), "slow.pdf")
    wired.outbox.send_reply(reply("elsewhere", to=LarkRoom("oc_other")))
    [other] = wired.messages(1)
    assert other.json["receive_id"] == "oc_other"
    release()
    wired.messages(2)


# ----- on the loop: retries, fallbacks, the clicked card ---------------------------------------


def text_item(n: int) -> Outgoing:
    return Outgoing("text", {"text": f"n={n}"})


async def test_sends_leave_in_start_order_with_a_retry_in_between() -> None:
    fake = FakeOpenAPI(sleep=lambda _: asyncio.sleep(0))
    attempts: list[str] = []

    async def flaky(call: Call) -> Any:
        attempts.append(call.content["text"])
        if len(attempts) == 1:
            await asyncio.sleep(0.01)  # the first answer is slow, then asks for a retry
            return 400, {"code": 230020, "msg": "chat rate limited"}
        return {"code": 0, "data": {"message_id": f"om_{len(attempts)}"}}

    fake.on("POST", "/open-apis/im/v1/messages", flaky)
    delivery = Delivery(fake, RenderOptions())
    target = target_of(reply("", to=ROOM))

    async def compose(n: int) -> Callable[[Delivery], Any]:
        async def items(_: Delivery) -> list[Outgoing]:
            return [text_item(n)]

        return items

    tasks = [asyncio.create_task(delivery.deliver(target, await compose(n))) for n in range(4)]
    await asyncio.gather(*tasks)
    assert attempts == ["n=0", "n=0", "n=1", "n=2", "n=3"]


async def test_a_rejected_card_goes_again_smaller_then_as_text() -> None:
    fake = FakeOpenAPI()

    def refuse_cards(call: Call) -> Any:
        if call.json["msg_type"] == "interactive":
            return 400, {"code": 230099, "msg": "card content invalid"}
        return {"code": 0, "data": {"message_id": "om_text"}}

    fake.on("POST", "/open-apis/im/v1/messages", refuse_cards)
    delivery = Delivery(fake, RenderOptions())
    from lark_cards.render import render_reply

    items = render_reply("# Status\n\n| host | ok |\n|---|---|\n| a | yes |")
    sent = await delivery.send_items(target_of(reply("", to=ROOM)), items)
    kinds = [call.json["msg_type"] for call in fake.messages()]
    assert kinds[0] == "interactive"
    assert kinds[-1] in ("post", "text")
    assert sent
    assert sent[-1]["message_id"] == "om_text"


async def test_the_first_card_answer_replaces_the_clicked_card_once() -> None:
    fake = FakeOpenAPI()
    delivery = Delivery(fake, RenderOptions())
    click = Message("!approve", to=ROOM, extras={"message_id": "om_card", "chat_id": "oc_room"})
    click.extras[REPLACE_CARD] = ReplaceCard("om_card")
    card = Outgoing("interactive", {"schema": "2.0", "body": {"elements": []}})
    first = await delivery.send_items(target_of(Message("a", to=ROOM, parent=click)), [card])
    second = await delivery.send_items(target_of(Message("b", to=ROOM, parent=click)), [card])
    patch, answer = fake.messages()
    assert (patch.method, patch.path) == ("PATCH", "/open-apis/im/v1/messages/om_card")
    assert answer.path == "/open-apis/im/v1/messages/om_card/reply"
    assert first == [{"message_id": "om_card"}]
    assert second[0]["message_id"] == "om_1"


async def test_a_failed_replacement_goes_under_the_card() -> None:
    fake = FakeOpenAPI()
    fake.on("PATCH", "/open-apis/im/v1/messages/*", lambda _: (400, {"code": 230031, "msg": "x"}))
    delivery = Delivery(fake, RenderOptions())
    click = Message("!approve", to=ROOM, extras={"message_id": "om_card", "chat_id": "oc_room"})
    click.extras[REPLACE_CARD] = ReplaceCard("om_card")
    card = Outgoing("interactive", {"schema": "2.0", "body": {"elements": []}})
    await delivery.send_items(target_of(Message("a", to=ROOM, parent=click)), [card])
    assert [c.path for c in fake.messages()] == [
        "/open-apis/im/v1/messages/om_card",
        "/open-apis/im/v1/messages/om_card/reply",
    ]


async def test_a_refused_send_raises_and_the_turn_is_released() -> None:
    fake = FakeOpenAPI()
    fake.on("POST", "/open-apis/im/v1/messages", lambda _: (400, {"code": 230002, "msg": "no"}))
    delivery = Delivery(fake, RenderOptions())
    target = target_of(reply("", to=ROOM))

    async def one(_: Delivery) -> list[Outgoing]:
        return [text_item(1)]

    with pytest.raises(LarkAPIError, match="230002"):
        await delivery.deliver(target, one)
    with pytest.raises(LarkAPIError):
        await asyncio.wait_for(delivery.deliver(target, one), 1)  # not stuck behind the first
