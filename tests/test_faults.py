"""Faults with real processes: a thousand sockets opening at once, and rooms changed
through one instance while their sockets sit on another, with Redis restarted."""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from chatd.bench.client import WebSocket
from chatd.bench.procs import raise_file_limit
from chatd.closecodes import REMOVED_FROM_ROOM, ROOM_GONE
from tests.crowd import Crowd, try_connect, ws_path
from tests.helpers import closed_with
from tests.processes import CRASHED, Cluster, login_on, two_instances_one_room, wait_for_redis
from tests.redisserver import RedisServer

CONNECTIONS, ROOMS, PEOPLE = 1000, 20, 50
REST_ANSWER_S = 5.0  # a REST call while the thousand handshakes are in flight


@pytest.fixture
async def cluster(nursery: trio.Nursery, postgres_database: str, redis: RedisServer) -> Cluster:
    return Cluster(nursery, postgres_database, redis.url)


async def test_a_thousand_sockets_opening_at_once_all_open_while_rest_still_answers(
    cluster: Cluster,
) -> None:
    raise_file_limit()  # a thousand sockets in this process too
    with trio.fail_after(60):
        server = await cluster.start()
        api = server.api
        people = [await api.signup() for _ in range(PEOPLE)]
        rooms = [(await api.create_room(people[0], f"room {r}"))["id"] for r in range(ROOMS)]
        outcomes: list[WebSocket | str] = ["not tried"] * CONNECTIONS
        rest_answers_s: list[float] = []

        async def attempt(index: int) -> None:
            path = ws_path(rooms[index % ROOMS], people[index % PEOPLE])
            outcomes[index] = await try_connect(api, path)

        async def ask_rest_until(done: trio.Event) -> None:
            asked = 0
            while not done.is_set():
                who = people[asked % PEOPLE]  # in turn: no one person's request limit is hit
                asked += 1
                started = trio.current_time()
                reply = await api.http.get(f"/api/v1/rooms/{rooms[0]}", headers=who.headers)
                assert reply.status_code == 200, reply.text
                rest_answers_s.append(trio.current_time() - started)

        async with trio.open_nursery() as nursery:
            handshakes_over = trio.Event()
            nursery.start_soon(ask_rest_until, handshakes_over)
            async with trio.open_nursery() as attempts:
                for index in range(CONNECTIONS):
                    attempts.start_soon(attempt, index)
            handshakes_over.set()

        failed = Counter(outcome for outcome in outcomes if isinstance(outcome, str))
        unanswered = {what: n for what, n in failed.items() if not what.startswith("refused")}
        assert not unanswered, f"hangs or resets without an answer: {unanswered}"
        assert not failed, f"refused with default settings: {failed}"
        assert rest_answers_s and max(rest_answers_s) < REST_ANSWER_S, rest_answers_s

        # Afterwards every socket can send, and receives everything its room was sent.
        async with trio.open_nursery() as clients:
            crowd = Crowd(clients)
            peers = []
            for index, outcome in enumerate(outcomes):
                assert isinstance(outcome, WebSocket)
                peers.append(crowd.add(rooms[index % ROOMS], people[index % PEOPLE], outcome))
            for index, peer in enumerate(peers):
                await peer.send(f"hello from {index}", client_id=f"p{index}")
            per_room = CONNECTIONS // ROOMS
            await crowd.wait_until(lambda: all(len(p.messages) >= per_room for p in peers), 30)
            clients.cancel_scope.cancel()
        for index, peer in enumerate(peers):
            assert peer.ids == list(range(1, per_room + 1))
            assert f"p{index}" in {m["client_id"] for m in peer.messages}  # its own, too
            assert not peer.errors and peer.closed is None


async def test_a_room_deleted_through_one_instance_closes_its_sockets_on_another(
    cluster: Cluster,
) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    async with (
        a.api.socket(ann, room["id"]) as ann_on_a,
        b.api.socket(bob_on_b, room["id"]) as bob_ws,
    ):
        await ann_on_a.send("before")  # the room is live on B: bob hears it
        assert (await bob_ws.message())["text"] == "before"
        deleted = await a.api.http.delete(f"/api/v1/rooms/{room['id']}", headers=ann.headers)
        assert deleted.status_code == 204
        assert await closed_with(bob_ws) == ROOM_GONE


async def test_a_member_removed_through_one_instance_is_closed_on_another(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(), await cluster.start()
    ann, bob = await a.api.signup(), await a.api.signup()
    room = await a.api.create_room(ann, visibility="private")
    member_url = f"/api/v1/rooms/{room['id']}/members/{bob.id}"
    assert (await a.api.http.put(member_url, headers=ann.headers)).status_code == 204
    bob_on_b = await login_on(b.api, bob)
    async with (
        a.api.socket(ann, room["id"]) as ann_on_a,
        b.api.socket(bob_on_b, room["id"]) as bob_ws,
    ):
        await ann_on_a.send("before")
        assert (await bob_ws.message())["text"] == "before"
        assert (await a.api.http.delete(member_url, headers=ann.headers)).status_code == 204
        assert await closed_with(bob_ws) == REMOVED_FROM_ROOM


async def test_an_instance_keeps_serving_after_a_redis_restart_once_a_room_it_had_is_gone(
    cluster: Cluster, redis: RedisServer
) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    other = await a.api.create_room(ann, "other")
    async with (
        a.api.socket(ann, room["id"]) as ann_in_room,
        b.api.socket(bob_on_b, room["id"]) as bob_in_room,
        a.api.socket(ann, other["id"]) as ann_in_other,
        b.api.socket(bob_on_b, other["id"]) as bob_in_other,
    ):
        await ann_in_room.send("before")
        assert (await bob_in_room.message())["text"] == "before"
        deleted = await a.api.http.delete(f"/api/v1/rooms/{room['id']}", headers=ann.headers)
        assert deleted.status_code == 204
        await trio.to_thread.run_sync(redis.stop)
        await trio.to_thread.run_sync(redis.start)
        await wait_for_redis(a)
        await wait_for_redis(b)
        # B resynchronises its rooms once Redis is back: the deleted one ends (if the
        # deletion itself did not reach B before), and B goes on.
        assert await closed_with(bob_in_room, timeout_s=20) == ROOM_GONE
        await ann_in_other.send("after the restart")
        assert (await bob_in_other.message(timeout_s=20))["text"] == "after the restart"
    assert b.process.returncode is None, b.log
    assert CRASHED not in b.log, b.log
    assert (await b.api.http.get("/readyz")).status_code == 200
