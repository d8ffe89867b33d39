"""The chatd under test: its own process on loopback, started and stopped by the bench.

`--server-src DIR` puts DIR first on the server's PYTHONPATH only, so the same
bench can measure another checkout (the previous version, for before/after).
"""

from __future__ import annotations

import collections
import os
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from chatd.bench.errors import BenchFailed
from chatd.bench.procs import Child, Usage, descendants, open_child, usage
from chatd.bench.prom import Samples, parse_metrics
from chatd.config import Settings

STARTUP_TIMEOUT_S = 30.0
LOG_LINES_KEPT = 40  # shown if the server dies under load
_LISTENING = re.compile(rb"listening on (http://[0-9.:]+)")


def server_env(settings: Settings, server_src: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env |= {
        "CHATD_DATABASE_URL": settings.database_url,
        "CHATD_JWT_SECRET": settings.jwt_secret,  # the bench's tokens outlive one server
        "CHATD_BCRYPT_ROUNDS": "4",  # registering users is set-up, not the load
        "CHATD_LOG_FORMAT": "text",
        # The bench measures the server, not its limits: from one address it registers
        # and logs in every user, then sends far past any one person's rate (0: off).
        "CHATD_WS_SEND_PER_S": "0",
        "CHATD_REST_USER_PER_S": "0",
        "CHATD_REST_ADDRESS_PER_S": "0",
        "CHATD_REGISTER_ADDRESS_PER_S": "0",
    }
    if settings.redis_url:
        env["CHATD_REDIS_URL"] = settings.redis_url
        env["CHATD_REDIS_PREFIX"] = settings.redis_prefix
    if settings.role != "all":  # CHATD_ROLE: a bench of some roles (they need Redis)
        env["CHATD_ROLE"] = settings.role
    if settings.events_url:  # CHATD_EVENTS_URL: the relay publishes to this broker
        env["CHATD_EVENTS_URL"] = settings.events_url
        env["CHATD_EVENTS_EXCHANGE"] = settings.events_exchange
    if server_src is not None:
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(server_src) + (os.pathsep + path if path else "")
    return env


async def migrate(settings: Settings, server_src: Path | None) -> None:
    """`chatd migrate` with the server's own code (and so its own schema files)."""
    env = server_env(settings, server_src)
    async with open_child(
        ["-m", "chatd", "migrate"], env=env, stdout=True, merge_stderr=True, cwd=server_src
    ) as child:
        assert child.stdout is not None
        output = b"".join([chunk async for chunk in child.stdout])
        if await child.wait() != 0:
            raise BenchFailed("chatd migrate failed:\n" + output.decode(errors="replace"))


class Server:
    """A running chatd: where it listens, what it costs, what its /metrics say."""

    def __init__(self, child: Child, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self.http = http
        self._child = child
        host_port = base_url.removeprefix("http://")
        host, _, port = host_port.rpartition(":")
        self.host, self.port = host, int(port)

    def usage(self) -> Usage:
        """CPU and RSS of the server and, under --workers, of every worker."""
        return usage(descendants(self._child.pid), time.monotonic())

    async def metrics(self) -> Samples:
        reply = await self.http.get("/metrics")
        reply.raise_for_status()
        return parse_metrics(reply.text)


@asynccontextmanager
async def open_server(
    settings: Settings, *, workers: int = 1, server_src: Path | None = None
) -> AsyncIterator[Server]:
    args = ["-m", "chatd", "serve", "--no-migrate", "--port", "0"]
    if workers > 1:
        args += ["--workers", str(workers)]
    env = server_env(settings, server_src)
    async with (
        # In server_src too: `python -m` looks in the working directory before PYTHONPATH,
        # so a bench run from a checkout would otherwise serve that checkout's code.
        open_child(args, env=env, stdout=True, merge_stderr=True, cwd=server_src) as child,
        trio.open_nursery() as nursery,
    ):
        log = _ServerLog(child)
        base_url: str = await nursery.start(log.run)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            try:
                yield Server(child, base_url, http)
            finally:
                log.stopping = True
                with trio.CancelScope(shield=True):
                    await child.stop(grace_s=25)
        nursery.cancel_scope.cancel()


class _ServerLog:
    """Reads the server's output: its URL first, then keeps the pipe drained (a full
    pipe would stall its logging) and the last lines, for when it dies."""

    def __init__(self, child: Child) -> None:
        self._child = child
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.stopping = False

    async def run(self, task_status: trio.TaskStatus[str]) -> None:
        assert self._child.stdout is not None
        pending = b""
        found = False
        with trio.move_on_after(STARTUP_TIMEOUT_S) as startup:
            async for chunk in self._child.stdout:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    if b" INFO chatd.access:" not in line:  # a line per socket: noise here
                        self.lines.append(line.decode(errors="replace"))
                    if not found and (match := _LISTENING.search(line)):
                        found = True
                        startup.deadline = float("inf")
                        task_status.started(match.group(1).decode())
        if self.stopping:
            return
        tail = "\n".join(self.lines)
        if not found:
            why = "did not say it was listening" if startup.cancelled_caught else "exited"
            raise BenchFailed(f"chatd {why} at start:\n{tail}")
        raise BenchFailed(f"chatd exited under test (code {self._child.returncode}):\n{tail}")
