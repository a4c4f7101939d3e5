"""Cards that update in place: paced, ordered PATCHes, the 14-day window, coalescing progress
(on fake time), and the thread-side API plugins use (``Outbox`` on a loop thread)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_fakes import Call, FakeOpenAPI, FakeTime
from errbot.backends.base import Message

from lark_cards.api.errors import LarkAPIError
from lark_cards.bridge import LoopBridge
from lark_cards.identifiers import LarkPerson, LarkRoom
from lark_cards.interactive import button
from lark_cards.outbound import Outbox
from lark_cards.outbound.cards import UPDATE_WINDOW, AsyncCard, AsyncProgress, CardExpiredError
from lark_cards.outbound.delivery import Delivery
from lark_cards.outbound.target import Target
from lark_cards.render import Budget, RenderOptions

GROUP = "oc_group"
PATCHED = "/open-apis/im/v1/messages/*"


def text_of(card: dict[str, Any]) -> str:
    return " ".join(e.get("content", "") for e in card["body"]["elements"])


def patches(fake: FakeOpenAPI) -> list[Call]:
    return [call for call in fake.messages() if call.method == "PATCH"]


def created(fake: FakeOpenAPI) -> list[Call]:
    return [call for call in fake.messages() if call.method == "POST"]


def refuse_patches(fake: FakeOpenAPI) -> None:
    fake.on("PATCH", PATCHED, lambda _: (400, {"code": 230031, "msg": "card not updatable"}))


# --- PATCHing a sent card -----------------------------------------------------------------------


async def test_patch_sends_the_card_as_a_json_string_to_the_message() -> None:
    fake = FakeOpenAPI()
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "hé"}]}}
    sent = AsyncCard.of({"message_id": "om/1"}, GROUP)  # sent now
    await sent.update(Delivery(fake, RenderOptions()), card)
    [patch] = fake.messages()
    assert (patch.method, patch.path) == ("PATCH", "/open-apis/im/v1/messages/om%2F1")
    assert patch.content == card
    assert "hé" in patch.json["content"]  # not \\u-escaped: the 30 KB limit counts bytes


async def test_patches_keep_to_5_per_second_per_message_and_their_order() -> None:
    time = FakeTime()
    fake = FakeOpenAPI(clock=time.clock, sleep=time.wait)
    tasks = [asyncio.create_task(fake.update_message("om_a", {"n": n})) for n in range(12)]
    other = asyncio.create_task(fake.update_message("om_b", {"n": 0}))
    await time.advance(5)
    await asyncio.gather(*tasks, other)
    on_a = [call for call in patches(fake) if call.path.endswith("/om_a")]
    assert [call.content["n"] for call in on_a] == list(range(12))
    stamps = [call.at for call in on_a]
    assert all(later - earlier >= 1.0 for earlier, later in zip(stamps, stamps[5:], strict=False))
    assert [call.at for call in patches(fake) if call.path.endswith("/om_b")] == [0.0]


async def test_a_card_older_than_14_days_is_refused_without_a_request() -> None:
    fake = FakeOpenAPI()
    delivery = Delivery(fake, RenderOptions())
    card = AsyncCard("om_old", GROUP, sent_at=1.0)
    await card.update(delivery, {"schema": "2.0"}, now=1.0 + UPDATE_WINDOW - 60)  # 13.99 days
    with pytest.raises(CardExpiredError, match="14 days"):
        await card.update(delivery, {"schema": "2.0"}, now=1.0 + UPDATE_WINDOW + 1)
    assert len(fake.messages()) == 1


def test_sent_cards_know_when_they_were_sent() -> None:
    sent = AsyncCard.of({"message_id": "om_1", "create_time": "1700000000123"}, GROUP)
    assert sent.sent_at == 1_700_000_000.123
    assert AsyncCard.of({"message_id": "om_2"}, GROUP, now=42.0).sent_at == 42.0


# --- progress cards on fake time ------------------------------------------------------------


def progress_parts(
    time: FakeTime, rate: float = 2.0, options: RenderOptions | None = None
) -> tuple[FakeOpenAPI, Delivery, AsyncProgress]:
    fake = FakeOpenAPI(clock=time.clock, sleep=time.wait)
    delivery = Delivery(fake, options or RenderOptions(), upload_images=False)
    target = Target(GROUP, "chat_id", GROUP)
    card = AsyncProgress(target, "starting", rate=rate, monotonic=time.clock, sleep=time.wait)
    return fake, delivery, card


TICKETS = itertools.count(1)  # the chat's order, as Outbox.run hands it out (0: the start)


def show(card: AsyncProgress, delivery: Delivery, text: str) -> asyncio.Task[None]:
    """``Progress.update(text)``: the state takes the chat's next ticket, then its turn."""
    ticket = next(TICKETS)
    card.queued(ticket)
    return asyncio.create_task(card.show(delivery, ticket, text))


