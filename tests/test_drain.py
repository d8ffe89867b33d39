"""SIGTERM drains: readiness fails at once, sockets close with 1012, nothing acked is lost."""

from __future__ import annotations

import os
import signal

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.helpers import Account, Api
from tests.test_cluster import SECRET, Instance, _run_instance, login_on


def instance_env(database_url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")} | {
        "CHATD_DATABASE_URL": database_url,
        "CHATD_JWT_SECRET": SECRET,
        "CHATD_BCRYPT_ROUNDS": "4",
        # One step of a second, so the test can watch the instance while it drains.
        "CHATD_DRAIN_BATCH": "1",
        "CHATD_DRAIN_STEP_S": "1",
        "CHATD_DRAIN_TIMEOUT_S": "15",
    }


async def test_sigterm_drains_without_losing_anything(
    nursery: trio.Nursery, postgres_database: str
) -> None:
    env = instance_env(postgres_database)
    first: Instance = await nursery.start(_run_instance, env, ())
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
    second: Instance = await nursery.start(_run_instance, env, ())
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
