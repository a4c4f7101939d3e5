"""Cards that update in place: paced, ordered PATCHes, the 14-day window, coalescing progress
(on virtual time), and the thread-side API plugins use."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from errbot.backends.base import Message

from lark_cards.api.errors import LarkAPIError
from lark_cards.identifiers import LarkPerson, LarkRoom
from lark_cards.interactive import button
from lark_cards.outbound import Sender, Target
from lark_cards.render import Budget, RenderOptions
from lark_cards.updates import (
    UPDATE_WINDOW,
    CardExpiredError,
    CardPatcher,
    Cards,
    ProgressCard,
)

GROUP = "oc_group"
DAY = 86400.0


class VirtualTime:
    """A clock and a sleep on virtual time: sleepers wake only when the test advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(delay, 0.0), next(self._order), future))
        await future

    async def advance(self, delta: float) -> None:
        end = self.now + delta
        while True:
            await _settle()
            if not self._sleepers or self._sleepers[0][0] > end:
                break
            when, _, future = heapq.heappop(self._sleepers)
            self.now = when
            future.set_result(None)
        self.now = end
        await _settle()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class FakeClient:
    """Records sends and PATCHes with the (virtual) time they happened."""

    def __init__(self, clock: Any = lambda: 0.0, fail_patch: bool = False) -> None:
        self.clock = clock
        self.fail_patch = fail_patch
        self.calls: list[tuple[float, str, str, Any]] = []
        self._ids = itertools.count(1)

    def _new(self, kind: str, where: str, content: Any) -> dict[str, Any]:
        self.calls.append((self.clock(), kind, where, content))
        return {"message_id": f"om_{next(self._ids)}"}

    async def send_message(self, receive_id: str, msg_type: str, content: Any, **_: Any) -> Any:
        return self._new("send", receive_id, content)

    async def reply_message(self, message_id: str, msg_type: str, content: Any, **_: Any) -> Any:
        return self._new("reply", message_id, content)

    async def request(self, method: str, path: str, *, json: Any = None, **_: Any) -> Any:
        self.calls.append((self.clock(), method, path, json))
        if self.fail_patch:
            raise LarkAPIError(230031, "card not updatable")
        return {"code": 0}

    def patches(self) -> list[tuple[float, str, dict[str, Any]]]:
        return [
            (at, path.rsplit("/", 1)[-1], json.loads(body["content"]))
            for at, kind, path, body in self.calls
            if kind == "PATCH"
        ]


def text_of(card: dict[str, Any]) -> str:
    return " ".join(e.get("content", "") for e in card["body"]["elements"])


# --- CardPatcher / CardHandle -------------------------------------------------------------------


async def test_patch_sends_the_card_as_a_json_string_to_the_message() -> None:
    client = FakeClient()
    handle = CardPatcher(client).handle("om/1", sent_at=None)
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "hé"}]}}
    await handle.update(card)
    [(_, method, path, body)] = client.calls
    assert (method, path) == ("PATCH", "/open-apis/im/v1/messages/om%2F1")
    assert json.loads(body["content"]) == card
    assert "hé" in body["content"]  # not \\u-escaped: the 30 KB limit counts bytes


async def test_patches_keep_to_5_per_second_per_message_and_their_order() -> None:
    time = VirtualTime()
    client = FakeClient(time)
    patcher = CardPatcher(client, monotonic=time, sleep=time.sleep)
    tasks = [asyncio.create_task(patcher.patch("om_a", {"n": n})) for n in range(12)]
    other = asyncio.create_task(patcher.patch("om_b", {"n": 0}))
    await time.advance(5)
    await asyncio.gather(*tasks, other)
    stamps = [at for at, path, _ in client.patches() if path == "om_a"]
    assert [card["n"] for _, path, card in client.patches() if path == "om_a"] == list(range(12))
    assert all(later - earlier >= 1.0 for earlier, later in zip(stamps, stamps[5:], strict=False))
    assert [at for at, path, _ in client.patches() if path == "om_b"] == [0.0]  # not held up


