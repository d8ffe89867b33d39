"""The frame a new notification is pushed as, to every live socket of its user."""

from __future__ import annotations

import json

from chatd.model import Notification

FRAME_TYPE = "notification"


def notification_frame(notification: Notification) -> str:
    """{"type": "notification", "payload": {...the notification...}} as JSON text, made
    once and sent as it is to each of the user's sockets (docs/protocol.md)."""
    return json.dumps(
        {"type": FRAME_TYPE, "payload": notification.to_json()},
        ensure_ascii=False,
        separators=(",", ":"),
    )
