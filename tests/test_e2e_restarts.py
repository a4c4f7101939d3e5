"""End to end: restarts, stops, crashes and two instances, with real ``errbot`` processes.

Every bot is a real ``errbot -c config.py`` with the LarkCards backend (``tests/e2e_bots.py``)
against the fake Open Platform on 127.0.0.1; several bots are instances of one app. What must
hold across a restart, a SIGTERM with work queued, a SIGKILL and a second instance on one Redis:
each acked event runs once — never lost, never twice — and its answers arrive once.

"Ran" is read from Errbot's own log line for every command it runs (``Bot.runs``): the
platform turns a second send with the same ``uuid`` into the first message, so counting the
platform's messages alone would not see a command that ran twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from e2e_bots import Ack, Bot, Bots, Request, message_id, wait_until

from lark_cards.inbound.intake import INBOX_LEASE
from lark_cards.state import STATE_FILE, SQLiteStore
from lark_cards.state.leader import RENEW_EVERY

pytestmark = pytest.mark.e2e

# Commands run on the inbound worker itself, so events acked after a ``!slow`` wait behind it
# in the one inbound queue (with Errbot's default thread pool they would all reach Errbot at
# once and nothing would be left queued).
ONE_AT_A_TIME = {"BOT_ASYNC": False}
CHATS = [f"oc_e2echat{c}{'0' * 24}" for c in range(3)]


def ran(command: str, *bots: Bot) -> Counter[str]:
    """How often the bots, together, ran ``command``, by its arguments."""
    return sum((bot.runs(command) for bot in bots), Counter())


async def inbox_size(data_dir: Path) -> int:
    """Acked events a stopped bot left in the SQLite inbox of ``data_dir``."""
    store = await SQLiteStore.open(data_dir / STATE_FILE)
    try:
        return (await store.sizes())["inbox"]
    finally:
        await store.close()


async def ask(bots: Bots, bot: Bot, text: str) -> str:
    """Post ``text`` to ``bot`` and return its (first) answer."""
    payload = bot.message(text)
    assert await bot.post(payload) == 200
    question = message_id(payload)
    await wait_until(lambda: bots.answers(question), 30, f"{bot.name}'s answer to {text!r}")
    return bots.answers(question)[0]


async def answered_then_restarted(bots: Bots) -> tuple[Bot, Bot, Request, str]:
    """Bot a answers one signed ``!echo hi`` and stops (Ctrl-C); bot b starts on a's
    ``BOT_DATA_DIR``: (a, b, the signed request, its message id)."""
    a = await bots.start("a")
    payload = a.message("!echo hi")
    question = message_id(payload)
    request = a.sign(payload)
    assert await a.deliver(request) == Ack(200, "ok")
    await wait_until(lambda: bots.answers(question), 30, "the answer to !echo hi")
    assert await a.stop(signal.SIGINT) == 0, a.tail()
    b = await bots.start("b", data_dir=a.data_dir)
    return a, b, request, question


async def test_a_replay_after_a_restart_is_a_duplicate(bots: Bots):
    """The claim outlives the process (SQLite in BOT_DATA_DIR, the default): the identical
    signed request — same event_id, timestamp, nonce and signature — replayed to the next
    start is acked as a duplicate, and the chat still has one answer."""
    _, b, request, question = await answered_then_restarted(bots)
    assert await b.deliver(request) == Ack(200, "duplicate")
    await asyncio.sleep(2)
    assert bots.answers(question) == ["hi"], bots.logs()


async def test_a_restart_runs_nothing_errbot_already_had(bots: Bots):
    """What Errbot had before the stop is out of the inbox: the next start runs nothing."""
    a, b, _, question = await answered_then_restarted(bots)
    await asyncio.sleep(2)
    assert bots.answers(question) == ["hi"], bots.logs()
    assert "from the inbox" not in b.log(), b.tail()
    assert ran("echo", a, b) == Counter({"hi": 1}), bots.logs()
    assert await b.stop(signal.SIGINT) == 0, b.tail()
    assert await inbox_size(a.data_dir) == 0, "acked events left in the inbox to run again"


async def test_a_retry_signed_six_hours_ago_is_accepted(bots: Bots):
    """Feishu's last retry comes ~6 h after the first push, perhaps with the old signature:
    it is inside the replay window (8 h) and runs."""
    bot = await bots.start()
    payload = bot.message("!echo late")
    six_hours_ago = int(time.time()) - 6 * 3600
    assert await bot.deliver(bot.sign(payload, timestamp=six_hours_ago)) == Ack(200, "ok")
    question = message_id(payload)
    await wait_until(lambda: bots.answers(question), 30, "the answer to !echo late")
    await asyncio.sleep(1)
    assert bots.answers(question) == ["late"], bot.tail()


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="command-on-errbots-pool"),
        pytest.param(ONE_AT_A_TIME, id="command-on-the-inbound-worker"),
    ],
)
async def test_sigterm_exits_within_shutdown_timeout_while_a_command_runs(bots: Bots, config):
    """A process manager kills what outlives its stop timeout: the bot must exit about
    ``shutdown_timeout`` after SIGTERM even if a command never ends, naming it."""
    timeout = 3.0
    bot = await bots.start(lark_cards={"shutdown_timeout": timeout}, config=config)
    assert await bot.post(bot.message("!slow 8")) == 200
    await wait_until(lambda: "slow command started" in bot.log(), 10, "!slow 8 to start")

    loop = asyncio.get_running_loop()
    signalled = loop.time()
    returncode = await bot.stop(signal.SIGTERM, 30)
    stopped_in = loop.time() - signalled
    assert returncode == 0, bot.tail()
    assert cut_off(bot, "!slow 8"), bot.tail()
    assert stopped_in < timeout + 2, f"exited {stopped_in:.1f} s after SIGTERM\n{bot.tail()}"


def cut_off(bot: Bot, command: str) -> list[str]:
    """The ERROR lines in which ``bot`` said a shutdown cut ``command`` off."""
    return [
        line
        for line in bot.log().splitlines()
        if " ERROR " in line and f"cut off {command!r}" in line
    ]


async def test_sigterm_leaves_queued_events_to_the_next_start(bots: Bots):
    """SIGTERM while acked events wait behind a slow command: the bot exits cleanly, names
    what it cut off and what it left, and the next start on the same data dir runs what
    Errbot never got, each once."""
    options = {"shutdown_timeout": 3}
    a = await bots.start("a", lark_cards=options, config=ONE_AT_A_TIME)
    slow = a.message("!slow 5")
    assert await a.post(slow) == 200
    echoes = [a.message(f"!echo {n}") for n in range(20)]
    for payload in echoes:
        assert await a.post(payload) == 200
    await wait_until(lambda: "slow command started" in a.log(), 10, "!slow 5 to start")

    assert await a.stop(signal.SIGTERM, 30) == 0, a.tail()
    log = a.log()
    assert cut_off(a, "!slow 5"), a.tail()
    left = [line for line in log.splitlines() if "had not reached Errbot" in line]
    assert left, a.tail()  # "21 inbound event(s) had not reached Errbot in time"
    assert "Traceback" not in log, a.tail()
    ran_before = a.runs("echo")

    b = await bots.start("b", data_dir=a.data_dir, lark_cards=options)
    questions = [message_id(payload) for payload in echoes]
    await wait_until(
        lambda: all(bots.answers(q) for q in questions), 30, "an answer to every !echo"
    )
    # Whether !slow 5 runs again is the product's choice (its answer never went out); if it
    # does, let it answer before b stops.
    await wait_until(
        lambda: not b.runs("slow") or bots.answers(message_id(slow)), 15, "b's !slow 5"
    )
    assert [bots.answers(q) for q in questions] == [[str(n)] for n in range(20)], bots.logs()
    assert ran("echo", a, b) == Counter({str(n): 1 for n in range(20)}), bots.logs()
    assert b.log().count("from the inbox") >= 20 - len(ran_before), b.tail()
    assert len(bots.answers(message_id(slow))) <= 1, bots.logs()


async def deliver_everywhere(bots: Bots, pace: float) -> dict[str, list[str]]:
    """30 ``!echo n`` (n counting up per chat, three chats in turn), each posted to one of
    two instances and its retry — the same signed request — to the other, ``pace`` seconds
    apart; the question ids of each chat, in the order asked."""
    a, b = bots.started
    questions: dict[str, list[str]] = {chat: [] for chat in CHATS}
    for i in range(30):
        chat, n = CHATS[i % len(CHATS)], i // len(CHATS)
        payload = a.message(f"!echo {n}", chat=chat)
        questions[chat].append(message_id(payload))
        request = a.sign(payload)
        first, retry = (a, b) if i % 2 == 0 else (b, a)
        assert await first.deliver(request) == Ack(200, "ok")
        assert await retry.deliver(request) == Ack(200, "duplicate")
        await asyncio.sleep(pace)
    every = [q for chat in CHATS for q in questions[chat]]
    await wait_until(lambda: all(bots.answers(q) for q in every), 30, "an answer to every !echo")
    await asyncio.sleep(2)
    return questions


@pytest.fixture
async def two_on_redis(bots: Bots, redis_server) -> Bots:
    """Two instances of the app, one Redis for their state."""
    shared = {"state_url": redis_server.url}
    await asyncio.gather(bots.start("a", lark_cards=shared), bots.start("b", lark_cards=shared))
    return bots


async def test_two_instances_on_one_redis_answer_each_event_once_in_order(two_on_redis: Bots):
    """A load balancer sends each event to one instance and Feishu's retry of it to the
    other: each runs once, is answered once, and each chat's answers keep its order (a
    chat's events come 0.3 s apart, inside Feishu's 5 messages a second per chat)."""
    bots = two_on_redis
    questions = await deliver_everywhere(bots, pace=0.1)
    for chat in CHATS:
        assert [bots.answers(q) for q in questions[chat]] == [[str(n)] for n in range(10)]
    assert ran("echo", *bots.started) == Counter({str(n): 3 for n in range(10)}), bots.logs()
    for chat in CHATS:
        assert bots.chat(chat) == [str(n) for n in range(10)], bots.logs()


@pytest.mark.xfail(
    strict=True,
    reason="limitation: nothing orders a chat's answers across instances. Each instance "
    "paces its own sends at chat_qps (5/s), so two together exceed Feishu's 5/s per chat; the "
    "refused sends (230020) are retried after a backoff, behind the other instance's later "
    "answers — and two processes answering one chat race anyway",
)
async def test_two_instances_keep_a_chat_s_order_in_a_burst(two_on_redis: Bots):
    """The same 30 events as fast as they can be posted: each chat gets ~10 answers within
    a second, more than Feishu's 5 a second per chat."""
    bots = two_on_redis
    questions = await deliver_everywhere(bots, pace=0)
    assert ran("echo", *bots.started) == Counter({str(n): 3 for n in range(10)}), bots.logs()
    refusals = bots.platform.refusals
    for chat in CHATS:
        assert [bots.answers(q) for q in questions[chat]] == [[str(n)] for n in range(10)]
        assert bots.chat(chat) == [str(n) for n in range(10)], refusals


