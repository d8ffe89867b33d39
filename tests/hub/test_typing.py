"""Typing signals are rate-limited per user per room (mock clock)."""

from __future__ import annotations

import trio
import trio.testing

from chatd.hub.room import Room
from chatd.metrics import Metrics
from chatd.model import RoomId, UserId
from chatd.store import Store

INTERVAL_S = 2.0


async def test_typing_is_limited_to_one_signal_per_interval_per_user(
    autojump_clock: trio.testing.MockClock, store: Store
) -> None:
    room = Room(RoomId(1), store, Metrics(), inbox_size=8)
    ann, bob = UserId(1), UserId(2)
    allowed: list[tuple[float, UserId]] = []
    start = trio.current_time()
    for _ in range(40):  # 0.25 s apart, for 10 s, both typing
        for user in (ann, bob):
            if room.typing_allowed(user, trio.current_time(), INTERVAL_S):
                allowed.append((trio.current_time() - start, user))
        await trio.sleep(0.25)
    ann_times = [t for t, u in allowed if u == ann]
    assert ann_times == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [t for t, u in allowed if u == bob] == ann_times  # limited separately
