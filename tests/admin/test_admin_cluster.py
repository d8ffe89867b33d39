"""Admin actions take effect across instances: two real `chatd serve` processes with one
PostgreSQL and one Redis; the administrator talks to A, the people affected are on B."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from chatd.closecodes import DISCONNECTED_BY_ADMIN, ROOM_CLOSED
from chatd.store import Store, open_store
from tests.admin.test_admin_api import ADMIN, closed_with, make_admin, ok, refused_status
from tests.helpers import Account
from tests.processes import Cluster, Instance, login_on, wait_for_redis
from tests.redisserver import RedisServer

SETTINGS = {"CHATD_INSTANCE_REPORT_S": "0.5"}


@pytest.fixture
async def cluster(nursery: trio.Nursery, postgres_database: str, redis: RedisServer) -> Cluster:
    return Cluster(nursery, postgres_database, redis.url, settings=SETTINGS)


@pytest.fixture
async def store(postgres_database: str) -> Any:
    opened = open_store(postgres_database, pool_size=2)
    try:
        yield opened
    finally:
        await opened.aclose()


async def two_instances(cluster: Cluster, store: Store) -> tuple[Instance, Instance, Account]:
    a, b = await cluster.start(), await cluster.start()
    await wait_for_redis(a)
    await wait_for_redis(b)
    root = await a.api.signup()
    await make_admin(store, root)
    return a, b, root


async def connections_on(a: Instance, root: Account, **params: Any) -> dict[str, Any]:
    """GET connections on A, once both instances report and one lists a connection that
    matches (B reports every 0.5 s: nothing to wait on here but asking again)."""
    with trio.fail_after(10):
        while True:
            reply = await a.api.http.get(
                f"{ADMIN}/connections", params=params, headers=root.headers
            )
            found: dict[str, Any] = ok(reply)
            instances = found["instances"]
            if len(instances) == 2 and any(i["items"] for i in instances):
                return found
            await trio.sleep(0.1)


async def test_admin_actions_on_a_reach_sockets_on_b(cluster: Cluster, store: Store) -> None:
    a, b, root = await two_instances(cluster, store)
    ann = await a.api.signup()
    bob = await login_on(b.api, await a.api.signup())
    rid = (await a.api.create_room(ann))["id"]
    async with b.api.socket(bob, rid) as on_b, a.api.socket(ann, rid) as on_a:
        # A lists B's connection, with B's instance id; and both instances.
        found = await connections_on(a, root, user_id=bob.id)
        [listed] = [c for i in found["instances"] for c in i["items"]]
        assert (listed["user_id"], listed["room_id"]) == (bob.id, rid)
        reports = ok(await a.api.http.get(f"{ADMIN}/instances", headers=root.headers))["items"]
        assert len(reports) == 2
        assert listed["instance_id"] in {r["instance_id"] for r in reports}
        b_report = next(r for r in reports if r["instance_id"] == listed["instance_id"])
        assert b_report["connections"] == 1 and b_report["age_s"] < 5
        assert found["rooms"][0]["room_id"] == rid

        # Purge on A: the reader on B is told, and B's history is empty.
        await on_a.send_many(2)
        await on_b.messages(2)
        purged = ok(await a.api.http.post(f"{ADMIN}/rooms/{rid}/purge", headers=root.headers))
        assert purged["deleted_messages"] == 2
        assert await on_b.expect("room_purged") == {"room_id": rid, "up_to": 2}
        assert await b.api.all_history(bob, rid) == []
        # A resume on B replays nothing purged: not from the store, not from Redis's cache.
        async with b.api.socket(bob, rid, since=0) as resumed:
            await on_a.send("fresh")
            assert (await resumed.message())["text"] == "fresh"

        # Close on A: the socket on B closes, B refuses a new one and an edit.
        ok(await a.api.http.post(f"{ADMIN}/rooms/{rid}/close", headers=root.headers))
        assert await closed_with(on_b) == ROOM_CLOSED
        assert await closed_with(on_a) == ROOM_CLOSED
    assert await refused_status(b.api, bob, rid) == 423
    react = await b.api.http.put(f"/api/v1/rooms/{rid}/messages/1/reactions/x", headers=bob.headers)
    assert react.status_code in (404, 423)  # message 1 is purged; either way nothing is added
    ok(await a.api.http.post(f"{ADMIN}/rooms/{rid}/reopen", headers=root.headers))
    async with b.api.socket(bob, rid) as on_b:
        await on_b.send("back")
        assert (await on_b.message())["id"] == 4


async def test_a_user_disconnected_on_a_is_out_on_b(cluster: Cluster, store: Store) -> None:
    a, b, root = await two_instances(cluster, store)
    carl = await login_on(b.api, await a.api.signup())
    rid = (await a.api.create_room(carl))["id"]
    async with b.api.socket(carl, rid) as on_b:
        await connections_on(a, root, user_id=carl.id)
        revoke = {"revoke_sessions": True}
        path = f"{ADMIN}/users/{carl.id}/disconnect"
        ok(await a.api.http.post(path, json=revoke, headers=root.headers))
        assert await closed_with(on_b) == DISCONNECTED_BY_ADMIN
    refresh = await b.api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": carl.refresh_token}
    )
    assert refresh.status_code == 401
    # B refuses the access token once it has read the cut-off from the store (every 2 s).
    with trio.fail_after(10):
        while (await b.api.http.get("/api/v1/users/me", headers=carl.headers)).status_code != 401:  # noqa: ASYNC110
            await trio.sleep(0.1)
    assert await refused_status(b.api, carl, rid) == 401
    entries = ok(await a.api.http.get(f"{ADMIN}/audit", headers=root.headers))["items"]
    assert entries[0]["action"] == "user.disconnect" and entries[0]["target_id"] == carl.id
