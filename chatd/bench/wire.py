"""What bench clients send, and how they read the server's frames without json.loads.

A bench message's client_id carries `<step>.<monotonic ns at send>.<seq>`:
CLOCK_MONOTONIC is one clock for every process on the machine, so whoever
receives it can compute send-to-receipt latency from the frame alone.

chatd encodes frames compactly with "type" and then the payload's "id" first;
frames that look different (another version of the server) take the slow,
json.loads path, so the figures never depend on that shortcut being right.
"""

from __future__ import annotations

import json
import re
from typing import Any

# One C-level match per frame; ".*" backtracks from the end to the client_id key
# (a quote inside a JSON string is escaped, so only the key itself can match).
_BENCH_MESSAGE = re.compile(
    rb'\{"type":"message","payload":\{"id":(\d+),.*"client_id":"(\d+)\.(\d+)\.', re.DOTALL
)
_TYPED = b'{"type":"'


def message_frame(text: bytes, step: int, sent_ns: int, seq: int) -> bytes:
    client_id = b"%d.%d.%d" % (step, sent_ns, seq)
    return b'{"type":"message","payload":{"text":"' + text + b'","client_id":"' + client_id + b'"}}'


def filler_text(size: int) -> bytes:
    """`size` bytes of JSON-safe text."""
    return (b"bench-load-" * (size // 11 + 1))[: max(1, size)]


def read_message(frame: bytes) -> tuple[int, int, int] | None:
    """(message id, step, sent ns) of a message frame; None for any other frame.
    Step is -1 and sent ns 0 for a message no bench client sent."""
    if match := _BENCH_MESSAGE.match(frame):
        return int(match[1]), int(match[2]), int(match[3])
    if frame.startswith(_TYPED) and not frame.startswith(b'message"', len(_TYPED)):
        return None  # compact, and not a message
    return _read_slowly(frame)


def frame_type(frame: bytes) -> str:
    if frame.startswith(_TYPED):
        end = frame.find(b'"', len(_TYPED))
        if end > 0:
            return frame[len(_TYPED) : end].decode()
    try:
        decoded: Any = json.loads(frame)
        return str(decoded["type"])
    except (ValueError, KeyError, TypeError):
        return "unreadable"


def _read_slowly(frame: bytes) -> tuple[int, int, int] | None:
    try:
        decoded: Any = json.loads(frame)
        if decoded["type"] != "message":
            return None
        payload = decoded["payload"]
        client_id = payload.get("client_id")
        stamp = _stamp(client_id.encode()) if isinstance(client_id, str) else (-1, 0)
        return (int(payload["id"]), *stamp)
    except (ValueError, KeyError, TypeError):
        return None


def _stamp(client_id: bytes) -> tuple[int, int]:
    parts = client_id.split(b".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return -1, 0
    return int(parts[0]), int(parts[1])
