"""JSON lines between the bench and its worker processes (over their stdin/stdout)."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import trio

from chatd.bench.procs import raise_file_limit

T = TypeVar("T")
Handler = Callable[[T, dict[str, Any]], Awaitable[dict[str, Any]]]

MAX_LINE_BYTES = 64 * 1024 * 1024  # a step report is far smaller; this only bounds a bug


async def send_json(stream: trio.abc.SendStream, message: dict[str, Any]) -> None:
    await stream.send_all(json.dumps(message, separators=(",", ":")).encode() + b"\n")


class JsonLines:
    """Reads one JSON object per line; EndOfChannel at EOF."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def receive(self) -> dict[str, Any]:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ValueError("line too long")
            chunk = await self._stream.receive_some(1 << 20)
            if not chunk:
                raise trio.EndOfChannel
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        message: dict[str, Any] = json.loads(line)
        return message


async def answer_commands(handlers: Mapping[str, Handler[T]], target: T) -> None:
    """A worker's side: run each command from stdin on `target`, reply on stdout, until EOF."""
    commands = JsonLines(trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())))
    replies = trio.lowlevel.FdStream(os.dup(sys.stdout.fileno()))
    while True:
        try:
            command = await commands.receive()
        except trio.EndOfChannel:
            return
        try:
            reply = await handlers[command["op"]](target, command) | {"ok": True}
        except Exception as exc:  # reported to the parent, which stops the bench
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        await send_json(replies, reply)


def worker_main(serve: Callable[[str, int], Awaitable[None]]) -> None:
    """`python -m <worker> HOST PORT`: Ctrl-C is the parent's to handle (it stops us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_file_limit()
    host, port = sys.argv[1], int(sys.argv[2])
    trio.run(serve, host, port)
