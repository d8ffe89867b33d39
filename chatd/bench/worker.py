"""A bench worker process: `python -m chatd.bench.worker HOST PORT`.

It holds its share of the client connections and runs the commands the parent
sends, one JSON object a line on stdin; each gets one JSON line back on stdout.
EOF on stdin (the parent finished, or died) ends it. Ctrl-C is the parent's to
handle: it stops the workers itself.
"""

from __future__ import annotations

import trio

from chatd.bench.pipe import Handler, answer_commands, worker_main
from chatd.bench.traffic import Load

HANDLERS: dict[str, Handler[Load]] = {
    "open": lambda load, command: load.open(command["conns"], int(command["concurrency"])),
    "paced_step": Load.paced_step,
    "flood": Load.flood,
    "quiet": lambda load, command: load.wait_quiet(command["idle_s"], command["timeout_s"]),
    "close": lambda load, command: load.close(),
}


async def serve_commands(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        await answer_commands(HANDLERS, Load(nursery, host, port))
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    worker_main(serve_commands)
