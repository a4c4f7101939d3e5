"""Every reply delivered exactly once, in order per chat, while Feishu fails as it does.

200 commands over 5 chats (3 groups, a p2p chat, and private answers to group questions,
which are new messages rather than replies), each answered 1-3 times from a pool of 8 threads
as Errbot's is, through the ``Outbox`` to the loop thread. The fake platform
(``api_fakes.FaultyPlatform``) fails 30 % of message attempts, each from a seeded
``random.Random``: HTTP 500, 429/99991400 with its reset, 230020, an expiring token
(99991663), a timeout, a connection reset, and a message created whose answer is lost. It
keeps Feishu's uuid rule (§4.1), so only a retry with the same uuid keeps a lost answer from
becoming a second message, and only derived uuids let a restarted bot answer again safely.

Time is simulated (``SimClock``): backoffs, resets, token lifetimes and timeouts take no real
time, and concurrent sleeps overlap as in real time, so several sends to a chat are always
waiting behind one that retries. Nothing is judged by that clock: each answer shows its id,
and order is the sequence of ids a chat received against the order the plugins sent them.
So that the checks cannot pass vacuously, every kind of fault must have been met, and the
last test breaks the chat turns and the uuid rule on purpose and sees the checks fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import pytest
from fault_fakes import FAULTS, FaultyPlatform, Instance, SimClock, make_commands, outcome, shown

COMMANDS = 200
Start = Callable[[FaultyPlatform], Instance]


@pytest.fixture
def clock(loop: asyncio.AbstractEventLoop) -> Iterator[SimClock]:
    """Simulated time for everything on ``loop``."""
    sim = SimClock()
    sim.install(loop)
    yield sim
    sim.uninstall()


@pytest.fixture
def start(loop: asyncio.AbstractEventLoop, clock: SimClock) -> Iterator[Start]:
    """``start(platform)``: a bot instance on ``loop``, closed at teardown."""
    started: list[Instance] = []

    def instance(platform: FaultyPlatform) -> Instance:
        started.append(Instance(platform, loop))
        return started[-1]

    yield instance
    for bot in started:
        bot.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_every_reply_is_delivered_once_and_in_order_per_chat(
    seed: int, clock: SimClock, start: Start
) -> None:
    platform = FaultyPlatform(clock, seed=seed)
    handed = start(platform).answer(make_commands(COMMANDS, seed))
    result = outcome(platform, handed.order, list(handed.sends.values()))

    assert result.perfect, str(result)  # none lost, doubled, out of order, given up
    assert result.replies == len(handed.sends) > 300
    assert len(handed.order) == 5
    # Not vacuous: every kind of fault was met, several times, and lost answers were retried
    # into the message they had created.
    assert set(platform.injected) == set(FAULTS), platform.injected
    assert min(platform.injected.values()) >= 5, platform.injected
    assert platform.attempts > 1.3 * result.replies
    assert platform.replayed == platform.injected["answer_lost"] > 0
    assert platform.tokens_issued > 5  # the token expired and was fetched again, many times


def test_the_same_questions_answered_again_after_a_restart_create_nothing(
    clock: SimClock, start: Start
) -> None:
    platform = FaultyPlatform(clock, seed=3)
    commands = make_commands(COMMANDS, 3)
    first = start(platform).answer(commands)
    assert outcome(platform, first.order, list(first.sends.values())).perfect
    created = {chat: list(messages) for chat, messages in platform.created.items()}
    message_of = {shown(m): m.message_id for messages in created.values() for m in messages}
    faults_before = platform.injected.total()

    again = start(platform).answer(commands)  # another process, the same questions

    assert platform.created == created  # not one message more
    for reply, sent in again.sends.items():  # and each answer got its first message back
        assert [data["message_id"] for data in sent.result()] == [message_of[reply]]
    assert platform.injected.total() - faults_before > 100  # through faults again


def test_answers_a_crash_cut_short_are_finished_once_by_the_next_instance(
    clock: SimClock, start: Start
) -> None:
    platform = FaultyPlatform(clock, seed=4)
    commands = make_commands(COMMANDS, 4)
    crashing = start(platform)
    crashing.crash_after(created=150)
    before = crashing.answer(commands)
    done = {chat: [shown(m) for m in messages] for chat, messages in platform.created.items()}
    assert sum(map(len, done.values())) == 150
    for chat, replies in done.items():  # each chat got the beginning of what it was sent
        assert before.order[chat][: len(replies)] == replies

    after = start(platform).answer(commands)

    # What the crash left undone, in the order the new instance sent it.
    expected = {
        chat: done.get(chat, []) + [reply for reply in order if reply not in done.get(chat, [])]
        for chat, order in after.order.items()
    }
    result = outcome(platform, expected, list(after.sends.values()))
    assert result.perfect, str(result)


@pytest.mark.parametrize("broken", ["no chat turns", "no uuid rule"])
def test_the_checks_catch_a_broken_order_and_doubled_messages(
    broken: str, clock: SimClock, start: Start
) -> None:
    platform = FaultyPlatform(clock, seed=1)
    bot = start(platform)
    if broken == "no chat turns":  # every send on its own, as if the delivery path kept none
        bot.delivery.turn = lambda _chat: contextlib.nullcontext()
    else:
        platform.honour_uuid = False
    handed = bot.answer(make_commands(COMMANDS, 1))
    result = outcome(platform, handed.order, list(handed.sends.values()))
    if broken == "no chat turns":
        assert len(result.disordered) == 5, str(result)
        assert not result.lost
        assert not result.doubled
    else:  # each lost answer's retry made a second message
        extra = sum(count - 1 for count in result.doubled.values())
        assert extra == platform.injected["answer_lost"] > 0, str(result)
        assert not result.lost
