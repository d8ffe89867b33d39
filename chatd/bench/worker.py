"""A bench worker process: `python -m chatd.bench.worker HOST PORT`.

It holds its share of the client connections and runs the commands the parent
sends, one JSON object a line on stdin; each gets one JSON line back on stdout.
EOF on stdin (the parent finished, or died) ends it. Ctrl-C is the parent's to
handle: it stops the workers itself.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from chatd.bench.pipe import JsonLines, send_json
from chatd.bench.procs import raise_file_limit
from chatd.bench.traffic import Load

Handler = Callable[[Load, dict[str, Any]], Awaitable[dict[str, Any]]]

HANDLERS: dict[str, Handler] = {
    "open": lambda load, command: load.open(command["conns"], int(command["concurrency"])),
    "paced_step": Load.paced_step,
    "flood": Load.flood,
    "quiet": lambda load, command: load.wait_quiet(command["idle_s"], command["timeout_s"]),
    "close": lambda load, command: load.close(),
}


async def serve_commands(host: str, port: int) -> None:
    commands = JsonLines(trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())))
    replies = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
    async with trio.open_nursery() as nursery:
        load = Load(nursery, host, port)
        while True:
            try:
                command = await commands.receive()
            except trio.EndOfChannel:
                break
            try:
                reply = await HANDLERS[command["op"]](load, command) | {"ok": True}
            except Exception as exc:  # reported to the parent, which stops the bench
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            await send_json(replies, reply)
        nursery.cancel_scope.cancel()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_file_limit()
    host, port = sys.argv[1], int(sys.argv[2])
    trio.run(serve_commands, host, port)


if __name__ == "__main__":
    main()
