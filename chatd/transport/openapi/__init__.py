"""The OpenAPI 3.1 description of the REST API, served at /api/v1/openapi.json.

Kept by hand beside the routes, one module per area (accounts, rooms, messages);
tests check that both list the same operations and that real answers match these
schemas, and schemathesis fuzzes the server against it.
"""

from __future__ import annotations

from typing import Any

import chatd
from chatd.transport.openapi import accounts, admin, messages, notifications, rooms
from chatd.transport.openapi.common import ERROR_SCHEMAS, error_responses
from chatd.transport.openapi.rooms import DEFAULT_GROUP_DM_MAX, ROOM_NAME_PATTERN

__all__ = ["ROOM_NAME_PATTERN", "document"]


def document(group_dm_max: int = DEFAULT_GROUP_DM_MAX) -> dict[str, Any]:
    """The document; `group_dm_max` is CHATD_GROUP_DM_MAX."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatd",
            "version": chatd.__version__,
            "description": (
                "Real-time chat. REST for accounts, rooms, DMs, history, edits, reactions, "
                "read state and search; live events over WebSocket at /ws/rooms/{room_id} "
                "(docs/protocol.md has the frames)."
            ),
        },
        "security": [{"bearer": []}],
        "paths": accounts.paths()
        | rooms.paths()
        | messages.paths()
        | notifications.paths()
        | admin.paths(),
        "components": {
            "schemas": ERROR_SCHEMAS
            | accounts.SCHEMAS
            | rooms.schemas(group_dm_max)
            | messages.schemas()
            | notifications.schemas()
            | admin.schemas(),
            "responses": error_responses(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
