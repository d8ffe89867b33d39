"""The ChatdError family: every failure a client can see has a code and an HTTP status.

`store/` maps driver errors to these, the transport renders them once as
`{"error": {"code", "message"}}` (REST) or an `error` frame (WebSocket).
"""

from __future__ import annotations


class ChatdError(Exception):
    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


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