async def finish(time: FakeTime, card: AsyncProgress, delivery: Delivery, text: str) -> None:
    """``Progress.finish(text)``: the final state, with time moving until it is delivered."""
    ticket = next(TICKETS)
    card.queued(ticket)
    finishing = asyncio.create_task(card.finish(delivery, ticket, text))
    while not finishing.done():
        await time.advance(0.1)
    await finishing


async def test_progress_coalesces_many_updates_and_ends_in_the_final_state() -> None:
    time = FakeTime()
    fake, delivery, card = progress_parts(time, rate=2.0)
    await card.start(delivery, 0)
    shows = []
    for step in range(100):  # 100 updates over 5 seconds, each asking for a PATCH
        shows.append(show(card, delivery, f"step {step}"))
        await time.advance(0.05)
    await finish(time, card, delivery, "all done")
    await asyncio.gather(*shows)
    [first] = created(fake)
    assert (first.path, text_of(first.content)) == ("/open-apis/im/v1/messages", "starting")
    stamps = [call.at for call in patches(fake)]
    assert len(stamps) <= 1 + 2 * stamps[-1]  # at most 2 per second
    assert len(stamps) < 15  # not 100
    assert all(later - earlier >= 0.5 - 1e-9 for earlier, later in itertools.pairwise(stamps))
    assert text_of(patches(fake)[-1].content) == "all done"
    assert {call.path for call in patches(fake)} == {"/open-apis/im/v1/messages/om_1"}


async def test_a_final_state_longer_than_one_card_continues_in_new_cards() -> None:
    time = FakeTime()
    options = RenderOptions(budget=Budget(max_bytes=3000, margin=0))
    fake, delivery, card = progress_parts(time, options=options)
    await card.start(delivery, 0)
    final = "\n\n".join(f"paragraph {n} " + "word " * 100 for n in range(10))
    await finish(time, card, delivery, final)
    [patched] = patches(fake)
    extra = created(fake)[1:]
    assert extra  # the rest of the final state, after the PATCH
    assert "paragraph 0" in text_of(patched.content)
    assert "paragraph 9" in text_of(extra[-1].content)
    assert fake.messages()[-1].method == "POST"


async def test_when_patching_fails_the_final_state_is_sent_anew() -> None:
    time = FakeTime()
    fake, delivery, card = progress_parts(time)
    refuse_patches(fake)
    await card.start(delivery, 0)
    showing = show(card, delivery, "step 1")
    await time.advance(1)
    await showing
    await finish(time, card, delivery, "done")
    assert [call.method for call in fake.messages()] == ["POST", "PATCH", "POST"]
    assert text_of(fake.messages()[-1].content) == "done"


async def test_when_the_first_card_cannot_be_sent_the_final_state_still_is() -> None:
    time = FakeTime()
    fake, delivery, card = progress_parts(time)
    refused = iter([230002])  # the bot is not in the chat yet; it is added before the end
    fake.refuse(lambda _: next(refused, None))
    await card.start(delivery, 0)
    await show(card, delivery, "step 1")
    await finish(time, card, delivery, "done")
    assert [text_of(call.content) for call in fake.delivered()] == ["done"]


# --- the thread side: what plugins call ------------------------------------------------------


