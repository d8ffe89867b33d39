"""REST calls to a chatd server, for the command-line client.

Tokens live in memory only. The access token is refreshed shortly before it
expires; refresh tokens are single use and a replayed one revokes the whole
login, so refreshes are serialised by a lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import trio

DEFAULT_URL = "http://127.0.0.1:8080"
REQUEST_TIMEOUT_S = 10.0
REFRESH_MARGIN_S = 60.0
PAGE_LIMIT = 200


class ApiError(Exception):
    """The server said no (status, code, message), or could not be reached (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message if self.status == 0 else f"{self.message} ({self.code})"


@dataclass(frozen=True, slots=True)
class ReactionCount:
    emoji: str
    count: int
    me: bool


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: int
    room_id: int
    user_id: int
    text: str
    created_at: datetime
    client_id: str | None = None
    edited_at: datetime | None = None
    deleted: bool = False
    mentions: tuple[int, ...] = ()
    reactions: tuple[ReactionCount, ...] = ()  # in history only

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ChatMessage:
        edited_at = body.get("edited_at")
        return cls(
            id=int(body["id"]),
            room_id=int(body["room_id"]),
            user_id=int(body["user_id"]),
            text=str(body["text"]),
            created_at=datetime.fromisoformat(body["created_at"]),
            client_id=body.get("client_id"),
            edited_at=datetime.fromisoformat(edited_at) if edited_at else None,
            deleted=body.get("deleted") is True,
            mentions=tuple(int(user_id) for user_id in body.get("mentions") or ()),
            reactions=tuple(
                ReactionCount(str(r["emoji"]), int(r["count"]), r.get("me") is True)
                for r in body.get("reactions") or ()
            ),
        )


@dataclass(frozen=True, slots=True)
class Highlighted:
    """A search match: the message, and its text (or a window of it) in pieces,
    each (text, whether the query matched it)."""

    message: ChatMessage
    pieces: tuple[tuple[str, bool], ...]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Highlighted:
        pieces = tuple((str(p["text"]), p.get("match") is True) for p in body["highlight"])
        return cls(ChatMessage.from_json(body["message"]), pieces)


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float  # trio.current_time()


class ChatApi:
    def __init__(self, base_url: str = DEFAULT_URL) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=REQUEST_TIMEOUT_S)
        self._tokens: Tokens | None = None
        self._refresh_lock = trio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ChatApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- accounts

    async def register(self, email: str, password: str) -> dict[str, Any]:
        body = {"email": email, "password": password}
        return await self._call("POST", "/api/v1/auth/register", body, auth=False)  # type: ignore[no-any-return]

    async def login(self, email: str, password: str) -> None:
        body = {"email": email, "password": password}
        self._keep(await self._call("POST", "/api/v1/auth/login", body, auth=False))

    async def me(self) -> dict[str, Any]:
        return await self._call("GET", "/api/v1/users/me")  # type: ignore[no-any-return]

    async def users_by_handle(self, prefix: str) -> list[dict[str, Any]]:
        """Up to 20 `{id, handle}` whose handle starts with prefix."""
        page = await self._call("GET", "/api/v1/users", params={"handle": prefix})
        return list(page["items"])

    async def access_token(self) -> str:
        """A current access token, refreshed first when it is about to expire."""
        if self._tokens is None:
            raise ApiError(401, "unauthorized", "not logged in")
        if trio.current_time() > self._tokens.expires_at - REFRESH_MARGIN_S:
            await self.refresh()
        return self._tokens.access_token

    async def refresh(self) -> None:
        tokens = self._tokens
        if tokens is None:
            raise ApiError(401, "unauthorized", "not logged in")
        async with self._refresh_lock:
            if self._tokens is not tokens:
                return  # someone else refreshed while we waited
            body = {"refresh_token": tokens.refresh_token}
            self._keep(await self._call("POST", "/api/v1/auth/refresh", body, auth=False))

    # -- rooms

    async def rooms(self, *, kind: str | None = None, joined: bool = False) -> list[dict[str, Any]]:
        """Every room this user can see (`joined`: belongs to), walking all pages."""
        rooms: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if kind is not None:
            params["kind"] = kind
        if joined:
            params["joined"] = "true"
        while True:
            page = await self._call("GET", "/api/v1/rooms", params=params)
            rooms.extend(page["items"])
            if not page["next"]:
                return rooms
            params["cursor"] = page["next"]

    async def room(self, room_id: int) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/rooms/{room_id}")  # type: ignore[no-any-return]

    async def create_room(self, name: str, visibility: str = "public") -> dict[str, Any]:
        body = {"name": name, "visibility": visibility}
        return await self._call("POST", "/api/v1/rooms", body)  # type: ignore[no-any-return]

    async def members(self, room_id: int) -> list[dict[str, Any]]:
        """`{user_id, handle, role, joined_at}` for each member."""
        page = await self._call("GET", f"/api/v1/rooms/{room_id}/members")
        return list(page["items"])

    async def open_dm(self, user_id: int) -> dict[str, Any]:
        """The DM between this user and user_id, made if there was none."""
        return await self._call("POST", "/api/v1/dms", {"user_id": user_id})  # type: ignore[no-any-return]

    async def mark_read(self, room_id: int, message_id: int) -> dict[str, Any]:
        body = {"message_id": message_id}
        return await self._call("POST", f"/api/v1/rooms/{room_id}/read", body)  # type: ignore[no-any-return]

    async def search(
        self, query: str, *, room_id: int | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Highlighted], str | None]:
        """One page of messages matching query, newest first, and the next cursor."""
        params: dict[str, Any] = {"q": query, "limit": limit}
        if room_id is not None:
            params["room_id"] = room_id
        if cursor is not None:
            params["cursor"] = cursor
        page = await self._call("GET", "/api/v1/search", params=params)
        return [Highlighted.from_json(item) for item in page["items"]], page["next"]

    async def history(
        self, room_id: int, *, limit: int = 50, before: int | None = None
    ) -> tuple[list[ChatMessage], int | None]:
        """Up to `limit` messages older than `before`, oldest first, and the next `before`."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        page = await self._call("GET", f"/api/v1/rooms/{room_id}/messages", params=params)
        return [ChatMessage.from_json(item) for item in page["items"]], page["next"]

    async def notifications(self, *, unread_only: bool, limit: int = 50) -> dict[str, Any]:
        """{items, next, unread_count}: your notifications, newest first."""
        params: dict[str, Any] = {"limit": limit, "unread": "true" if unread_only else "false"}
        return await self._call("GET", "/api/v1/notifications", params=params)  # type: ignore[no-any-return]

    async def mark_notifications_read(self, *, up_to: int) -> int:
        """Mark every notification up to this id read; how many are left unread."""
        body = {"up_to": up_to}
        reply = await self._call("POST", "/api/v1/notifications/read", body)
        return int(reply["unread_count"])

    def ws_url(self, room_id: int, *, since: int | None) -> str:
        scheme, _, rest = self.base_url.partition("://")
        ws_scheme = "wss" if scheme == "https" else "ws"
        query = "" if since is None else f"?since={since}"
        return f"{ws_scheme}://{rest}/ws/rooms/{room_id}{query}"

    # -- plumbing

    def _keep(self, pair: dict[str, Any]) -> None:
        self._tokens = Tokens(
            pair["access_token"],
            pair["refresh_token"],
            trio.current_time() + float(pair["expires_in"]),
        )

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        retried: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {await self.access_token()}"
        try:
            reply = await self._http.request(
                method, path, json=body, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self.base_url}: {exc}") from None
        if reply.status_code == 401 and auth and not retried:
            await self.refresh()  # refused before its time (a server restart): once more
            return await self._call(method, path, body, params=params, auth=auth, retried=True)
        if reply.status_code == 204:
            return None
        try:
            data = reply.json()
        except ValueError:
            data = None
        if reply.is_error:
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict):
                raise ApiError(reply.status_code, str(error.get("code")), str(error.get("message")))
            raise ApiError(
                reply.status_code, f"http_{reply.status_code}", f"HTTP {reply.status_code}"
            )
        return data
