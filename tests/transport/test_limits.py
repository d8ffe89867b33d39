"""Rate limits as clients meet them: refused sends, 429s with Retry-After, lockouts that grow.

Windows pass on a MockClock that runs at real speed and that a test jumps
ahead: the server runs in the test's own Trio run, so its limits read the
same clock. Shared limits run two instances on one Redis.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed

from chatd.closecodes import POLICY_VIOLATION
from chatd.config import Settings
from tests.conftest import settings_for, start_server
from tests.helpers import PASSWORD, Api
from tests.redisserver import RedisServer

WRONG = "not the password at all"
_prefixes = itertools.count(1)


def on_redis(base: Settings, redis: RedisServer, **limits: Any) -> Settings:
    """These limits, shared through this Redis under a prefix of the test's own."""
    return replace(base, redis_url=redis.url, redis_prefix=f"limits{next(_prefixes)}:", **limits)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Real time, which a test may jump ahead to let a window pass."""
    return trio.testing.MockClock(rate=1.0)


@pytest.fixture
def base(sqlite_database: str) -> Settings:
    return settings_for(sqlite_database)


@pytest.fixture
async def start(nursery: trio.Nursery) -> AsyncIterator[Any]:
    """start(settings, **changes) -> Api of a new server; every client is closed at the end."""
    clients: list[Api] = []

    async def run(settings: Settings, **changes: Any) -> Api:
        api, _ = await start_server(nursery, replace(settings, **changes))
        clients.append(api)
        return api

    yield run
    for api in clients:
        await api.aclose()


async def jump(clock: trio.testing.MockClock, api: Api, seconds: float) -> None:
    """Let `seconds` pass for the server. Its keep-alive connections are dropped: Hypercorn
    loses track of one whose idle timeout a jump skipped (real time never skips)."""
    clock.jump(seconds)
    await api.http.aclose()
    api.http = httpx.AsyncClient(base_url=api.base_url, timeout=10)


async def login(api: Api, email: str, password: str, **headers: str) -> httpx.Response:
    return await api.http.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


def assert_limited(reply: httpx.Response, retry_after_s: int | None = None) -> int:
    """A 429 in chatd's error shape with a Retry-After header; returns its seconds.

    retry_after_s: what it says right after the limit was hit (a slow run may have
    spent a few of those seconds already)."""
    assert reply.status_code == 429, reply.text
    assert reply.json()["error"]["code"] == "rate_limited"
    assert reply.json()["error"]["message"]
    seconds = int(reply.headers["Retry-After"])
    assert seconds >= 1
    if retry_after_s is not None:
        assert retry_after_s - 5 < seconds <= retry_after_s, reply.headers
    return seconds


async def refusals(api: Api, limit: str) -> float:
    text = (await api.http.get("/metrics")).text
    line = f'chatd_rate_limit_refusals_total{{limit="{limit}"}} '
    values = [float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line)]
    assert values, f"no {line.strip()} in /metrics"
    return values[0]


# -- WebSocket sends ---------------------------------------------------------


async def test_a_sender_over_the_limit_is_refused_and_served_again_after_the_wait(
    clock: trio.testing.MockClock, base: Settings, start: Any
) -> None:
    # One message every 10 s after the burst: a slow run cannot refill it by accident.
    api = await start(base, ws_send_per_s=0.1, ws_send_burst=3)
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws, api.socket(bob, room["id"]) as other:
        for i in range(3):
            await ws.send(f"m{i}", client_id=f"c{i}")
        assert [m["client_id"] for m in await ws.messages(3)] == ["c0", "c1", "c2"]
        await ws.send("one too many", client_id="c3")
        refused = await ws.error()
        assert refused["code"] == "rate_limited" and refused["client_id"] == "c3"
        assert 5 < refused["retry_after"] <= 10.0
        # Another user is not held back by ann's limit.
        await other.send("bob's turn")
        assert (await other.expect("message", text="bob's turn"))["user_id"] == bob.id
        assert (await ws.message())["text"] == "bob's turn"
        await jump(clock, api, refused["retry_after"])
        await ws.send("one too many", client_id="c3")  # the same socket, after the wait
        assert (await ws.message())["client_id"] == "c3"
    assert await refusals(api, "ws_send") == 1


async def test_a_sender_who_keeps_pushing_is_disconnected_with_1008(
    base: Settings, start: Any
) -> None:
    api = await start(
        base, ws_send_per_s=0.01, ws_send_burst=1, ws_abuse_refusals=4, ws_abuse_window_s=60
    )
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send("the one allowed")
        await ws.message()
        for i in range(3):
            await ws.send(f"refused {i}")
            assert (await ws.error())["code"] == "rate_limited"
        await ws.send("the last straw")
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            await ws.frame()
    assert closed.value.reason.code == POLICY_VIOLATION
    # Closed, not banned: a new connection is welcome (its sends wait for the bucket).
    async with api.socket(ann, room["id"]) as again:
        await again.send_raw('{"type": "ping"}')
        assert (await again.next_frame())["type"] == "pong"


async def test_one_user_on_two_instances_shares_one_send_limit(
    base: Settings, start: Any, redis: RedisServer
) -> None:
    shared = on_redis(
        base,
        redis,
        ws_send_per_s=0.2,  # nothing refills during the test
        ws_send_burst=20,
        ws_send_share_s=0.01,
    )
    a, b = await start(shared), await start(shared)
    ann = await a.signup()
    room = await a.create_room(ann)
    async with a.socket(ann, room["id"]) as on_a:
        assert len(await on_a.send_many(20)) == 20  # the whole burst, on A
    accepted_on_b = 0
    async with b.socket(ann, room["id"]) as on_b:
        with trio.fail_after(10):
            while True:
                await on_b.send(f"b{accepted_on_b}")
                frame = await on_b.next_frame()
                if frame["type"] == "error":
                    assert frame["payload"]["code"] == "rate_limited"
                    break
                accepted_on_b += 1
    # B alone would have let another 20 through; it learns within a share interval.
    assert accepted_on_b < 10, accepted_on_b


# -- logins ------------------------------------------------------------------


async def test_guessing_one_accounts_password_locks_it_longer_each_time(
    clock: trio.testing.MockClock, base: Settings, start: Any
) -> None:
    api = await start(
        base,
        login_account_failures=3,
        login_address_failures=1000,
        login_lockout_s=60,
        login_lockout_max_s=240,
    )
    ann, bob = await api.signup("ann@example.com"), await api.signup("bob@example.com")
    for expected_lockout_s in (60, 120, 240, 240):  # doubling, up to the cap
        for _ in range(2):
            assert (await login(api, "ANN@example.com", WRONG)).status_code == 401  # any case
        assert_limited(await login(api, "ann@example.com", WRONG), expected_lockout_s)
        # Locked: even the right password waits, and no hash is spent finding out.
        assert_limited(await login(api, ann.email, PASSWORD))
        assert (await login(api, bob.email, PASSWORD)).status_code == 200  # others are not
        await jump(clock, api, expected_lockout_s)
    assert (await login(api, ann.email, PASSWORD)).status_code == 200
    # A successful login forgave the failures: two more wrong ones do not lock.
    for _ in range(2):
        assert (await login(api, ann.email, WRONG)).status_code == 401
    assert (await login(api, ann.email, PASSWORD)).status_code == 200
    assert await refusals(api, "login_account") == 8


async def test_guessing_from_one_address_locks_that_address(base: Settings, start: Any) -> None:
    api = await start(
        base, login_account_failures=1000, login_address_failures=4, trusted_proxy_hops=1
    )
    ann = await api.signup()
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(3):  # a different account each time: the address is what they share
        reply = await login(api, f"victim{i}@example.com", WRONG, **attacker)
        assert reply.status_code == 401
    assert_limited(await login(api, "victim3@example.com", WRONG, **attacker), 60)
    assert_limited(await login(api, ann.email, PASSWORD, **attacker))
    # Another client behind the same proxy is not locked out; what a client writes
    # itself in X-Forwarded-For is not believed (the proxy appends the real address).
    spoofed = {"X-Forwarded-For": "203.0.113.7, 198.51.100.20"}
    assert (await login(api, ann.email, PASSWORD, **spoofed)).status_code == 200


async def test_registrations_from_one_address_are_limited(base: Settings, start: Any) -> None:
    api = await start(base, register_address_per_s=0.01, register_address_burst=2)
    for i in range(2):
        await api.signup(f"new{i}@example.com")
    reply = await api.http.post(
        "/api/v1/auth/register", json={"email": "third@example.com", "password": PASSWORD}
    )
    assert_limited(reply, 100)
    assert await refusals(api, "register_address") == 1


# -- REST requests -----------------------------------------------------------


async def test_rest_requests_are_limited_per_user(
    clock: trio.testing.MockClock, base: Settings, start: Any
) -> None:
    api = await start(base, rest_user_per_s=0.1, rest_user_burst=5)
    ann, bob = await api.signup(), await api.signup()
    for _ in range(5):
        assert (await api.http.get("/api/v1/users/me", headers=ann.headers)).status_code == 200
    limited = await api.http.get("/api/v1/rooms", headers=ann.headers)
    assert_limited(limited, 10)
    assert (await api.http.get("/api/v1/users/me", headers=bob.headers)).status_code == 200
    assert (await api.http.get("/healthz")).status_code == 200  # probes are never limited
    await jump(clock, api, 10)
    assert (await api.http.get("/api/v1/users/me", headers=ann.headers)).status_code == 200
    assert await refusals(api, "rest_user") == 1


async def test_rest_requests_without_a_token_are_limited_per_address(
    base: Settings, start: Any
) -> None:
    api = await start(base, rest_address_per_s=0.5, rest_address_burst=3)
    for _ in range(3):
        assert (await api.http.get("/api/v1/rooms")).status_code == 401
    assert_limited(await api.http.get("/api/v1/rooms"), 2)
    # A bad token is no token: it does not get its own bucket.
    bad = {"Authorization": "Bearer not-a-token"}
    assert_limited(await api.http.get("/api/v1/rooms", headers=bad))


# -- shared through Redis ----------------------------------------------------


async def test_two_instances_on_one_redis_share_the_limits(
    base: Settings, start: Any, redis: RedisServer
) -> None:
    shared = on_redis(
        base,
        redis,
        login_account_failures=3,
        rest_user_per_s=0.01,
        rest_user_burst=30,  # signing up and creating a room fit in it
    )
    a, b = await start(shared), await start(shared)
    ann = await a.signup()
    for api in (a, b, a):  # the failures add up across instances
        assert (await login(api, ann.email, WRONG)).status_code in (401, 429)
    assert_limited(await login(b, ann.email, PASSWORD), 60)
    assert_limited(await login(a, ann.email, PASSWORD))

    bob = await a.signup()
    used = 0
    with trio.fail_after(10):
        while (await (a, b)[used % 2].http.get("/api/v1/users/me", headers=bob.headers)).is_success:
            used += 1
    assert used == 30  # one bucket, spent from both sides


async def test_limits_go_on_in_process_while_redis_is_away(
    base: Settings, start: Any, redis: RedisServer
) -> None:
    api = await start(on_redis(base, redis, login_account_failures=3))
    ann = await api.signup()
    await trio.to_thread.run_sync(redis.stop)
    # Requests are not failed because Redis is: they are counted here instead.
    assert (await login(api, ann.email, PASSWORD)).status_code == 200
    assert (await api.http.get("/api/v1/users/me", headers=ann.headers)).status_code == 200
    for _ in range(2):
        assert (await login(api, ann.email, WRONG)).status_code == 401
    assert_limited(await login(api, ann.email, WRONG), 60)
    assert_limited(await login(api, ann.email, PASSWORD))