async def test_a_card_older_than_14_days_is_refused_without_a_request() -> None:
    now = [0.0]
    client = FakeClient()
    handle = CardPatcher(client, clock=lambda: now[0]).handle("om_old", sent_at=0.0)
    now[0] = UPDATE_WINDOW - 60
    await handle.update({"schema": "2.0"})  # 13.99 days: fine
    now[0] = UPDATE_WINDOW + 1
    with pytest.raises(CardExpiredError, match="14 days"):
        await handle.update({"schema": "2.0"})
    assert len(client.calls) == 1


def test_handles_of_sent_cards_know_when_they_were_sent() -> None:
    patcher = CardPatcher(FakeClient(), clock=lambda: 42.0)
    assert patcher.handle_for({"message_id": "om_1", "create_time": "1700000000123"}).sent_at == (
        1_700_000_000.123
    )
    assert patcher.handle_for({"message_id": "om_2"}).sent_at == 42.0


# --- ProgressCard on virtual time ---------------------------------------------------------------


def progress_parts(
    time: VirtualTime, rate: float = 2.0, options: RenderOptions | None = None, **client: Any
) -> tuple[FakeClient, Sender, CardPatcher, ProgressCard]:
    fake = FakeClient(time, **client)
    sender = Sender(fake, options or RenderOptions(), upload_images=False)  # type: ignore[arg-type]
    patcher = CardPatcher(fake, monotonic=time, sleep=time.sleep)
    target = Target(GROUP, "chat_id", GROUP)
    return fake, sender, patcher, ProgressCard(target, rate=rate, monotonic=time, sleep=time.sleep)


async def test_progress_coalesces_many_updates_and_ends_in_the_final_state() -> None:
    time = VirtualTime()
    client, sender, patcher, card = progress_parts(time, rate=2.0)
    await card.start("starting", sender, patcher)
    for step in range(100):  # 100 updates over 5 virtual seconds
        card.set(f"step {step}")
        await time.advance(0.05)
    finishing = asyncio.create_task(card.finish("all done"))
    await time.advance(1)
    await finishing
    [(_, kind, _, first)] = [call for call in client.calls if call[1] != "PATCH"]
    assert (kind, text_of(first)) == ("send", "starting")
    patches = client.patches()
    stamps = [at for at, _, _ in patches]
    assert len(patches) <= 1 + 2 * stamps[-1]  # at most 2 per second
    assert len(patches) < 15  # not 100
    assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(stamps))
    assert text_of(patches[-1][2]) == "all done"
    assert {path for _, path, _ in patches} == {"om_1"}


async def test_a_final_state_longer_than_one_card_continues_in_new_cards() -> None:
    time = VirtualTime()
    options = RenderOptions(budget=Budget(max_bytes=3000, margin=0))
    client, sender, patcher, card = progress_parts(time, options=options)
    await card.start("starting", sender, patcher)
    final = "\n\n".join(f"paragraph {n} " + "word " * 100 for n in range(10))
    finishing = asyncio.create_task(card.finish(final))
    await time.advance(1)
    await finishing
    [(_, _, patched)] = client.patches()
    extra = [content for _, kind, _, content in client.calls if kind == "send"][1:]
    assert extra  # the rest of the final state, after the PATCH
    assert "paragraph 0" in text_of(patched)
    assert "paragraph 9" in text_of(extra[-1])
    assert client.calls[-1][1] == "send"


async def test_when_patching_fails_the_final_state_is_sent_anew() -> None:
    time = VirtualTime()
    client, sender, patcher, card = progress_parts(time, fail_patch=True)
    await card.start("starting", sender, patcher)
    card.set("step 1")
    await time.advance(1)
    card.set("step 2")
    finishing = asyncio.create_task(card.finish("done"))
    await time.advance(1)
    await finishing
    assert [kind for _, kind, _, _ in client.calls] == ["send", "PATCH", "send"]
    assert text_of(client.calls[-1][3]) == "done"


