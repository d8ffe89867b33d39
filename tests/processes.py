"""Real `chatd serve` processes for tests: started on a free port, their output kept,
stopped (or killed) by the test or, at the latest, when its nursery ends."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from tests.helpers import Account, Api

SECRET = "cluster-test-secret-long-enough-for-hs256!"
STARTUP_TIMEOUT_S = 30.0
CRASHED = "uncaught exception"  # what chatd logs before it exits on an error nobody caught


@dataclass
class Instance:
    api: Api
    process: trio.Process
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    @property
    def log(self) -> str:
        """Its last lines of output, for an assertion's message."""
        return "\n".join(self.output)


@dataclass
class Cluster:
    """Instances of one service: one database, one Redis."""

    nursery: trio.Nursery
    database_url: str
    redis_url: str
    settings: Mapping[str, str] = field(default_factory=dict)  # CHATD_* for every instance
    instances: list[Instance] = field(default_factory=list)

    async def start(self, *args: str, settings: Mapping[str, str] | None = None) -> Instance:
        """`chatd serve *args`; settings: CHATD_* for this one, on top of the cluster's."""
        env = instance_env(self.database_url, self.redis_url, {**self.settings, **(settings or {})})
        instance: Instance = await self.nursery.start(run_instance, env, args)
        self.instances.append(instance)
        return instance


def instance_env(
    database_url: str, redis_url: str | None = None, settings: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This environment without its CHATD_* variables, and the ones every instance of a
    test shares (the secret, so tokens work on all of them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")} | {
        "CHATD_DATABASE_URL": database_url,
        "CHATD_JWT_SECRET": SECRET,
        "CHATD_BCRYPT_ROUNDS": "4",
        # Every person of a test signs up from 127.0.0.1: the per-address limits on
        # requests without a token (registering, logging in) would refuse the crowd.
        "CHATD_REGISTER_ADDRESS_PER_S": "0",
        "CHATD_REST_ADDRESS_PER_S": "0",
    }
    if redis_url is not None:
        env["CHATD_REDIS_URL"] = redis_url
    return env | dict(settings or {})


async def run_instance(
    env: dict[str, str], args: tuple[str, ...], task_status: trio.TaskStatus[Instance]
) -> None:
    """Start `chatd serve`, started() with it once it listens, then keep its output
    drained (a full pipe would stall its logging) until it exits; killed if cancelled."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "chatd", "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    instance: Instance | None = None
    output: collections.deque[str] = collections.deque(maxlen=200)
    try:
        assert process.stdout is not None
        buffer = b""
        with trio.fail_after(STARTUP_TIMEOUT_S) as startup:
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in map(bytes.decode, lines):
                    output.append(line)
                    if instance is None and (match := re.search(r"listening on (\S+)", line)):
                        instance = Instance(Api(match.group(1)), process, output)
                        startup.deadline = float("inf")
                        task_status.started(instance)
        if instance is None:
            raise RuntimeError("chatd exited before listening:\n" + "\n".join(output))
        await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            if instance is not None:
                await instance.api.aclose()


async def two_instances_one_room(
    cluster: Cluster,
) -> tuple[Instance, Instance, Account, Account, dict[str, Any]]:
    """Instances A and B; ann (logged in on A) owns a room; bob is logged in on B."""
    a, b = await cluster.start(), await cluster.start()
    ann, bob = await a.api.signup(), await a.api.signup()
    room = await a.api.create_room(ann)
    return a, b, ann, await login_on(b.api, bob), room


async def login_on(api: Api, account: Account) -> Account:
    """The same person, logged in through another instance."""
    tokens = await api.login(account.email)
    return Account(account.id, account.email, tokens["access_token"], tokens["refresh_token"])


async def wait_for_redis(instance: Instance) -> None:
    """Until the instance's bus says it is connected (it reconnects with backoff)."""
    try:
        with trio.fail_after(20):
            # Another process's state: there is nothing to wait on but asking again.
            while (await instance.api.http.get("/readyz")).json()["checks"]["redis"] != "ok":  # noqa: ASYNC110
                await trio.sleep(0.05)
    except httpx.TransportError:
        with trio.move_on_after(5):
            await instance.process.wait()
        if instance.process.returncode is None:
            raise
        raise AssertionError(
            f"the instance exited ({instance.process.returncode}):\n{instance.log}"
        ) from None
