"""`chatd serve --workers N`: the workers never outlive their supervisor."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.processes import Cluster
from tests.redisserver import RedisServer


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may be slow to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_workers_stop_when_their_supervisor_is_killed(
    nursery: trio.Nursery, postgres_database: str, redis: RedisServer
) -> None:
    # SIGKILL leaves the supervisor no chance to stop them: left alone they would go
    # on serving the port unsupervised (and, in a test run, pile up).
    cluster = Cluster(nursery, postgres_database, redis.url)
    server = await cluster.start("--workers", "2")
    workers = children(server.process.pid)
    assert len(workers) == 2
    server.kill()
    with trio.fail_after(30):
        while any(running(pid) for pid in workers):  # noqa: ASYNC110 (other processes)
            await trio.sleep(0.1)
