"""The parent's side of the worker processes: start them, ask them, stop them.

Clients live in workers (each its own Trio loop on its own core) so that a
saturated client is never mistaken for a slow server; their CPU is reported.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from chatd.bench.errors import BenchFailed
from chatd.bench.pipe import JsonLines, send_json
from chatd.bench.procs import Child, Usage, open_child, usage

EXIT_GRACE_S = 5.0
QUIET_IDLE_S = 1.0  # no frame for this long: a backlog (or a presence storm) is over
QUIET_TIMEOUT_S = 60.0
BIG_RUN_CONNECTIONS = 100  # from here on, clients get a second process (if there is a core)


def default_client_procs(connections: int) -> int:
    return 1 if connections < BIG_RUN_CONNECTIONS else max(1, min(2, os.cpu_count() or 1))


class Worker:
    def __init__(self, child: Child) -> None:
        assert child.stdin is not None and child.stdout is not None
        self.pid = child.pid
        self._stdin = child.stdin
        self._replies = JsonLines(child.stdout)

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        await send_json(self._stdin, command)
        try:
            reply = await self._replies.receive()
        except trio.EndOfChannel:
            raise BenchFailed(f"bench worker {self.pid} exited (its error is above)") from None
        if not reply.get("ok"):
            raise BenchFailed(f"bench worker {self.pid}: {reply.get('error')}")
        return reply

    async def finish(self) -> None:
        await self._stdin.aclose()  # EOF: the worker stops by itself


class Workers:
    def __init__(self, workers: list[Worker]) -> None:
        self.each = workers

    def __len__(self) -> int:
        return len(self.each)

    def usage(self) -> Usage:
        return usage([worker.pid for worker in self.each], time.monotonic())

    def usage_each(self) -> list[Usage]:
        now = time.monotonic()
        return [usage([worker.pid], now) for worker in self.each]

    async def ask_all(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """commands[i] goes to worker i; all at once; the replies in the same order."""
        replies: list[dict[str, Any]] = [{} for _ in commands]

        async def ask(index: int) -> None:
            replies[index] = await self.each[index].ask(commands[index])

        async with trio.open_nursery() as nursery:
            for index in range(len(commands)):
                nursery.start_soon(ask, index)
        return replies

    async def ask_each(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.ask_all([command] * len(self.each))

    async def wait_quiet(self) -> tuple[float, Counter[int]]:
        """Until no client has received anything for QUIET_IDLE_S (after connecting: each
        join makes presence frames for the whole room; after an overloaded step: its
        backlog). Returns the seconds it took, and by step the messages that came after
        their step's report."""
        started = time.monotonic()
        replies = await self.ask_each(
            {"op": "quiet", "idle_s": QUIET_IDLE_S, "timeout_s": QUIET_TIMEOUT_S}
        )
        late: Counter[int] = Counter()
        for reply in replies:
            late.update({int(step): n for step, n in reply["late_by_step"].items()})
        return time.monotonic() - started, late


@asynccontextmanager
async def open_workers(
    count: int, host: str, port: int, program: str = "chatd.bench.worker"
) -> AsyncIterator[Workers]:
    """`count` client processes running `program` (a module), against host:port."""
    args = ["-m", program, host, str(port)]
    async with AsyncExitStack() as stack:
        children = [
            await stack.enter_async_context(
                open_child(args, env=dict(os.environ), stdin=True, stdout=True, grace_s=2)
            )
            for _ in range(count)
        ]
        workers = [Worker(child) for child in children]
        try:
            yield Workers(workers)
        finally:
            with trio.move_on_after(EXIT_GRACE_S, shield=True):
                for worker in workers:
                    await worker.finish()
                for child in children:
                    await child.wait()


@dataclass(frozen=True)
class Opened:
    """What opening the connections took: how many, how fast, what failed."""

    count: int
    failed: dict[str, int]
    elapsed_s: float
    handshake_us: list[int]

    @property
    def per_s(self) -> float:
        return self.count / self.elapsed_s if self.elapsed_s > 0 else 0.0


async def open_connections(
    workers: Workers, shares: list[list[list[Any]]], concurrency: int
) -> Opened:
    """shares[i]: the [room, token, sender, phase] connections worker i opens; attempts in
    flight are `concurrency` in all, split evenly over the workers."""
    each = max(1, concurrency // len(workers))
    started = time.monotonic()
    replies = await workers.ask_all(
        [{"op": "open", "conns": share, "concurrency": each} for share in shares]
    )
    elapsed = time.monotonic() - started
    failed: Counter[str] = Counter()
    for reply in replies:
        failed.update(reply["failed"])
    return Opened(
        count=sum(int(reply["opened"]) for reply in replies),
        failed=dict(failed),
        elapsed_s=elapsed,
        handshake_us=[us for reply in replies for us in reply["handshake_us"]],
    )