class Plugin:
    """What a plugin thread sees: an ``Outbox`` wired to a fake Open Platform on a loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        time = FakeTime()  # PATCH pacing (5/s per card) without waiting for it
        self.fake = FakeOpenAPI(clock=time.clock, sleep=time.sleep)
        delivery = Delivery(self.fake, RenderOptions(), upload_images=False)
        bridge = LoopBridge()
        bridge.attach(loop)
        self.outbox = Outbox(bridge, lambda: delivery, progress_rate=50.0)


@pytest.fixture
def plugin(loop: asyncio.AbstractEventLoop) -> Iterator[Plugin]:
    wired = Plugin(loop)
    yield wired
    wired.outbox.close()


def test_send_updatable_then_update_in_order(plugin: Plugin) -> None:
    ref = plugin.outbox.send_updatable(LarkRoom(GROUP), "**v0**", None)
    assert ref.message_id == "om_1"
    futures = [ref.update(f"v{n}") for n in range(1, 8)]
    for future in futures:
        future.result(5)
    assert [text_of(call.content) for call in patches(plugin.fake)] == [
        f"v{n}" for n in range(1, 8)
    ]
    ref.update_card({"schema": "2.0", "body": {"elements": []}}).result(5)
    assert patches(plugin.fake)[-1].content == {"schema": "2.0", "body": {"elements": []}}


def test_send_buttons_puts_a_row_at_the_end_and_replies_under_the_question(
    plugin: Plugin,
) -> None:
    question = Message(extras={"message_id": "om_q", "chat_id": GROUP, "chat_type": "group"})
    approve = button("Approve", "!approve 1", style="primary")
    ref = plugin.outbox.send_buttons(LarkRoom(GROUP), "Deploy?", [approve], question)
    assert ref.message_id == "om_1"
    [sent] = plugin.fake.messages()
    assert sent.path == "/open-apis/im/v1/messages/om_q/reply"
    assert sent.content["body"]["elements"][-1]["columns"][0]["elements"] == [approve]
    ref.update("Approved.").result(5)
    assert "column_set" not in json.dumps(patches(plugin.fake)[-1].content)  # buttons gone


def test_a_card_json_can_be_sent_as_it_is(plugin: Plugin) -> None:
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "x"}]}}
    assert plugin.outbox.send_updatable(LarkPerson("ou_x"), card, None).message_id == "om_1"
    [sent] = plugin.fake.messages()
    assert (sent.path, sent.json["receive_id"], sent.content) == (
        "/open-apis/im/v1/messages",
        "ou_x",
        card,
    )


def test_updating_a_card_past_14_days_fails_the_plugins_future(plugin: Plugin) -> None:
    november_2023 = "1700000000000"  # Feishu's create_time: milliseconds
    data = {"code": 0, "data": {"message_id": "om_old", "create_time": november_2023}}
    plugin.fake.on("POST", "/open-apis/im/v1/messages", lambda _: data)
    ref = plugin.outbox.send_updatable(LarkRoom(GROUP), "old news", None)
    with pytest.raises(CardExpiredError, match="send a new card"):
        ref.update("newer news").result(5)
    assert patches(plugin.fake) == []


def test_a_refused_update_fails_the_plugins_future(plugin: Plugin) -> None:
    refuse_patches(plugin.fake)
    ref = plugin.outbox.send_updatable(LarkRoom(GROUP), "v0", None)
    with pytest.raises(LarkAPIError, match="230031"):
        ref.update("v1").result(5)


def test_a_card_that_could_not_be_sent_fails_its_updates(plugin: Plugin) -> None:
    plugin.fake.refuse(lambda _: 230002)
    ref = plugin.outbox.send_updatable(LarkRoom(GROUP), "v0", None)
    with pytest.raises(LarkAPIError, match="230002"):
        ref.update("v1").result(5)
    with pytest.raises(LarkAPIError):
        _ = ref.message_id
    assert patches(plugin.fake) == []


def shown(fake: FakeOpenAPI) -> str:
    """What the progress card shows in the end: one card, sent once, PATCHed from then on."""
    assert len(created(fake)) == 1
    assert {call.path for call in patches(fake)} <= {"/open-apis/im/v1/messages/om_1"}
    return text_of(fake.messages()[-1].content)


def test_progress_as_a_context_manager(plugin: Plugin) -> None:
    with plugin.outbox.progress(Message(to=LarkRoom(GROUP)), "Deploying…") as progress:
        for step in range(20):
            progress.update(f"step {step}/20")
    assert shown(plugin.fake) == "step 19/20"
    assert len(patches(plugin.fake)) < 20  # coalesced
    with pytest.raises(RuntimeError, match="finished"):
        progress.update("too late")


def test_a_failing_block_ends_the_card_with_the_error(plugin: Plugin) -> None:
    def deploy() -> None:
        with plugin.outbox.progress(Message(to=LarkRoom(GROUP)), "Deploying…") as progress:
            progress.update("step 1")
            raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):  # the error still reaches Errbot
        deploy()
    assert shown(plugin.fake) == "step 1\n\n**Failed:** disk full"


def test_finishing_waits_until_the_final_state_is_delivered(plugin: Plugin) -> None:
    progress = plugin.outbox.progress(Message(to=LarkRoom(GROUP)), "Deploying…")
    progress.finish("deployed")
    assert shown(plugin.fake) == "deployed"  # on return: no waiting for it
    count = len(plugin.fake.messages())
    progress.finish("again")  # a second finish changes nothing
    assert (len(plugin.fake.messages()), shown(plugin.fake)) == (count, "deployed")
