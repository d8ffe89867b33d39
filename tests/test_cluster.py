"""Many instances as one service: real chatd processes sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import contextlib
import signal

import httpx
import pytest
import trio

from tests.processes import Cluster, Instance, login_on, two_instances_one_room, wait_for_redis
from tests.redisserver import RedisServer

PRESENCE_TTL_S = 3.0
CLUSTER_SETTINGS = {"CHATD_PRESENCE_TTL_S": str(PRESENCE_TTL_S)}


@pytest.fixture
async def cluster(nursery: trio.Nursery, postgres_database: str, redis: RedisServer) -> Cluster:
    return Cluster(nursery, postgres_database, redis.url, settings=CLUSTER_SETTINGS)


async def test_every_client_sees_every_instance_in_one_order(cluster: Cluster) -> None:
    a, b, c = [await cluster.start() for _ in range(3)]
    people = [await a.api.signup() for _ in range(3)]
    room = await a.api.create_room(people[0])
    per_sender = 20
    total = per_sender * 3
    received: dict[int, list[tuple[int, str]]] = {}

    async def chat(index: int, instance: Instance, ready: trio.Event, go: trio.Event) -> None:
        me = await login_on(instance.api, people[index])
        async with instance.api.socket(me, room["id"]) as ws:
            ready.set()
            await go.wait()
            for i in range(per_sender):
                await ws.send(f"{index}:{i}", client_id=f"{index}-{i}")
            got = [await ws.message(timeout_s=20) for _ in range(total)]
            received[index] = [(m["id"], m["text"]) for m in got]

    readies = [trio.Event() for _ in range(3)]
    go = trio.Event()
    async with trio.open_nursery() as nursery:
        for index, instance in enumerate((a, b, c)):
            nursery.start_soon(chat, index, instance, readies[index], go)
        for ready in readies:
            await ready.wait()
        go.set()
    assert received[0] == received[1] == received[2]
    assert [message_id for message_id, _ in received[0]] == list(range(1, total + 1))
    for index in range(3):  # each sender's own messages kept their order
        mine = [text for _, text in received[0] if text.startswith(f"{index}:")]
        assert mine == [f"{index}:{i}" for i in range(per_sender)]


async def test_presence_and_typing_cross_instances(cluster: Cluster) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    async with b.api.socket(bob_on_b, room["id"]) as bob_ws:
        async with a.api.socket(ann, room["id"]) as ann_ws:
            await bob_ws.expect("presence", user_id=ann.id, status="online")
            await ann_ws.expect("presence", user_id=bob_on_b.id, status="online")
            online = await b.api.http.get(
                f"/api/v1/rooms/{room['id']}/presence", headers=bob_on_b.headers
            )
            assert {item["user_id"] for item in online.json()["items"]} == {ann.id, bob_on_b.id}
            await ann_ws.send_raw('{"type": "typing"}')
            assert await bob_ws.expect("typing") == {"user_id": ann.id}
        await bob_ws.expect("presence", user_id=ann.id, status="offline")


async def test_a_redis_outage_loses_and_duplicates_nothing(
    cluster: Cluster, redis: RedisServer
) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    sends = 5
    total = 2 * sends + 2 * sends + sends
    async with a.api.socket(ann, room["id"]) as on_a, b.api.socket(bob_on_b, room["id"]) as on_b:
        seen: dict[str, list[int]] = {"a": [], "b": []}

        async def read_all(name: str, ws) -> None:  # type: ignore[no-untyped-def]
            while len(seen[name]) < total:
                seen[name].append((await ws.message(timeout_s=30))["id"])

        async def send_both(phase: str) -> None:
            for i in range(sends):
                await on_a.send(f"a {phase} {i}", client_id=f"a-{phase}-{i}")
                await on_b.send(f"b {phase} {i}", client_id=f"b-{phase}-{i}")

        async with trio.open_nursery() as readers:
            readers.start_soon(read_all, "a", on_a)
            readers.start_soon(read_all, "b", on_b)
            await send_both("before")
            await trio.to_thread.run_sync(redis.stop)
            degraded = (await a.api.http.get("/readyz")).json()
            assert degraded["status"] == "degraded"
            assert "connect" in degraded["checks"]["redis"].lower()  # a reason a person can read
            presence = await a.api.http.get(
                f"/api/v1/rooms/{room['id']}/presence", headers=ann.headers
            )
            assert presence.status_code == 503
            assert presence.json()["error"]["code"] == "presence_unavailable"
            await send_both("during")  # each instance still serves its own clients
            await trio.to_thread.run_sync(redis.start)
            await wait_for_redis(a)
            await wait_for_redis(b)
            # Only B sends now: A's client hears it through the reconnected bus.
            for i in range(sends):
                await on_b.send(f"b after {i}", client_id=f"b-after-{i}")
    assert seen["a"] == seen["b"] == list(range(1, total + 1))
    history = await a.api.all_history(ann, room["id"])
    assert len(history) == total and len({m["text"] for m in history}) == total


async def test_users_of_a_killed_instance_resume_elsewhere_and_go_offline(
    cluster: Cluster,
) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    async with b.api.socket(bob_on_b, room["id"]) as bob_ws:
        async with a.api.socket(ann, room["id"]) as ann_ws:
            await bob_ws.expect("presence", user_id=ann.id, status="online")
            for i in range(3):
                await bob_ws.send(f"m{i}")
            last_seen = [(await ann_ws.message())["id"] for _ in range(3)][-1]
            a.kill()
            # Meanwhile the room goes on without ann.
            for i in range(3, 6):
                await bob_ws.send(f"m{i}")
            # ann's instance never said goodbye: her entry expires with the TTL.
            with trio.fail_after(PRESENCE_TTL_S * 2 + 5):
                await bob_ws.expect("presence", user_id=ann.id, status="offline")
        ann_on_b = await login_on(b.api, ann)
        async with b.api.socket(ann_on_b, room["id"], since=last_seen) as resumed:
            assert [m["text"] for m in await resumed.messages(3)] == ["m3", "m4", "m5"]


async def cache_counts(instance: Instance) -> tuple[float, float]:
    text = (await instance.api.http.get("/metrics")).text
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("chatd_recent_cache_")
    )
    return (
        float(values["chatd_recent_cache_hits_total"]),
        float(values["chatd_recent_cache_misses_total"]),
    )


async def test_recent_history_comes_from_the_cache_only_when_it_is_complete(
    cluster: Cluster, redis: RedisServer
) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    async with b.api.socket(bob_on_b, room["id"]) as watcher:  # the room is active on B
        async with a.api.socket(ann, room["id"]) as ws:
            sent = await ws.send_many(6)
        assert await watcher.messages(6) == sent

        hits, misses = await cache_counts(b)
        # History pages come from the store (current text, the reader's reactions): only
        # the resume is answered by the cache.
        page = await b.api.history(bob_on_b, room["id"], limit=4)
        assert page["items"] == sent[2:] and page["next"] == 3
        async with b.api.socket(bob_on_b, room["id"], since=1) as resumed:
            assert await resumed.messages(5) == sent[1:]
        assert await cache_counts(b) == (hits + 1, misses)

        # A hole in the cache (an entry lost, say): the store answers, just as right.
        import coredis

        async with coredis.Redis.from_url(redis.url) as client:
            await client.zremrangebyscore(f"chatd:recent:{room['id']}", 3, 3)
        async with b.api.socket(bob_on_b, room["id"], since=1) as resumed:
            assert await resumed.messages(5) == sent[1:]
        assert await cache_counts(b) == (hits + 1, misses + 1)

        # An edit makes the cached copy of its message stale: the cache forgets it, and a
        # resume over it is answered by the store, with the new text.
        edited = await a.api.http.patch(
            f"/api/v1/rooms/{room['id']}/messages/{sent[4]['id']}",
            json={"text": "changed"},
            headers=ann.headers,
        )
        assert edited.status_code == 200, edited.text
        await watcher.expect("message_edited")
        async with b.api.socket(bob_on_b, room["id"], since=4) as resumed:
            assert (await resumed.message())["text"] == "changed"
        assert await cache_counts(b) == (hits + 1, misses + 2)


async def test_workers_share_one_port_and_act_as_one_service(cluster: Cluster) -> None:
    server = await cluster.start("--workers", "2")
    # Fresh connections land on either worker: both answer behind the one port.
    seen = set()
    with trio.fail_after(30):
        while len(seen) < 2:
            async with httpx.AsyncClient(base_url=server.api.base_url) as fresh:
                seen.add((await fresh.get("/healthz")).json()["instance"])
    people = [await server.api.signup() for _ in range(6)]
    room = await server.api.create_room(people[0])
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(server.api.socket(who, room["id"])) for who in people
        ]
        for index, ws in enumerate(sockets):
            await ws.send(f"from {index}")
        streams = [[m["text"] for m in await ws.messages(6)] for ws in sockets]
    assert all(stream == streams[0] for stream in streams)
    assert sorted(streams[0]) == sorted(f"from {i}" for i in range(6))
    # Whichever worker answers /metrics reports the sum over both.
    for _ in range(6):
        async with httpx.AsyncClient(base_url=server.api.base_url) as fresh:
            text = (await fresh.get("/metrics")).text
        assert "chatd_messages_received_total 6.0" in text.splitlines()
    server.process.send_signal(signal.SIGTERM)
    with trio.fail_after(30):
        assert await server.process.wait() == 0
