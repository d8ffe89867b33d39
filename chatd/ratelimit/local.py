"""In-process limits: token buckets (GCRA) and login lockouts, on Trio's clock.

GCRA keeps one float per key, the "theoretical arrival time": when the key's
bucket would be full again. A take is allowed while that time, after adding
one interval, stays within `burst` intervals of now. No timers, no tasks:
keys whose bucket is full again are swept out when the table has doubled.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)

SWEEP_MIN_KEYS = 1024
# Past this many login records (each one a few hundred bytes), the oldest go first.
MAX_LOCKOUT_RECORDS = 100_000
# A lockout's level (how often it doubled) is forgotten after this long without one.
LOCKOUT_MEMORY_S = 24 * 3600.0


class Rate(NamedTuple):
    per_s: float  # sustained; 0 turns the limit off
    burst: int  # at once, after a quiet spell

    @property
    def on(self) -> bool:
        return self.per_s > 0 and self.burst > 0

    @property
    def interval_s(self) -> float:
        return 1.0 / self.per_s


class Buckets(Generic[K]):
    __slots__ = ("_interval_s", "_span_s", "_sweep_at", "_tat")

    def __init__(self, rate: Rate) -> None:
        assert rate.on, "an off rate has no buckets"
        self._interval_s = rate.interval_s
        self._span_s = rate.burst * rate.interval_s  # how far ahead of now a bucket may run
        self._tat: dict[K, float] = {}
        self._sweep_at = SWEEP_MIN_KEYS

    def take(self, key: K, now: float) -> float:
        """0.0 if allowed (and counted), else the seconds until one more would be."""
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        tat += self._interval_s
        if tat - now > self._span_s:
            return tat - now - self._span_s
        self._tat[key] = tat
        if len(self._tat) > self._sweep_at:
            self._sweep(now)
        return 0.0

    def ahead_s(self, key: K, now: float) -> float:
        """How far the key's bucket runs ahead of now (0: full)."""
        return max(0.0, self._tat.get(key, now) - now)

    def raise_to(self, key: K, tat: float) -> None:
        """Make the bucket at least this empty: others spent from it too."""
        if tat > self._tat.get(key, 0.0):
            self._tat[key] = tat

    def _sweep(self, now: float) -> None:
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        self._sweep_at = max(SWEEP_MIN_KEYS, 2 * len(self._tat))


@dataclass(frozen=True)
class LockoutRule:
    max_failures: int  # within window_s: the key is locked; 0 turns the rule off
    window_s: float
    first_lockout_s: float  # each further lockout doubles, up to max_lockout_s
    max_lockout_s: float

    @property
    def on(self) -> bool:
        return self.max_failures > 0 and self.first_lockout_s > 0

    def lockout_s(self, level: int) -> float:
        """How long the level-th lockout (1, 2, ...) lasts."""
        return min(self.first_lockout_s * 2.0 ** min(level - 1, 62), self.max_lockout_s)


class _Record:
    __slots__ = ("failures", "level", "locked_until", "window_start")

    def __init__(self, now: float) -> None:
        self.failures = 0
        self.window_start = now
        self.level = 0
        self.locked_until = 0.0

    def expired(self, now: float, rule: LockoutRule) -> bool:
        if self.level:
            return now > self.locked_until + LOCKOUT_MEMORY_S
        return now - self.window_start >= rule.window_s


class Lockouts:
    """Failures per key; enough of them within the window lock the key, longer each time."""

    def __init__(self, rule: LockoutRule) -> None:
        self._rule = rule
        self._records: dict[str, _Record] = {}

    def locked_for(self, key: str, now: float) -> float:
        record = self._records.get(key)
        return 0.0 if record is None else max(0.0, record.locked_until - now)

    def failed(self, key: str, now: float) -> float:
        """Count a failure; the seconds the key is now locked for (0.0: not locked)."""
        rule = self._rule
        record = self._records.get(key)
        if record is None or record.expired(now, rule):
            record = self._records[key] = _Record(now)
            if len(self._records) > MAX_LOCKOUT_RECORDS:
                self._shrink(now)
        if record.locked_until > now:
            return record.locked_until - now  # refused before its password was checked
        if now - record.window_start >= rule.window_s:
            record.failures, record.window_start = 0, now
        record.failures += 1
        if record.failures < rule.max_failures:
            return 0.0
        record.level += 1
        record.failures, record.window_start = 0, now
        locked_s = rule.lockout_s(record.level)
        record.locked_until = now + locked_s
        return locked_s

    def clear(self, key: str) -> None:
        self._records.pop(key, None)

    def _shrink(self, now: float) -> None:
        rule = self._rule
        kept = {k: r for k, r in self._records.items() if not r.expired(now, rule)}
        if len(kept) > MAX_LOCKOUT_RECORDS // 2:
            # Under a spray of keys: every locked key stays locked, and of the others the
            # newest half is kept (dicts keep insertion order).
            locked = {k: r for k, r in kept.items() if r.locked_until > now}
            others = [(k, r) for k, r in kept.items() if r.locked_until <= now]
            kept = locked | dict(others[-(MAX_LOCKOUT_RECORDS // 2) :])
        self._records = kept
