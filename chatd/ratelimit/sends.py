"""The WebSocket send limit: a token bucket per user, checked in process for every frame.

This runs for every chat message a client sends (hundreds of thousands a
second under `chatd bench`): a dict lookup and a little float arithmetic,
no await, no lock, nothing allocated but the new float. With Redis, the
instances share each user's bucket without a round trip per frame:
Limits.run() hands Redis what each instance let through every
ws_send_share_s (sent_since_last()), and an instance adopts the shared
level when others spent from it (adopt()). The trade-off: a user spread
over several instances can exceed the rate by what those instances let
through before they next share (a burst each, at most, on first contact),
in exchange for a per-frame cost that does not depend on Redis at all.
"""

from __future__ import annotations

from typing import Protocol

import trio

from chatd.model import UserId
from chatd.ratelimit.local import SWEEP_MIN_KEYS, Buckets, Rate


class Counts(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class SendLimiter:
    def __init__(
        self, rate: Rate, abuse_refusals: int, abuse_window_s: float, refusals: Counts
    ) -> None:
        self._buckets: Buckets[UserId] | None = Buckets(rate) if rate.on else None
        self._interval_s = rate.interval_s if rate.on else 0.0
        # The run's clock, looked up once: trio.current_time() finds it anew on every
        # call, which cost as much as the whole check. (Made inside the run: a test's
        # MockClock is the one read.)
        self._now = trio.lowlevel.current_clock().current_time
        self._refusals = refusals
        self._abuse_refusals = abuse_refusals
        self._abuse_window_s = abuse_window_s
        self._strikes: dict[UserId, tuple[int, float]] = {}
        self._strikes_sweep_at = SWEEP_MIN_KEYS
        self.sharing = False  # set while Limits.run() shares the counts through Redis
        self._sent: dict[UserId, int] = {}

    def wait_s(self, user_id: UserId) -> float:
        """0.0 if the user may send one more message now (it is counted), else the
        seconds until they may."""
        buckets = self._buckets
        if buckets is None:
            return 0.0
        wait_s = buckets.take(user_id, self._now())
        if wait_s:
            self._refusals.inc()
        elif self.sharing:
            sent = self._sent
            sent[user_id] = sent.get(user_id, 0) + 1
        return wait_s

    def refused_too_often(self, user_id: UserId) -> bool:
        """Count a refusal: True once the user has had abuse_refusals of them within
        abuse_window_s (the count then starts again, for their next connection)."""
        if self._abuse_refusals <= 0:
            return False
        now = self._now()
        count, since = self._strikes.get(user_id, (0, now))
        if now - since >= self._abuse_window_s:
            count, since = 0, now
        count += 1
        if count >= self._abuse_refusals:
            self._strikes.pop(user_id, None)
            return True
        self._strikes[user_id] = (count, since)
        if len(self._strikes) > self._strikes_sweep_at:
            window = self._abuse_window_s
            self._strikes = {u: s for u, s in self._strikes.items() if now - s[1] < window}
            self._strikes_sweep_at = max(SWEEP_MIN_KEYS, 2 * len(self._strikes))
        return False

    # -- sharing through Redis (driven by Limits.run) ----------------------------

    def sent_since_last(self) -> dict[UserId, float]:
        """Seconds of bucket each user spent here since the last call."""
        sent, self._sent = self._sent, {}
        interval_s = self._interval_s
        return {user_id: count * interval_s for user_id, count in sent.items()}

    def adopt(self, user_id: UserId, shared_ahead_s: float, slack_s: float) -> None:
        """The shared bucket runs shared_ahead_s ahead of now: follow it if it is further
        ahead than ours by more than slack_s (what our own sends' timing can explain:
        the shared count starts from when they were shared, not when they were sent)."""
        buckets = self._buckets
        if buckets is None:
            return
        now = self._now()
        target_s = shared_ahead_s - slack_s
        if target_s > buckets.ahead_s(user_id, now):
            buckets.raise_to(user_id, now + target_s)
