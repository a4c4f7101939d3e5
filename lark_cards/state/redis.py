"""A :class:`~lark_cards.state.base.StateStore` in Redis, shared by every instance of the bot.

Imported only for a ``redis://`` / ``rediss://`` ``state_url`` (redis-py's asyncio client,
``redis>=5``). Keys, under ``prefix`` (``lark-cards:`` unless told otherwise):

* ``<prefix>claim:<key>`` = ``1`` with ``PX`` = the claim's TTL (Redis expires it itself);
* ``<prefix>kv:<key>`` = the value, ``PX`` = its TTL;
* ``<prefix>lease:<name>`` = the owner, ``PX`` = the lease's TTL;
* ``<prefix>inbox:payload`` (hash event_id → payload), ``<prefix>inbox:order`` (sorted set
  event_id → sequence number from ``<prefix>inbox:seq``) and ``<prefix>inbox:lease`` (hash
  event_id → ``<until ms>:<owner>``), with lease times from the server's clock (``TIME``) so
  the instances' clocks need not agree.

Every check-and-write is one Lua script (or one ``SET NX``), so it is atomic however many
instances race. A network or server fault surfaces as :class:`StateUnavailable`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lark_cards.state.base import StateUnavailable, unique

__all__ = ["RedisStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_FAULTS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# KEYS: the claim keys; ARGV[1]: TTL in ms.
_CLAIM = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], '1', 'PX', ARGV[1]) end
return 1
"""
# KEYS[1]: the lease; ARGV: owner, TTL in ms.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: order, payload, lease, seq; ARGV: event_id, payload, max entries, owner ("" for
# none), lease in ms. Returns
# {added (0 or 1), how many of the oldest entries were dropped to stay within the bound}.
_INBOX_ADD = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return {0, 0} end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), ARGV[1])
if ARGV[4] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[3], ARGV[1], string.format('%d:%s', now + tonumber(ARGV[5]), ARGV[4]))
end
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, extra - 1)) do
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  return {1, extra}
end
return {1, 0}
"""
# KEYS: order, payload, lease; ARGV: owner, lease in ms, limit. Returns id, payload, id, …
_INBOX_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owner, lease, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if #out >= 2 * limit then break end
  local held = redis.call('HGET', KEYS[3], id)
  local free = not held
  if held then
    local sep = string.find(held, ':', 1, true)
    free = string.sub(held, sep + 1) == owner or tonumber(string.sub(held, 1, sep - 1)) <= now
  end
  local payload = redis.call('HGET', KEYS[2], id)
  if free and payload then
    redis.call('HSET', KEYS[3], id, string.format('%d:%s', now + lease, owner))
    out[#out + 1] = id
    out[#out + 1] = payload
  end
end
return out
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisStore:
    """Build with :meth:`from_url`; ``label`` (host:port/db) is what messages name."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        label: str,
        prefix: str = "lark-cards:",
        max_entries: int = 100_000,
    ) -> None:
        self.label = label
        self.max_entries = max_entries
        self._client = client
        self._prefix = prefix
        self._inbox = [f"{prefix}inbox:{part}" for part in ("order", "payload", "lease", "seq")]
        self._claim = client.register_script(_CLAIM)
        self._lease = client.register_script(_LEASE)
        self._release = client.register_script(_RELEASE)
        self._inbox_add = client.register_script(_INBOX_ADD)
        self._inbox_claim = client.register_script(_INBOX_CLAIM)

    @classmethod
    def from_url(cls, url: str, *, label: str, timeout: float = 2.0, **options: Any) -> RedisStore:
        """A store on a new connection pool; nothing connects until the first call.

        ``timeout`` bounds connecting and each reply, and a failed command is retried once at
        once (a pooled connection may be stale after a Redis restart), so an outage costs a
        caller at most about ``2 × timeout`` before :class:`StateUnavailable`.
        """
        client = redis.asyncio.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, label=label, **options)

    async def ping(self) -> None:
        """Raise :class:`StateUnavailable` unless the server answers."""
        await self._call(self._client.ping())

    async def claim(self, keys: Sequence[str], ttl: float) -> bool:
        names = [f"{self._prefix}claim:{key}" for key in unique(keys)]
        if len(names) == 1:
            return bool(await self._call(self._client.set(names[0], "1", nx=True, px=_ms(ttl))))
        return bool(await self._call(self._claim(keys=names, args=[_ms(ttl)])))

    async def put(self, key: str, value: str, ttl: float) -> None:
        await self._call(self._client.set(f"{self._prefix}kv:{key}", value, px=_ms(ttl)))

    async def get(self, key: str) -> str | None:
        value = await self._call(self._client.get(f"{self._prefix}kv:{key}"))
        return None if value is None else str(value)

    async def lease(self, name: str, owner: str, ttl: float) -> bool:
        key = f"{self._prefix}lease:{name}"
        return bool(await self._call(self._lease(keys=[key], args=[owner, _ms(ttl)])))

    async def release(self, name: str, owner: str) -> bool:
        key = f"{self._prefix}lease:{name}"
        return bool(await self._call(self._release(keys=[key], args=[owner])))

    async def inbox_add(
        self, event_id: str, payload: str, owner: str | None = None, lease: float = 0.0
    ) -> bool:
        args: list[str | int] = [event_id, payload, self.max_entries, owner or "", _ms(lease)]
        added, dropped = await self._call(self._inbox_add(keys=self._inbox, args=args))
        if dropped:
            log.warning(
                "state store %s: inbox over %d entries; dropped the %d oldest not yet handed over",
                self.label,
                self.max_entries,
                dropped,
            )
        return bool(added)

    async def inbox_done(self, event_id: str) -> None:
        order, payload, lease, _ = self._inbox
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(order, event_id)
            pipe.hdel(payload, event_id)
            pipe.hdel(lease, event_id)
            await self._call(pipe.execute())

    async def inbox_claim(self, owner: str, lease: float, limit: int) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        args: list[str | int] = [owner, _ms(lease), limit]
        flat = await self._call(self._inbox_claim(keys=self._inbox[:3], args=args))
        return [(str(flat[i]), str(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def close(self) -> None:
        # aclose() since redis-py 5.0.1; 5.0.0 only has close().
        closing = getattr(self._client, "aclose", None) or self._client.close
        with contextlib.suppress(*_FAULTS):
            await closing()

    async def _call(self, pending: Awaitable[_T]) -> _T:
        try:
            return await pending
        except _FAULTS as error:
            raise StateUnavailable(f"{self.label}: {type(error).__name__}: {error}") from error
