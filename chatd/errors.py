"""The ChatdError family: every failure a client can see has a code and an HTTP status.

`store/` maps driver errors to these, the transport renders them once as
`{"error": {"code", "message"}}` (REST) or an `error` frame (WebSocket).
"""

from __future__ import annotations

import math


class ChatdError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body (Retry-After, say)."""
        return {}


class InvalidJson(ChatdError):
    code, status = "invalid_json", 400


class ValidationFailed(ChatdError):
    code, status = "validation_error", 422


class Unauthorized(ChatdError):
    code, status = "unauthorized", 401


class Forbidden(ChatdError):
    code, status = "forbidden", 403


class NotFound(ChatdError):
    code, status = "not_found", 404


class Conflict(ChatdError):
    code, status = "conflict", 409


class StoreUnavailable(ChatdError):
    code, status = "store_unavailable", 503


class ShuttingDown(ChatdError):
    code, status = "shutting_down", 503


class PresenceUnavailable(ChatdError):
    code, status = "presence_unavailable", 503


class WrongPassword(Forbidden):
    """The current password given to change it is not the user's."""

    code = "wrong_password"


class TokenRevoked(Unauthorized):
    """An access token issued before the user's password change."""


class RateLimited(ChatdError):
    code, status = "rate_limited", 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        # Whole seconds (RFC 9110), rounded up: a client that waits that long gets in.
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class AlreadyMember(Conflict):
    code = "already_member"


class AlreadyInvited(Conflict):
    code = "already_invited"


class OwnerCannotLeave(Conflict):
    """The owner hands the room to another member (POST /rooms/{id}/owner) before leaving."""

    code = "owner_cannot_leave"


class CannotLeaveDm(Conflict):
    code = "cannot_leave_dm"


class MessageDeleted(Conflict):
    code = "message_deleted"


class TooManyReactions(Conflict):
    code = "too_many_reactions"


class RoomClosed(ChatdError):
    """An administrator closed the room: no new connections, no new messages or events;
    its history stays readable (docs/admin.md)."""

    code, status = "room_closed", 423
