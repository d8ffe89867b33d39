"""SIGTERM drains: readiness fails at once, sockets close with 1012, nothing acked is lost."""

from __future__ import annotations

import contextlib
import itertools
import signal
from collections import Counter

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from chatd.bench.procs import raise_file_limit
from chatd.closecodes import SERVICE_RESTART
from tests.crowd import Crowd, Peer
from tests.helpers import Account, Api
from tests.processes import CRASHED, Cluster, Instance, instance_env, login_on, run_instance
from tests.redisserver import RedisServer

SLOW_DRAIN = {
    # One step of a second, so the test can watch the instance while it drains.
    "CHATD_DRAIN_BATCH": "1",
    "CHATD_DRAIN_STEP_S": "1",
    "CHATD_DRAIN_TIMEOUT_S": "15",
}


async def test_sigterm_drains_without_losing_anything(
    nursery: trio.Nursery, postgres_database: str
) -> None:
    env = instance_env(postgres_database, settings=SLOW_DRAIN)
    first: Instance = await nursery.start(run_instance, env, ())
    ann, bob = await first.api.signup(), await first.api.signup()
    room = await first.api.create_room(ann)
    acked: dict[str, int] = {}  # client_id -> id, from the sender's echoes
    sent: list[str] = []
    bob_seen: list[int] = []
    closes: list[tuple[int, str]] = []
    halfway = trio.Event()

    async def send_until_closed(api: Api, who: Account) -> None:
        try:
            async with api.socket(who, room["id"]) as ws, trio.open_nursery() as inner:

                async def read_echoes() -> None:
                    while True:
                        message = await ws.message(timeout_s=30)
                        acked[message["client_id"]] = message["id"]
                        if len(acked) == 20:
                            halfway.set()

                inner.start_soon(read_echoes)
                for i in range(10_000):
                    sent.append(f"c{i}")
                    await ws.send(f"message {i}", client_id=f"c{i}")
                    await trio.sleep(0.005)  # a person typing fast, not a flood
        except* ConnectionClosed as group:
            closed = group.exceptions[0]
            assert isinstance(closed, ConnectionClosed)
            closes.append((closed.reason.code, closed.reason.reason or ""))

    async def watch(api: Api, who: Account) -> None:
        try:
            async with api.socket(who, room["id"]) as ws:
                while True:
                    bob_seen.append((await ws.message(timeout_s=30))["id"])
        except* ConnectionClosed as group:
            closed = group.exceptions[0]
            assert isinstance(closed, ConnectionClosed)
            closes.append((closed.reason.code, closed.reason.reason or ""))

    async with trio.open_nursery() as clients:
        clients.start_soon(send_until_closed, first.api, ann)
        clients.start_soon(watch, first.api, bob)
        await halfway.wait()
        first.process.send_signal(signal.SIGTERM)
        with trio.fail_after(5):
            while (await first.api.http.get("/readyz")).status_code != 503:  # noqa: ASYNC110
                await trio.sleep(0.01)
        draining = await first.api.http.get("/readyz")
        assert draining.json()["status"] == "draining"
        with pytest.raises(ConnectionRejected) as refused:
            url = first.api.ws_url(room["id"], token=ann.access_token)
            async with open_websocket_url(url):
                pass
        assert refused.value.status_code == 503
    with trio.fail_after(20):
        assert await first.process.wait() == 0

    assert sorted(code for code, _ in closes) == [1012, 1012]
    assert all("resume with ?since=" in reason for _, reason in closes)

    # Another instance on the same database; both clients come back.
    second: Instance = await nursery.start(run_instance, env, ())
    ann2, bob2 = await login_on(second.api, ann), await login_on(second.api, bob)
    async with second.api.socket(ann2, room["id"], since=0) as ws:
        unacked = [client_id for client_id in sent if client_id not in acked]
        for client_id in unacked:  # resend: the same client_id, so never twice
            await ws.send(f"message {client_id[1:]}", client_id=client_id)
        # The replay, then the answers to the resends: an echo of the original for one
        # that was committed (its ack lost in the close), a new message for one that was not.
        seen: set[str] = set()
        with trio.fail_after(30):
            while seen != set(sent):
                seen.add((await ws.message())["client_id"])
    history = await second.api.all_history(ann2, room["id"])
    stored = {m["client_id"]: m["id"] for m in history}
    assert len(history) == len(stored) == len(sent)  # each send exactly once
    assert all(stored[client_id] == message_id for client_id, message_id in acked.items())
    assert [m["id"] for m in history] == list(range(1, len(sent) + 1))
    async with second.api.socket(bob2, room["id"], since=bob_seen[-1]) as ws:
        rest = [m["id"] for m in await ws.messages(len(sent) - bob_seen[-1])]
    assert bob_seen + rest == list(range(1, len(sent) + 1))


