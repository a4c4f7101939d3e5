"""Feishu failing the way it does, for the exactly-once tests and bench: ``FaultyPlatform``
(Feishu's side, shared by every bot instance, on a ``SimClock``), ``FaultyOpenAPI`` (one
instance's client) and ``Instance`` (a bot answering commands through the ``Outbox``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import errno
import heapq
import itertools
import json
import math
import random
import re
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp
from api_fakes import (
    FakeOpenAPI,
)
from errbot.backends.base import Message
from yarl import URL

from lark_cards.api.client import MESSAGES_PATH
from lark_cards.api.errors import ACCESS_TOKEN_INVALID, CHAT_RATE_LIMITED, GATEWAY_RATE_LIMITED
from lark_cards.api.token import REFRESH_MARGIN, TOKEN_PATH
from lark_cards.bridge import LoopBridge
from lark_cards.identifiers import LarkPerson, LarkRoom, LarkRoomOccupant
from lark_cards.outbound import Outbox
from lark_cards.outbound.delivery import Delivery
from lark_cards.outbound.target import CAUSED_BY, cause_of
from lark_cards.render import RenderOptions

# ----- faults: Feishu failing the way it does, on virtual time ---------------------------------
#
# ``FaultyPlatform`` is Feishu's side, shared by every bot instance that talks to it (a restart
# keeps Feishu's memory of uuids); ``FaultyOpenAPI`` is one instance's client. Everything that
# takes time — the client's backoffs and pacing, the platform's rate-limit resets, token
# expiry, network latency, timeouts — runs on one ``SimClock``, so simulated minutes pass in
# real milliseconds and every sleep ends in the order its end falls.

# What a message create or reply attempt can meet (each the way Feishu answers it, §3, §4.4).
FAULTS = {
    "http_500": "HTTP 500 (gateway page, no JSON)",
    "gateway_429": "HTTP 429, code 99991400, x-ogw-ratelimit-reset: 1",
    "chat_230020": "HTTP 400, code 230020 (chat rate limit)",
    "token_expired": "HTTP 200/400, code 99991663 (the token expires)",
    "timeout": "timeout, not processed",
    "reset": "connection reset, not processed",
    "answer_lost": "processed, then the answer is lost (timeout or reset)",
}
UUID_WINDOW = 3600.0  # §4.1: a uuid seen in the last hour gets the first message back
CHAT_QPS = 5  # §4.4: per chat, enforced by the platform on its clock
TICKS = 2**20  # a SimClock's ticks per second


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """``asyncio.to_thread`` work done at once on the calling thread (see ``SimClock``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


class SimClock:
    """Virtual time for one loop. ``sleep`` lasts until the clock reaches its end; the driver
    (a task on the loop, see ``install``) moves the clock to the next end only when nothing on
    the loop can run, so no task sees time pass while it could still act, and concurrent
    sleeps overlap as they would in real time (``FakeTime.sleep`` would add them up).

    ``install`` also makes ``asyncio.to_thread`` work run inline: work in a thread looks
    like an idle loop and would let the clock jump under it. Ordering is never judged by
    this clock: order checks compare content sequence numbers.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._armed: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        # The clock keeps to a grid of 2**-20 s, where adding and subtracting seconds is exact.
        # Off it, rounding can make ``stamp + 1 - now <= 0`` while ``stamp > now - 1``: then
        # ``RateLimiter.acquire`` neither sleeps nor expires the stamp but loops without an
        # await, and a clock that only moves in sleeps never moves again.
        at = math.ceil((self.now + seconds) * TICKS) / TICKS
        heapq.heappush(self._timers, (max(at, self.now + 1 / TICKS), next(self._order), wake))
        if self._armed is not None:
            self._armed.set()
        await wake

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drive the clock on ``loop`` (running in another thread) until ``uninstall``."""

        async def start() -> asyncio.Task[None]:
            loop.set_default_executor(InlineExecutor())
            self._armed = asyncio.Event()
            return asyncio.create_task(self._drive())

        self._loop = loop
        self._driver = asyncio.run_coroutine_threadsafe(start(), loop).result(5)

    def uninstall(self) -> None:
        driver, loop = self._driver, self._loop
        if driver is None or loop is None:
            return

        async def stop() -> None:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        self._driver = None

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._armed is not None
        while True:
            await asyncio.sleep(0)
            # CPython's queue of callbacks ready to run: not empty, someone can still act.
            if loop._ready:  # type: ignore[attr-defined]
                continue
            while self._timers and self._timers[0][2].done():  # cancelled sleepers
                heapq.heappop(self._timers)
            if not self._timers:
                self._armed.clear()
                await self._armed.wait()
                continue
            at, _, wake = heapq.heappop(self._timers)
            self.now = max(self.now, at)
            wake.set_result(None)


@dataclasses.dataclass(frozen=True)
class Created:
    """A message the platform created."""

    chat: str
    message_id: str
    uuid: str
    content: str  # the JSON string the client sent
    at: float  # simulated


Answer = tuple[int, dict[str, str], dict[str, Any] | bytes]


class FaultyPlatform:
    """Feishu's token and message endpoints, failing a share (``rate``) of message attempts.

    Each attempt's fate comes from a ``random.Random`` seeded with ``seed``, the send's uuid
    and the attempt's number, so a seed fails the same sends the same way whatever order the
    threads hand them over in. As Feishu (docs/feishu-platform.md): a uuid seen within the
    hour gets its first message back and creates nothing (§4.1); a token lives two hours and
    a new one is issued once fewer than 30 minutes remain (§3); an expired token stays
    refused; a gateway limit refuses everyone until its reset passes; more than 5 messages a
    second to one chat get 230020 (§4.4). A timeout lasts the client's timeout. What it
    created is in ``created``, per chat, in order; ``injected`` counts the faults drawn,
    ``knock_on`` the refusals they caused later (a stale token, a gateway still limited).
    """

    def __init__(
        self,
        clock: SimClock,
        *,
        seed: int,
        rate: float = 0.3,
        faults: Sequence[str] = tuple(FAULTS),
        latency: float = 0.05,
        token_life: float = 7200.0,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.rate = rate
        self.faults = tuple(faults)
        self.latency = latency  # each answer's way back, simulated seconds
        self.token_life = token_life
        self.questions: dict[str, str] = {}  # a received message's id → its chat
        self.created: defaultdict[str, list[Created]] = defaultdict(list)
        self.injected: Counter[str] = Counter()
        self.knock_on: Counter[str] = Counter()
        self.attempts = 0
        self.replayed = 0  # sends answered with the message their uuid created before
        self.tokens_issued = 0
        self.honour_uuid = True  # False: a platform without §4.1 (to show what uuids prevent)
        self.after_create: Callable[[int], None] | None = None  # hears the running count
        self._tries: Counter[str] = Counter()
        self._refreshing: set[str] = set()  # uuids refused for their token, not yet answered
        self._by_uuid: dict[str, tuple[float, dict[str, Any]]] = {}
        self._tokens: dict[str, float] = {}  # token → when it expires
        self._current: str | None = None
        self._gateway_until = 0.0
        self._arrivals: defaultdict[str, deque[float]] = defaultdict(deque)
        self._ids = itertools.count(1)

    def count(self) -> int:
        return sum(len(messages) for messages in self.created.values())

    async def token(self) -> Answer:
        now, current = self.clock.now, self._current
        if current is None or self._tokens[current] - now < REFRESH_MARGIN:
            self.tokens_issued += 1
            current = self._current = f"t-{self.tokens_issued}"
            self._tokens[current] = now + self.token_life
        expire = int(self._tokens[current] - now)
        await self.clock.sleep(self.latency)
        return 200, {}, {"code": 0, "msg": "ok", "tenant_access_token": current, "expire": expire}

    async def send(
        self, path: str, params: Mapping[str, Any], body: Any, authorization: str, wait: float
    ) -> Answer:
        """One message create or reply attempt; ``wait`` is the client's timeout."""
        self.attempts += 1
        uuid = body["uuid"]
        rng = random.Random(f"{self.seed}/{uuid}/{self._tries[uuid]}")
        self._tries[uuid] += 1
        fault = rng.choice(self.faults) if self.faults and rng.random() < self.rate else None
        if fault == "token_expired" and self._refreshing:
            # A token lives two hours, a send retries for ten minutes at most: Feishu never
            # expires a token while a send that already fetched a new one still retries.
            fault = rng.choice([kind for kind in self.faults if kind != fault] or [None])
        if fault == "timeout":
            self.injected[fault] += 1
            await self.clock.sleep(wait)  # asyncio.TimeoutError is TimeoutError
            raise rng.choice((TimeoutError(), aiohttp.ServerTimeoutError("read timeout")))
        if fault == "reset":
            self.injected[fault] += 1
            raise rng.choice(
                (
                    aiohttp.ServerDisconnectedError(),
                    aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer"),
                )
            )
        chat = self._chat(path, params, body)
        token = authorization.removeprefix("Bearer ")
        answer = self._refusal(fault, chat, token, rng) or self._create(chat, body)
        await self.clock.sleep(self.latency)
        code = answer[2].get("code") if isinstance(answer[2], dict) else None
        if fault == "answer_lost" and code == 0:
            self.injected[fault] += 1
            if rng.random() < 0.5:  # the connection drops at once, or the answer never comes
                raise aiohttp.ServerDisconnectedError()
            await self.clock.sleep(max(0.0, wait - self.latency))
            raise aiohttp.ServerTimeoutError("read timeout")
        if code == 0:
            self._refreshing.discard(uuid)
        elif code == ACCESS_TOKEN_INVALID:
            self._refreshing.add(uuid)
        return answer

    def _chat(self, path: str, params: Mapping[str, Any], body: Any) -> str:
        if path.endswith("/reply"):
            return self.questions[path.split("/")[-2]]
        if params.get("receive_id_type") == "open_id":
            return f"p2p:{body['receive_id']}"
        return str(body["receive_id"])

    def _refusal(self, fault: str | None, chat: str, token: str, rng: random.Random) -> Any:
        now = self.clock.now
        if fault == "gateway_429":
            self.injected[fault] += 1
            self._gateway_until = now + 1
            return _gateway_limited(1)
        if now < self._gateway_until:
            self.knock_on["gateway still limited"] += 1
            return _gateway_limited(math.ceil(self._gateway_until - now))
        if self._tokens.get(token, -math.inf) <= now:
            self.knock_on["stale token refused"] += 1
            return 400, {}, {"code": ACCESS_TOKEN_INVALID, "msg": "Invalid access token"}
        if fault == "token_expired":
            self.injected[fault] += 1
            self._tokens[token] = now  # expired from now on: refused, and a new one issued
            status = rng.choice((200, 400))
            return status, {}, {"code": ACCESS_TOKEN_INVALID, "msg": "Invalid access token"}
        arrivals = self._arrivals[chat]
        arrivals.append(now)
        while arrivals[0] <= now - 1:
            arrivals.popleft()
        if len(arrivals) > CHAT_QPS:
            self.knock_on["over 5 QPS in one chat"] += 1
            return 400, {}, {"code": CHAT_RATE_LIMITED, "msg": "frequency limit"}
        if fault == "http_500":
            self.injected[fault] += 1
            return 500, {"Content-Type": "text/html"}, b"<html>500 Internal Server Error</html>"
        if fault == "chat_230020":
            self.injected[fault] += 1
            return 400, {}, {"code": CHAT_RATE_LIMITED, "msg": "frequency limit"}
        return None

    def _create(self, chat: str, body: Any) -> Answer:
        now, uuid = self.clock.now, body["uuid"]
        first = self._by_uuid.get(uuid)
        if self.honour_uuid and first is not None and first[0] > now:
            self.replayed += 1
            return 200, {}, {"code": 0, "msg": "success", "data": first[1]}
        message_id = f"om_{next(self._ids)}"
        data = {"message_id": message_id, "chat_id": chat, "msg_type": body["msg_type"]}
        self.created[chat].append(Created(chat, message_id, uuid, body["content"], now))
        self._by_uuid[uuid] = (now + UUID_WINDOW, data)
        if self.after_create is not None:
            self.after_create(self.count())
        return 200, {}, {"code": 0, "msg": "success", "data": data}


def _gateway_limited(reset: int) -> Answer:
    headers = {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": str(reset)}
    return 429, headers, {"code": GATEWAY_RATE_LIMITED, "msg": "request trigger frequency limit"}


class FaultyOpenAPI(FakeOpenAPI):
    """One bot instance's client to a ``FaultyPlatform``: its own token cache, limiters and
    retries on the platform's clock (jitter seeded too); other routes as ``FakeOpenAPI``."""

    def __init__(self, platform: FaultyPlatform, **kwargs: Any) -> None:
        kwargs.setdefault("jitter", random.Random(platform.seed).random)
        super().__init__(clock=platform.clock.clock, sleep=platform.clock.sleep, **kwargs)
        self.platform = platform

    async def _request(
        self, method: str, url: str, **kwargs: Any
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Tokens and messages from the platform; the rest as ``FakeOpenAPI`` answers it."""
        path = URL(url).raw_path
        if (method, path) == ("POST", TOKEN_PATH):
            answer = await self.platform.token()
        elif method == "POST" and (path == MESSAGES_PATH or path.endswith("/reply")):
            auth = kwargs["headers"].get("Authorization", "")
            params, body = kwargs["params"] or {}, kwargs["json_body"]
            answer = await self.platform.send(path, params, body, auth, self._timeout)
        else:
            return await super()._request(method, url, **kwargs)
        status, extra, body = answer
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return status, {"Content-Type": "application/json", **extra}, raw


# ----- a bot answering commands, as Errbot does ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Conversation:
    """Where answers land. ``group``: replies under the question in a group; ``direct``: the
    same in the asker's p2p chat; ``private``: private answers to questions asked in a group,
    so new messages (create, not reply) to the person. ``key`` as the client's limiter and
    the platform name it."""

    key: str
    kind: str


CONVERSATIONS = (
    Conversation("oc_ops", "group"),
    Conversation("oc_dev", "group"),
    Conversation("oc_sre", "group"),
    Conversation("p2p:ou_alice", "direct"),
    Conversation("p2p:ou_bob", "private"),
)
REPLY_ID = re.compile(r"\(id r(\d+)\)")
BOT = LarkPerson("ou_bot")


@dataclasses.dataclass(frozen=True)
class Command:
    """A command someone sent, and the ids of the answers its plugin sends, in order."""

    number: int
    where: Conversation
    replies: tuple[int, ...]

    def question(self) -> Message:
        """The message as the backend hands it to Errbot (``inbound.messages.extras``)."""
        extras: dict[str, Any] = {
            "message_id": f"om_q{self.number}",
            "chat_type": "group",
            "event_id": f"ev_q{self.number}",
            "message_type": "text",
            "root_id": None,
            "thread_id": None,
        }
        if self.where.kind == "direct":
            person = self.where.key.removeprefix("p2p:")
            asker = LarkPerson(person, chat_id=f"oc_dm_{person}")
            extras.update(chat_id=asker.client, chat_type="p2p")
            return Message(f"!status {self.number}", frm=asker, to=BOT, extras=extras)
        room = LarkRoom("oc_lobby" if self.where.kind == "private" else self.where.key)
        asker = LarkRoomOccupant(f"ou_member{self.number % 7}", room)
        extras["chat_id"] = room.chat_id
        return Message(f"!status {self.number}", frm=asker, to=room, extras=extras)

    def answer(self, question: Message, reply: int) -> Message:
        """Answer ``reply`` as ``build_reply`` makes it (private: no parent, its cause kept)."""
        index = self.replies.index(reply)
        text = f"answer {index + 1} of {len(self.replies)} to command {self.number} (id r{reply})"
        extras = {"reply_in_thread": False, CAUSED_BY: cause_of(question)}
        if self.where.kind == "group":
            return Message(text, frm=BOT, to=question.to, parent=question, extras=extras)
        person = LarkPerson(self.where.key.removeprefix("p2p:"), chat_id=question.frm.client)
        parent = question if self.where.kind == "direct" else None
        return Message(text, frm=BOT, to=person, parent=parent, extras=extras)


def make_commands(count: int, seed: int) -> list[Command]:
    """``count`` commands spread over the conversations, each answered 1-3 times."""
    rng = random.Random(seed)
    ids = itertools.count(1)
    return [
        Command(n, rng.choice(CONVERSATIONS), tuple(next(ids) for _ in range(rng.randint(1, 3))))
        for n in range(count)
    ]


class RecordingBridge(LoopBridge):
    """A ``LoopBridge`` that keeps the future of everything submitted, newest last."""

    def __init__(self) -> None:
        super().__init__()
        self.futures: list[concurrent.futures.Future[Any]] = []

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(coro)
        self.futures.append(future)
        return future


@dataclasses.dataclass
class Handed:
    """What one instance was handed: each chat's answers in the order the plugin threads
    sent them, when (simulated) each answer's command was taken up, and each send's future."""

    order: defaultdict[str, list[int]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )
    started: dict[int, float] = dataclasses.field(default_factory=dict)
    sends: dict[int, concurrent.futures.Future[Any]] = dataclasses.field(default_factory=dict)


class Instance:
    """One bot process: its own client, delivery path and ``Outbox`` on ``loop``."""

    def __init__(self, platform: FaultyPlatform, loop: asyncio.AbstractEventLoop) -> None:
        self.platform = platform
        self.loop = loop
        self.client = FaultyOpenAPI(platform)
        self.delivery = Delivery(self.client, RenderOptions(), upload_images=False)
        self.bridge = RecordingBridge()
        self.bridge.attach(loop)
        self.outbox = Outbox(self.bridge, lambda: self.delivery)

    def answer(self, commands: Sequence[Command], *, threads: int = 8) -> Handed:
        """Answer ``commands`` from a pool of ``threads`` (Errbot's), all handed over while the
        loop is held (a burst), then wait until every send has finished."""
        handed, order = Handed(), threading.Lock()

        def handle(command: Command) -> None:
            question, taken_up = command.question(), self.platform.clock.now
            if command.where.kind != "private":
                self.platform.questions[question.extras["message_id"]] = command.where.key
            for reply in command.replies:
                with order:  # one send at a time, so "the order they were sent" is one order
                    handed.order[command.where.key].append(reply)
                    handed.started[reply] = taken_up
                    self.outbox.send_reply(command.answer(question, reply))
                    handed.sends[reply] = self.bridge.futures[-1]

        with held(self.loop), concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(handle, commands))
        concurrent.futures.wait(handed.sends.values(), timeout=60)
        return handed

    def crash_after(self, created: int) -> None:
        """Die once the platform has created ``created`` messages: every send still in
        flight or waiting is cancelled where it stands (the one that created the last
        message loses its answer)."""

        def count(total: int) -> None:
            if total >= created:
                self.platform.after_create = None
                self.bridge.detach()
                for task in self.bridge.pending():
                    task.cancel()

        self.platform.after_create = count

    def close(self) -> None:
        self.outbox.close()


@contextlib.contextmanager
def held(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Keep ``loop`` (running in another thread) still for the body of the ``with``: what
    other threads submit meanwhile queues up, in submission order."""
    holding, go = threading.Event(), threading.Event()
    loop.call_soon_threadsafe(lambda: (holding.set(), go.wait(60)))
    holding.wait(5)
    try:
        yield
    finally:
        go.set()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What arrived, judged against what was sent: by the id each answer's content carries."""

    replies: int
    lost: list[int]  # answers never created
    doubled: dict[int, int]  # answer → how many messages show it, where more than one
    disordered: dict[str, tuple[list[int], list[int]]]  # chat → (expected, created)
    given_up: list[str]  # sends that failed, as their futures say
    unfinished: int  # sends still running when the wait ended

    @property
    def once(self) -> int:
        return self.replies - len(self.lost) - len(self.doubled)

    @property
    def perfect(self) -> bool:
        flaws = (self.lost, self.doubled, self.disordered, self.given_up, self.unfinished)
        return not any(flaws)

    def __str__(self) -> str:
        """One line, short enough for an assertion message."""
        firsts = {}
        for chat, (expected, created) in sorted(self.disordered.items()):
            pairs = enumerate(zip(expected, created, strict=False))
            at = next((i for i, (e, c) in pairs if e != c), min(len(expected), len(created)))
            firsts[chat] = f"#{at}: sent {expected[at : at + 3]}, created {created[at : at + 3]}"
        return (
            f"{self.replies} answers, {self.once} once; lost {self.lost[:10]}; "
            f"doubled {dict(list(self.doubled.items())[:10])}; out of order {firsts}; "
            f"given up {len(self.given_up)} {self.given_up[:3]}; unfinished {self.unfinished}"
        )


def shown(message: Created) -> int:
    """The answer id a created message shows (a card shows it in its summary and its body)."""
    [reply] = {int(found) for found in REPLY_ID.findall(message.content)}
    return reply


def outcome(
    platform: FaultyPlatform,
    expected: Mapping[str, Sequence[int]],
    sends: Sequence[concurrent.futures.Future[Any]] = (),
) -> Outcome:
    """``platform.created`` against ``expected`` (each chat's answers in sending order)."""
    created = {chat: [shown(m) for m in messages] for chat, messages in platform.created.items()}
    counts = Counter(reply for replies in created.values() for reply in replies)
    wanted = [reply for replies in expected.values() for reply in replies]
    disordered = {
        chat: (list(expected.get(chat, ())), created.get(chat, []))
        for chat in {*expected, *created}
        if list(expected.get(chat, ())) != created.get(chat, [])
    }
    done = [future for future in sends if future.done()]
    return Outcome(
        replies=len(wanted),
        lost=[reply for reply in wanted if not counts[reply]],
        doubled={reply: count for reply, count in counts.items() if count > 1},
        disordered=disordered,
        given_up=[
            repr(future.exception() if not future.cancelled() else "cancelled")
            for future in done
            if future.cancelled() or future.exception() is not None
        ],
        unfinished=len(sends) - len(done),
    )


def latencies(platform: FaultyPlatform, handed: Handed) -> list[float]:
    """Simulated seconds from each answer's command to the answer's (first) message."""
    first: dict[int, float] = {}
    for messages in platform.created.values():
        for message in messages:
            first.setdefault(shown(message), message.at)
    return sorted(first[reply] - start for reply, start in handed.started.items() if reply in first)
