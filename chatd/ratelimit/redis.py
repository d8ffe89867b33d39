"""The limits of local.py as Lua scripts in Redis: one count for every instance.

Each script reads Redis' own clock (TIME), so instances whose clocks differ
still agree, and answers in durations (milliseconds from now), never in
instants. Times are kept in milliseconds; a key expires when it would be
back to its empty state, so Redis holds only keys in use.
"""

from __future__ import annotations

from typing import Any

from coredis.commands.script import Script

from chatd.ratelimit.local import LOCKOUT_MEMORY_S, LockoutRule, Rate

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

# KEYS[1] bucket; ARGV interval_ms, span_ms, cost. Returns ms to wait: "0" if taken.
# A cost of 0 only reads how far ahead the bucket runs (see ADD).
_TAKE = Script(
    script=_NOW_MS
    + """
local interval, span, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
tat = tat + interval * cost
if tat - now > span then return tostring(tat - now - span) end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1)
return '0'
"""
)

# KEYS[1] bucket; ARGV cost_ms. Spends what an instance already let through (never
# refuses); returns how far ahead of now the bucket runs afterwards, in ms.
_ADD = Script(
    script=_NOW_MS
    + """
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1)
return tostring(tat - now)
"""
)

# KEYS lockout records. Returns the longest time any of them stays locked, in ms.
_LOCKED = Script(
    script=_NOW_MS
    + """
local longest = 0
for _, key in ipairs(KEYS) do
  local until_ms = tonumber(redis.call('HGET', key, 'u')) or 0
  if until_ms - now > longest then longest = until_ms - now end
end
return tostring(longest)
"""
)

# KEYS[1] lockout record; ARGV max_failures, window_ms, first_ms, max_ms, memory_ms.
# Counts a failure; returns how long the key is locked now, in ms ("0": not locked).
_FAILED = Script(
    script=_NOW_MS
    + """
local max_failures, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local r = redis.call('HMGET', KEYS[1], 'f', 'w', 'l', 'u')
local f, w = tonumber(r[1]) or 0, tonumber(r[2]) or now
local l, u = tonumber(r[3]) or 0, tonumber(r[4]) or 0
if u > now then return tostring(u - now) end
if now - w >= window then f = 0; w = now end
f = f + 1
local locked = 0
if f >= max_failures then
  l = l + 1
  locked = math.min(tonumber(ARGV[3]) * 2 ^ math.min(l - 1, 62), tonumber(ARGV[4]))
  u = now + locked
  f = 0
  w = now
end
redis.call('HSET', KEYS[1], 'f', f, 'w', tostring(w), 'l', l, 'u', tostring(u))
local keep = w + window
if l > 0 then keep = math.max(keep, u + tonumber(ARGV[5])) end
redis.call('PEXPIRE', KEYS[1], math.ceil(keep - now) + 1)
return tostring(locked)
"""
)


def _seconds(reply: Any) -> float:
    return float(reply) / 1000.0


async def take(client: Any, key: str, rate: Rate) -> float:
    """0.0 if allowed (and counted), else the seconds to wait."""
    interval_ms = rate.interval_s * 1000.0
    reply: Any = await _TAKE([key], [interval_ms, interval_ms * rate.burst, 1], client=client)
    return _seconds(reply)


async def add_many(client: Any, spent: dict[str, float]) -> dict[str, float]:
    """Spend seconds from each key's bucket (in one round trip); how far ahead each runs."""
    keys = list(spent)
    async with client.pipeline(transaction=False) as pipe:
        replies: list[Any] = [_ADD([key], [spent[key] * 1000.0], client=pipe) for key in keys]
    return {key: _seconds(await reply) for key, reply in zip(keys, replies, strict=True)}


async def locked_for(client: Any, keys: list[str]) -> float:
    return _seconds(await _LOCKED(keys, client=client))


async def failed(client: Any, key: str, rule: LockoutRule) -> float:
    """Count a failure; the seconds the key is locked for now (0.0: not locked)."""
    args = [
        rule.max_failures,
        rule.window_s * 1000.0,
        rule.first_lockout_s * 1000.0,
        rule.max_lockout_s * 1000.0,
        LOCKOUT_MEMORY_S * 1000.0,
    ]
    return _seconds(await _FAILED([key], args, client=client))


async def clear(client: Any, key: str) -> None:
    await client.delete([key])