DRAIN_TIMEOUT_S = 15.0
ROOMS, PER_ROOM, PEOPLE = 10, 50, 50
SEND_EVERY_S = 0.1  # per room: 10 messages/s, 5,000 deliveries/s in all


async def test_sigterm_with_hundreds_of_sockets_closes_each_with_1012_and_loses_nothing(
    nursery: trio.Nursery, postgres_database: str, redis: RedisServer
) -> None:
    raise_file_limit()
    cluster = Cluster(
        nursery, postgres_database, redis.url, {"CHATD_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S)}
    )
    first = await cluster.start()
    people = [await first.api.signup() for _ in range(PEOPLE)]
    rooms = [(await first.api.create_room(people[0], f"room {r}"))["id"] for r in range(ROOMS)]

    async def send_until_closed(sender: Peer) -> None:
        for i in itertools.count():
            if sender.closed is not None:
                return
            with contextlib.suppress(OSError, trio.ClosedResourceError):
                await sender.send(f"message {i}", client_id=f"{sender.room_id}-{i}")
            await trio.sleep(SEND_EVERY_S)  # a steady pace, not a flood

    async with trio.open_nursery() as clients:
        crowd = Crowd(clients)
        limiter = trio.CapacityLimiter(100)

        async def join(index: int) -> None:
            async with limiter:
                await crowd.join(first.api, rooms[index % ROOMS], people[index % PEOPLE])

        async with trio.open_nursery() as joining:
            for index in range(ROOMS * PER_ROOM):
                joining.start_soon(join, index)
        first_in_room = {peer.room_id: peer for peer in reversed(crowd.peers)}
        senders = list(first_in_room.values())  # one in each room
        assert len(senders) == ROOMS
        for sender in senders:
            clients.start_soon(send_until_closed, sender)
        await crowd.wait_until(lambda: all(len(s.messages) >= 10 for s in senders))

        first.terminate()
        with trio.fail_after(DRAIN_TIMEOUT_S):
            exit_code = await first.process.wait()
        await crowd.wait_until(lambda: all(peer.closed for peer in crowd.peers), timeout_s=5)
        clients.cancel_scope.cancel()

    assert exit_code == 0, first.log
    assert CRASHED not in first.log and "Traceback" not in first.log, first.log
    closes = Counter(peer.closed.code for peer in crowd.peers if peer.closed)
    assert closes == {SERVICE_RESTART: ROOMS * PER_ROOM}
    for peer in crowd.peers:  # up to its close, each saw its room's messages in order
        assert peer.ids == list(range(1, len(peer.ids) + 1))
    # The senders' echoes are the acknowledgements: each one is in history, same id.
    acked = {m["client_id"]: m["id"] for sender in senders for m in sender.messages}
    second = await cluster.start()
    owner = await login_on(second.api, people[0])
    stored: dict[str, int] = {}
    for room in rooms:
        history = await second.api.all_history(owner, room)
        assert [m["id"] for m in history] == list(range(1, len(history) + 1))
        stored |= {m["client_id"]: m["id"] for m in history}
    assert {client_id: stored.get(client_id) for client_id in acked} == acked
