"""The role split, with real `chatd serve` processes on one PostgreSQL and one Redis (and a
RabbitMQ of the test's own when the broker is in play): `--role api,ws` takes the
traffic, `--role notifications` follows the event stream; each answers only its routes."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.helpers import Account, Api
from tests.notifications.helpers import (
    notifications,
    send,
    wait_for_notifications,
    wait_online,
)
from tests.processes import Cluster, Instance, instance_env, login_on, wait_for_redis
from tests.redisserver import RedisServer

SETTINGS = {"CHATD_PRESENCE_TTL_S": "3", "CHATD_RELAY_POLL_S": "0.2"}


@pytest.fixture(params=["outbox", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    """No broker (the notifications process follows the outbox), or RabbitMQ."""
    return "" if request.param == "outbox" else str(request.getfixturevalue("events_url"))


@pytest.fixture
async def cluster(
    nursery: trio.Nursery, postgres_database: str, redis: RedisServer, broker_url: str
) -> Cluster:
    settings = SETTINGS | {"CHATD_EVENTS_URL": broker_url}
    return Cluster(nursery, postgres_database, redis.url, settings=settings)


async def start_split(cluster: Cluster) -> tuple[Instance, Instance]:
    front = await cluster.start("--role", "api,ws")
    notes = await cluster.start("--role", "notifications")
    for instance in (front, notes):
        await wait_for_redis(instance)
    return front, notes


async def join(api: Api, who: Account, room_id: int) -> None:
    reply = await api.http.post(f"/api/v1/rooms/{room_id}/join", headers=who.headers)
    assert reply.status_code in (200, 201, 204), reply.text


async def test_the_notifications_role_delivers_a_mention_to_a_user_who_connects_later(
    cluster: Cluster,
) -> None:
    front, notes = await start_split(cluster)
    ann, bob = await front.api.signup(), await front.api.signup()
    room = await front.api.create_room(ann)
    await join(front.api, bob, room["id"])
    sent = await send(front.api, ann, room["id"], f"@{bob.id} the build is red")

    # bob comes along later: logs in, finds the mention, opens a socket.
    bob = await login_on(front.api, bob)
    [mention] = await wait_for_notifications(notes.api, bob, 1)
    assert mention["kind"] == "mention"
    assert (mention["room_id"], mention["message_id"]) == (room["id"], sent["id"])
    assert mention["sender_id"] == ann.id and mention["read"] is False
    async with front.api.socket(bob, room["id"]) as sock:
        # Mentioned again while connected: the notifications process pushes it to his
        # socket on the other process, through Redis.
        again = await send(front.api, ann, room["id"], f"still red, @{bob.id}")
        pushed = await sock.expect("notification", timeout_s=15)
        assert pushed["message_id"] == again["id"] and pushed["kind"] == "mention"
    assert (await notifications(notes.api, bob))["unread_count"] == 2
    assert "chatd_notifications_created_total" in (await notes.api.http.get("/metrics")).text


async def test_dms_notify_offline_members_across_processes(cluster: Cluster) -> None:
    front, notes = await start_split(cluster)
    ann, bob, cat = [await front.api.signup() for _ in range(3)]
    lobby = await front.api.create_room(ann)
    await join(front.api, bob, lobby["id"])
    with_bob = await open_dm(front.api, ann, bob)
    with_cat = await open_dm(front.api, ann, cat)
    async with front.api.socket(bob, lobby["id"]):
        await wait_online(front.api, bob, ann, lobby["id"])
        to_bob = await send(front.api, ann, with_bob["id"], "you are online")
        to_cat = await send(front.api, ann, with_cat["id"], "you are not")
        [note] = await wait_for_notifications(notes.api, cat, 1)
        assert note["kind"] == "dm" and note["message_id"] == to_cat["id"]
        # Events are processed in order: once cat's (the later one) is in, bob's was seen.
        assert to_bob["id"] and (await notifications(notes.api, bob))["items"] == []


async def open_dm(api: Api, who: Account, other: Account) -> dict[str, Any]:
    reply = await api.http.post("/api/v1/dms", json={"user_id": other.id}, headers=who.headers)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("broker_url", ["outbox"], indirect=True)
async def test_each_role_answers_only_its_routes(cluster: Cluster) -> None:
    front, notes = await start_split(cluster)
    ws_only = await cluster.start("--role", "ws")
    ann = await front.api.signup()
    room = await front.api.create_room(ann)

    for instance in (front, notes, ws_only):  # what every role serves
        assert (await instance.api.http.get("/healthz")).status_code == 200
        assert (await instance.api.http.get("/readyz")).status_code == 200
        assert (await instance.api.http.get("/metrics")).status_code == 200

    async def missing(instance: Instance, path: str) -> None:
        reply = await instance.api.http.get(path, headers=ann.headers)
        assert reply.status_code == 404, (path, reply.text)
        assert reply.json()["error"]["code"] == "not_found"

    await missing(front, "/api/v1/notifications")
    await missing(notes, "/api/v1/rooms")
    await missing(notes, "/api/v1/users/me")
    await missing(ws_only, "/api/v1/rooms")
    await missing(ws_only, "/api/v1/notifications")
    assert (
        await notes.api.http.get("/api/v1/notifications", headers=ann.headers)
    ).status_code == 200

    for instance in (notes, front):  # no WebSockets but on a ws process
        url = instance.api.ws_url(room["id"], token=ann.access_token)
        if instance is front:
            async with open_websocket_url(url):
                pass
            continue
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(url):
                pass
        assert refused.value.status_code == 404
        assert b'"not_found"' in (refused.value.body or b"")
    async with open_websocket_url(ws_only.api.ws_url(room["id"], token=ann.access_token)):
        pass


async def test_a_role_without_redis_is_refused_at_start(postgres_database: str) -> None:
    env = instance_env(postgres_database)
    result = await trio.run_process(
        [sys.executable, "-m", "chatd", "serve", "--port", "0", "--role", "api,ws"],
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2
    assert b"CHATD_REDIS_URL" in result.stderr
    result = await trio.run_process(
        [sys.executable, "-m", "chatd", "serve", "--port", "0"],
        env=env | {"CHATD_ROLE": "chat"},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2 and b"CHATD_ROLE" in result.stderr


async def test_workers_keep_the_role(
    nursery: trio.Nursery, postgres_database: str, redis: RedisServer
) -> None:
    cluster = Cluster(nursery, postgres_database, redis.url)
    workers = await cluster.start("--workers", "2", "--role", "ws")
    assert (await workers.api.http.get("/healthz")).status_code == 200
    for _ in range(4):  # whichever worker answers
        reply = await workers.api.http.get("/api/v1/rooms")
        assert reply.status_code == 404
