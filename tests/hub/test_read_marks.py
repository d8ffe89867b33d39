"""Read marks are throttled per member: the first at once, then the newest per interval."""

from __future__ import annotations

import trio
import trio.testing

from chatd.bus.local import LocalBus
from chatd.hub.reads import ReadMarks
from chatd.model import BusEvent, RoomChange, RoomId, UserId

ROOM, ANN, BOB = RoomId(1), UserId(1), UserId(2)


async def test_a_burst_of_moves_goes_out_as_the_first_and_then_the_newest(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    heard: list[tuple[float, BusEvent]] = []
    bus = LocalBus()
    await nursery.start(bus.run, lambda event: heard.append((trio.current_time(), event)))
    await bus.subscribe(ROOM)
    marks = ReadMarks(bus, interval_s=1.0)
    await nursery.start(marks.run)
    start = trio.current_time()

    for message_id in range(1, 6):
        marks.moved(ROOM, ANN, message_id)
        await trio.sleep(0.1)
    marks.moved(ROOM, BOB, 3)  # another member is not held back by ann
    await trio.sleep(5)

    sent = [(round(at - start, 1), e.user_id, e.detail) for at, e in heard]
    assert all(isinstance(e, RoomChange) and e.kind == "read" for _, e in heard)
    assert sent[0] == (0.0, ANN, 1)
    assert (0.5, BOB, 3) in sent
    ann_later = [(at, detail) for at, user, detail in sent[1:] if user == ANN]
    # One more for ann, the newest, an interval or more after the first, within two.
    assert len(ann_later) == 1 and ann_later[0][1] == 5 and 1.0 <= ann_later[0][0] <= 2.0

    # Quiet for an interval: the next move goes out at once again.
    heard.clear()
    marks.moved(ROOM, ANN, 6)
    assert [(e.user_id, e.detail) for _, e in heard] == [(ANN, 6)]
