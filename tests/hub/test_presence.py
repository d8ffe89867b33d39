"""Presence and typing timing, on Trio's mock clock: deterministic, no real waiting."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from chatd.hub.presence import LocalPresence, Presence
from chatd.model import RoomId, UserId

ROOM = RoomId(1)
ANN, BOB = UserId(10), UserId(20)
TTL_S = 30.0


class Recorder:
    """What a room's members would be told, with the (mock) time they were told."""

    def __init__(self) -> None:
        self.events: list[tuple[float, UserId, str]] = []
        self.announced: list[RoomId] = []

    def change(self, room_id: RoomId, user_id: UserId, status: str) -> None:
        self.events.append((trio.current_time(), user_id, status))

    def announce(self, room_id: RoomId) -> None:
        self.announced.append(room_id)


def tracker(backend: LocalPresence, recorder: Recorder) -> Presence:
    return Presence(
        backend,
        ttl_s=TTL_S,
        announce=recorder.announce,
        clock=trio.current_time,  # the backend's expiry runs on the mock clock too
        coalesce_s=0.5,
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def test_joining_is_told_after_the_coalescing_window(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, recorder: Recorder
) -> None:
    presence = tracker(LocalPresence(), recorder)
    await nursery.start(presence.run, recorder.change)
    start = trio.current_time()
    presence.joined(ROOM, ANN)
    presence.joined(ROOM, BOB)
    await trio.sleep(1)
    assert [(round(t - start, 3), u, s) for t, u, s in recorder.events] == [
        (0.5, ANN, "online"),
        (0.5, BOB, "online"),
    ]
    assert ROOM in recorder.announced  # other instances are asked to look
    assert await presence.online(ROOM) == {ANN, BOB}


async def test_a_reconnect_within_the_window_makes_no_noise(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, recorder: Recorder
) -> None:
    presence = tracker(LocalPresence(), recorder)
    await nursery.start(presence.run, recorder.change)
    presence.joined(ROOM, ANN)
    presence.joined(ROOM, BOB)  # bob stays, so the room stays watched
    await trio.sleep(1)
    recorder.events.clear()
    for _ in range(50):  # a storm: ann's connection flaps fifty times
        presence.left(ROOM, ANN)
        presence.joined(ROOM, ANN)
    await trio.sleep(5)
    assert recorder.events == []
    presence.left(ROOM, ANN)
    await trio.sleep(1)
    assert [(u, s) for _, u, s in recorder.events] == [(ANN, "offline")]


async def test_a_second_connection_keeps_the_user_online(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, recorder: Recorder
) -> None:
    presence = tracker(LocalPresence(), recorder)
    await nursery.start(presence.run, recorder.change)
    presence.joined(ROOM, BOB)
    presence.joined(ROOM, ANN)
    presence.joined(ROOM, ANN)
    await trio.sleep(1)
    presence.left(ROOM, ANN)
    await trio.sleep(TTL_S * 3)  # heartbeats keep refreshing the remaining one
    assert (ANN, "offline") not in [(u, s) for _, u, s in recorder.events]
    assert await presence.online(ROOM) == {ANN, BOB}


async def test_a_crashed_instance_s_users_go_offline_within_the_ttl(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, recorder: Recorder
) -> None:
    shared = LocalPresence()  # the store both instances use (Redis in production)
    here = tracker(shared, recorder)
    elsewhere = tracker(shared, Recorder())
    await nursery.start(here.run, recorder.change)
    crash = trio.CancelScope()

    async def run_elsewhere(task_status: trio.TaskStatus[None]) -> None:
        with crash:
            await elsewhere.run(Recorder().change, task_status=task_status)

    await nursery.start(run_elsewhere)
    here.joined(ROOM, BOB)
    elsewhere.joined(ROOM, ANN)
    await trio.sleep(1)
    here.hint(ROOM)  # what the bus does when the other instance announces
    await trio.sleep(1)
    assert (ANN, "online") in [(u, s) for _, u, s in recorder.events]

    crashed_at = trio.current_time()
    crash.cancel()  # no goodbye: ann's entry just stops being refreshed
    await trio.sleep(TTL_S * 2)
    [(told_at, _, _)] = [e for e in recorder.events if e[1:] == (ANN, "offline")]
    # Within the TTL plus one heartbeat (ttl/3), after the last refresh.
    assert told_at - crashed_at <= TTL_S + TTL_S / 3 + 1
    assert await here.online(ROOM) == {BOB}
