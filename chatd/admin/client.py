"""The admin API's calls, for `chatd admin`: the client's API with a few more routes."""

from __future__ import annotations

from typing import Any

from chatd.client.api import ChatApi

ADMIN = "/api/v1/admin"


class AdminApi(ChatApi):
    async def instances(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", f"{ADMIN}/instances"))["items"])

    async def connections(
        self, *, room_id: int | None = None, user_id: int | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in (("room_id", room_id), ("user_id", user_id)) if v is not None}
        return await self._call("GET", f"{ADMIN}/connections", params=params)  # type: ignore[no-any-return]

    async def disconnect(self, user_id: int, *, revoke_sessions: bool) -> dict[str, Any]:
        body = {"revoke_sessions": revoke_sessions}
        return await self._call("POST", f"{ADMIN}/users/{user_id}/disconnect", body)  # type: ignore[no-any-return]

    async def room_action(self, room_id: int, action: str) -> dict[str, Any]:
        """close or reopen: the room as it now is."""
        return await self._call("POST", f"{ADMIN}/rooms/{room_id}/{action}")  # type: ignore[no-any-return]

    async def purge_room(self, room_id: int) -> dict[str, Any]:
        return await self._call("POST", f"{ADMIN}/rooms/{room_id}/purge")  # type: ignore[no-any-return]

    async def set_admin(self, user_id: int, admin: bool) -> dict[str, Any]:
        return await self._call("POST", f"{ADMIN}/users/{user_id}/admin", {"admin": admin})  # type: ignore[no-any-return]

    async def audit(self, *, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` entries, newest first (several pages if need be)."""
        entries: list[dict[str, Any]] = []
        before = None
        while len(entries) < limit:
            params: dict[str, Any] = {"limit": min(200, limit - len(entries))}
            if before is not None:
                params["before"] = before
            page = await self._call("GET", f"{ADMIN}/audit", params=params)
            entries += page["items"]
            before = page["next"]
            if before is None:
                break
        return entries