async def test_when_the_first_card_cannot_be_sent_the_final_state_still_is() -> None:
    time = VirtualTime()
    client, sender, patcher, card = progress_parts(time)

    async def broken(*_: Any, **__: Any) -> Any:
        raise LarkAPIError(230002, "bot not in chat")

    sender.send = broken  # type: ignore[method-assign]
    await card.start("starting", sender, patcher)
    card.set("step 1")
    sender.send = Sender.send.__get__(sender)  # type: ignore[method-assign]
    finishing = asyncio.create_task(card.finish("done"))
    await time.advance(1)
    await finishing
    assert [(kind, text_of(content)) for _, kind, _, content in client.calls] == [("send", "done")]


# --- the thread side: what plugins call ------------------------------------------------------


@pytest.fixture
def cards() -> Iterator[tuple[Cards, FakeClient]]:
    """A Cards facade whose loop runs in a thread, as the backend's does."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="lark-loop", daemon=True)
    thread.start()
    client = FakeClient()
    sender = Sender(client, RenderOptions(), upload_images=False)  # type: ignore[arg-type]

    def submit(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop)

    yield Cards(submit, lambda: sender, progress_rate=50.0), client
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_send_updatable_then_update_in_order(cards: tuple[Cards, FakeClient]) -> None:
    facade, client = cards
    ref = facade.send_updatable(LarkRoom(GROUP), "**v0**")
    assert ref.message_id == "om_1"
    futures = [ref.update(f"v{n}") for n in range(1, 8)]
    for future in futures:
        future.result(5)
    assert [text_of(card) for _, _, card in client.patches()] == [f"v{n}" for n in range(1, 8)]
    ref.update_card({"schema": "2.0", "body": {"elements": []}}).result(5)
    assert client.patches()[-1][2] == {"schema": "2.0", "body": {"elements": []}}


def test_send_buttons_puts_a_row_at_the_end_and_replies_under_the_question(
    cards: tuple[Cards, FakeClient],
) -> None:
    facade, client = cards
    question = Message(extras={"message_id": "om_q", "chat_id": GROUP, "chat_type": "group"})
    approve = button("Approve", "!approve 1", style="primary")
    ref = facade.send_buttons(LarkRoom(GROUP), "Deploy?", [approve], in_reply_to=question)
    assert ref.message_id == "om_1"
    [(_, kind, where, card)] = client.calls
    assert (kind, where) == ("reply", "om_q")
    assert card["body"]["elements"][-1]["columns"][0]["elements"] == [approve]
    ref.update("Approved.").result(5)
    assert "column_set" not in json.dumps(client.patches()[-1][2])  # the buttons are gone


def test_a_card_json_can_be_sent_as_it_is(cards: tuple[Cards, FakeClient]) -> None:
    facade, client = cards
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "x"}]}}
    assert facade.send_updatable(LarkPerson("ou_x"), card).message_id == "om_1"
    assert client.calls[0][1:] == ("send", "ou_x", card)


def test_progress_as_a_context_manager(cards: tuple[Cards, FakeClient]) -> None:
    facade, client = cards
    reply = Message(to=LarkRoom(GROUP))
    with facade.progress(reply, "Deploying…") as progress:
        for step in range(20):
            progress.update(f"step {step}/20")
    sent = [content for _, kind, _, content in client.calls if kind == "send"]
    assert [text_of(card) for card in sent] == ["Deploying…"]
    assert text_of(client.patches()[-1][2]) == "step 19/20"
    with pytest.raises(RuntimeError, match="finished"):
        progress.update("too late")


def test_a_failing_block_ends_the_card_with_the_error(cards: tuple[Cards, FakeClient]) -> None:
    facade, client = cards

    def deploy() -> None:
        with facade.progress(Message(to=LarkRoom(GROUP)), "Deploying…") as progress:
            progress.update("step 1")
            raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):  # the error still reaches Errbot
        deploy()
    assert text_of(client.patches()[-1][2]).endswith("**Failed:** disk full")
