"""A soak worker process: `python -m chatd.bench.soak_worker HOST PORT`.

Like chatd.bench.worker (one JSON command a line on stdin, one JSON reply a line
on stdout, EOF ends it), but its people come and go for the whole soak: `start`
returns once everyone has connected, and the soak goes on in its own nursery,
between commands, until `finish`.
"""

from __future__ import annotations

import trio

from chatd.bench.churn import Soak
from chatd.bench.pipe import Handler, answer_commands, worker_main

HANDLERS: dict[str, Handler[Soak]] = {
    "start": Soak.start,
    "tokens": Soak.use_tokens,
    "progress": Soak.progress,
    "finish": Soak.finish,
}


async def serve_commands(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        soak: Soak = await nursery.start(_run_people, host, port)
        await answer_commands(HANDLERS, soak)
        nursery.cancel_scope.cancel()


async def _run_people(host: str, port: int, task_status: trio.TaskStatus[Soak]) -> None:
    """The soak's own nursery, apart from the command loop's: `finish` cancels it,
    which closes every socket."""
    async with trio.open_nursery() as people:
        task_status.started(Soak(people, host, port))
        await trio.sleep_forever()


if __name__ == "__main__":
    worker_main(serve_commands)
