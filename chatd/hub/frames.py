"""Server-to-client WebSocket frames, encoded once and shared by every recipient."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatd.model import Message


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An encoded frame; `message_id` is set for room messages (used to skip duplicates)."""

    text: str
    message_id: int | None = None


def _encode(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "payload": payload}, ensure_ascii=False, separators=(",", ":"))


def message_frame(message: Message) -> Outgoing:
    return Outgoing(_encode("message", message.to_json()), message.id)


def echo_frame(message: Message) -> Outgoing:
    """The original message again, for the sender of a duplicate: never skipped."""
    return Outgoing(_encode("message", message.to_json()))


def typing_frame(user_id: int) -> Outgoing:
    return Outgoing(_encode("typing", {"user_id": user_id}))


def presence_frame(user_id: int, status: str) -> Outgoing:
    return Outgoing(_encode("presence", {"user_id": user_id, "status": status}))


def error_frame(code: str, text: str, **extra: Any) -> Outgoing:
    return Outgoing(_encode("error", {"code": code, "message": text, **extra}))
