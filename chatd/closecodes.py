"""Every WebSocket close code chatd sends, in one table.

The server closes with these; the terminal client imports this module and
the web client imports the same table as /assets/close-codes.js (rendered
from here by transport/web.py), so a code means the same thing everywhere.

`then` tells a client what to do next:
- "resume": reconnect with ?since=<last id seen>; nothing is lost.
- "back_off": reconnect with ?since=, but only after a pause (the client misbehaved).
- "stop": do not reconnect to this room; show `message` to the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

Then = Literal["resume", "back_off", "stop"]


@dataclass(frozen=True, slots=True)
class CloseCode:
    code: int
    name: str
    then: Then
    message: str  # for people: what happened


NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
ROOM_FAILED = 1011
SERVICE_RESTART = 1012
SLOW_CONSUMER = 1013
SESSION_ENDED = 4401
REMOVED_FROM_ROOM = 4403
ROOM_GONE = 4404
DISCONNECTED_BY_ADMIN = 4408
ROOM_CLOSED = 4423

TABLE: tuple[CloseCode, ...] = (
    CloseCode(NORMAL, "normal", "resume", "The connection was closed."),
    CloseCode(GOING_AWAY, "going_away", "resume", "The connection went away."),
    CloseCode(PROTOCOL_ERROR, "protocol_error", "back_off", "The client broke the protocol."),
    CloseCode(INVALID_PAYLOAD, "invalid_payload", "back_off", "A frame was not valid UTF-8."),
    CloseCode(
        POLICY_VIOLATION, "policy_violation", "back_off", "Too many refused sends: slow down."
    ),
    CloseCode(MESSAGE_TOO_BIG, "message_too_big", "back_off", "A frame was far too large."),
    CloseCode(
        ROOM_FAILED, "room_failed", "resume", "The room hit a temporary failure; reconnecting."
    ),
    CloseCode(SERVICE_RESTART, "service_restart", "resume", "The server is restarting."),
    CloseCode(SLOW_CONSUMER, "slow_consumer", "resume", "The connection fell behind."),
    CloseCode(
        SESSION_ENDED,
        "session_ended",
        "stop",
        "You were signed out (your password changed, or an administrator ended your"
        " sessions): log in again.",
    ),
    CloseCode(REMOVED_FROM_ROOM, "removed", "stop", "You were removed from this room."),
    CloseCode(ROOM_GONE, "room_gone", "stop", "This room was deleted."),
    CloseCode(
        DISCONNECTED_BY_ADMIN,
        "disconnected",
        "stop",
        "An administrator disconnected you.",
    ),
    CloseCode(ROOM_CLOSED, "room_closed", "stop", "An administrator closed this room."),
)
BY_CODE = {entry.code: entry for entry in TABLE}


def then_for(code: int) -> Then:
    """What a client does after a close with this code; unknown codes resume."""
    entry = BY_CODE.get(code)
    return "resume" if entry is None else entry.then


def as_javascript() -> str:
    """The table as an ES module, for the web client."""
    rows = ",\n".join(
        f"  {e.code}: " + json.dumps({"name": e.name, "then": e.then, "message": e.message})
        for e in TABLE
    )
    return (
        "// Rendered by the server from chatd/closecodes.py: the one table of close codes.\n"
        f"export const CLOSE_CODES = {{\n{rows},\n}};\n"
    )