@pytest.mark.timeout(INBOX_LEASE + 120)
async def test_a_killed_instance_s_acked_events_run_once_on_the_other(bots: Bots, redis_server):
    """SIGKILL while an instance holds acked events (a ``!slow 30`` running, echoes queued
    behind it): once their inbox lease has run out the other instance runs them, once."""
    shared = {"state_url": redis_server.url, "shutdown_timeout": 2}
    a = await bots.start("a", lark_cards=shared, config=ONE_AT_A_TIME)
    assert await a.post(a.message("!slow 30")) == 200
    echoes = [a.message(f"!echo {n}") for n in range(5)]
    for payload in echoes:
        assert await a.post(payload) == 200
    await wait_until(lambda: "slow command started" in a.log(), 10, "!slow 30 to start on a")
    # b starts after a's claims only to keep this test short: b looks at the inbox when it
    # starts and every INBOX_LEASE / 3 after, so its third look comes just after the lease.
    b = await bots.start("b", lark_cards=shared)
    await a.stop(signal.SIGKILL)

    questions = [message_id(payload) for payload in echoes]
    took = await wait_until(
        lambda: all(bots.answers(q) for q in questions),
        INBOX_LEASE + 60,
        "b to answer a's echoes",
    )
    await asyncio.sleep(2)
    assert [bots.answers(q) for q in questions] == [[str(n)] for n in range(5)], bots.logs()
    assert a.runs("echo") == Counter(), a.tail()
    assert b.runs("echo") == Counter({str(n): 1 for n in range(5)}), b.tail()
    assert "from the inbox" in b.log(), b.tail()
    assert took < INBOX_LEASE + 30, f"b took {took:.0f} s"


async def test_one_leader_among_two_instances_and_a_handover_on_sigterm(bots: Bots, redis_server):
    """``self._bot.is_leader()`` (the ``!leader`` plugin) is true on exactly one of two
    instances; when that one stops it gives the lease up, and the other takes it at its
    next renewal (every RENEW_EVERY s), not after the lease's TTL."""
    shared = {"state_url": redis_server.url}
    a = await bots.start("a", lark_cards=shared)
    b = await bots.start("b", lark_cards=shared)
    roles = {a.name: await ask(bots, a, "!leader"), b.name: await ask(bots, b, "!leader")}
    assert sorted(roles.values()) == ["follower", "leader"], bots.logs()
    leader, other = (a, b) if roles[a.name] == "leader" else (b, a)

    assert await leader.stop(signal.SIGTERM) == 0, leader.tail()

    async def other_leads() -> bool:
        return await ask(bots, other, "!leader") == "leader"

    took = await wait_until(other_leads, RENEW_EVERY + 10, f"{other.name} to become the leader")
    assert took <= RENEW_EVERY + 2, f"{other.name} took {took:.1f} s"
