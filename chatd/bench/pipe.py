"""JSON lines between the bench and its worker processes (over their stdin/stdout)."""

from __future__ import annotations

import json
from typing import Any

import trio

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
