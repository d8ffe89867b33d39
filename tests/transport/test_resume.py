"""Resuming with ?since= after a long absence: every message once, in order, from the store.

A replay is read a page at a time and written as the socket drains, however
long the gap. Live messages that pile up meanwhile are dropped from the
outbox and read from the store instead, so a long replay in a busy room does
not end with the socket closed as a slow consumer (to resume, and replay again).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import trio

from chatd.config import Settings
from chatd.model import Draft, RoomId, UserId
from chatd.notifications.consumer import CONSUMER
from chatd.store import Store, open_store
from tests.conftest import start_server
from tests.helpers import Account

APPEND_BATCH = 500


async def committed_while_away(
    settings: Settings, room_id: int, who: Account, count: int, *, text_chars: int
) -> None:
    """`count` messages in the room's history, committed while no one here was connected."""
    store = open_store(settings.database_url, pool_size=1)
    try:
        for start in range(0, count, APPEND_BATCH):
            drafts = [
                Draft(RoomId(room_id), UserId(who.id), f"away {i} ".ljust(text_chars, "."), None)
                for i in range(start, min(count, start + APPEND_BATCH))
            ]
            await store.append(drafts, datetime.now(UTC))
    finally:
        await store.aclose()


async def events_caught_up(store: Store, events: int) -> None:
    with trio.fail_after(60):
        # Other tasks' progress, kept in the database: polled.
        while await store.last_event_id() < events:  # noqa: ASYNC110
            await trio.sleep(0.05)
        while await store.consumer_position(CONSUMER) < await store.last_event_id():  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_a_client_5000_behind_gets_every_message_once_while_others_send(
    nursery: trio.Nursery, settings_with: Callable[..., Settings]
) -> None:
    # Small pages and a small outbox (half full after 128 queued frames), so that
    # the test is quick; no send rate limit, so that the room is busy.
    settings = settings_with(outbox_size=256, writer_batch_max=32, replay_page=50, ws_send_per_s=0)
    api, _ = await start_server(nursery, settings)
    ann, bob, carl = await api.signup(), await api.signup(), await api.signup()
    room_id = (await api.create_room(ann))["id"]
    async with api.socket(bob, room_id) as ws:
        await ws.send("before bob left")
        seen = (await ws.message())["id"]
    # 4,000-character messages: 20 MB to replay, far more than the socket buffers hold.
    await committed_while_away(settings, room_id, ann, 5000, text_chars=4000)

    received: list[int] = []
    async with (
        api.slow_socket(bob, room_id, since=seen, receive_buffer=64 * 1024) as bob_ws,
        api.socket(carl, room_id) as carl_ws,
    ):
        # Bob reads nothing yet: his replay stalls on a full socket while the room
        # moves on, and 200 live messages queue in his outbox, past half of it.
        last_id = (await carl_ws.send_many(200))[-1]["id"]
        sending_done = trio.Event()

        async def carl_keeps_talking() -> None:
            nonlocal last_id
            for _ in range(10):
                last_id = (await carl_ws.send_many(30))[-1]["id"]
            sending_done.set()

        async with trio.open_nursery() as talking:
            talking.start_soon(carl_keeps_talking)
            with trio.fail_after(120):
                while not (sending_done.is_set() and received[-1] == last_id):
                    received.append((await bob_ws.message(timeout_s=60))["id"])
        assert received == list(range(seen + 1, last_id + 1))
        # Still connected (never closed as a slow consumer), and live.
        await bob_ws.send("caught up")
        assert (await bob_ws.message())["id"] == last_id + 1
    await api.aclose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_long_replay_holds_a_page_not_the_whole_gap(
    nursery: trio.Nursery, settings_with: Callable[..., Settings]
) -> None:
    count = 4000
    settings = settings_with(replay_page=100)
    api, _ = await start_server(nursery, settings)
    ann = await api.signup()
    room_id = (await api.create_room(ann))["id"]
    await committed_while_away(settings, room_id, ann, count, text_chars=2000)
    store = open_store(settings.database_url, pool_size=1)
    # The server's relay and notifications consumer read these 4,000 events too: what is
    # measured is the replay's memory, so it starts once they have caught up.
    await events_caught_up(store, count)
    tracemalloc.start()
    try:
        next_id = 1
        async with api.socket(ann, room_id, since=0) as ws:
            with trio.fail_after(120):
                while next_id <= count:
                    assert (await ws.message())["id"] == next_id
                    next_id += 1
        replay_peak_bytes = tracemalloc.get_traced_memory()[1]
        # What holding the whole gap would take: the messages alone, as the store reads them.
        before = tracemalloc.get_traced_memory()[0]
        everything = await store.messages_after(RoomId(room_id), 0, count)
        whole_gap_bytes = tracemalloc.get_traced_memory()[0] - before
        del everything
    finally:
        tracemalloc.stop()
        await store.aclose()
    assert replay_peak_bytes < whole_gap_bytes / 4, (replay_peak_bytes, whole_gap_bytes)
    await api.aclose()
