"""The Store protocol: everything chatd keeps, behind one async interface.

Both backends run their drivers in worker threads; callers only see async
methods and ChatdError subclasses (never a driver exception).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chatd.errors import ChatdError
from chatd.model import Appended, Draft, Message, Room, RoomId, User, UserId, Visibility


class Store(Protocol):
    async def ping(self, timeout_s: float) -> None:
        """Raise StoreUnavailable unless the database answers within timeout_s."""

    async def aclose(self) -> None: ...

    # users and tokens
    async def create_user(self, email: str, password_hash: str) -> User: ...
    async def user_by_id(self, user_id: UserId) -> User | None: ...
    async def credentials(self, email: str) -> tuple[User, str] | None:
        """The user with this email (in any case) and their password hash."""

    async def add_refresh_token(
        self, user_id: UserId, token_hash: str, family: str, expires_at: datetime
    ) -> None: ...
    async def use_refresh_token(
        self, token_hash: str, now: datetime, replay_grace_s: float
    ) -> tuple[UserId, str] | None:
        """Spend a refresh token once: (user, family) if it was live, else None.

        Presenting a token spent more than replay_grace_s ago revokes
        its whole family, since only a thief or a replaying client would do
        that; a quick second try (a client that lost the answer) is only refused.
        """

    async def revoke_refresh_family(self, token_hash: str) -> bool:
        """Revoke the login this refresh token belongs to (its whole family), whatever
        state the token is in; False if no such token was ever issued."""

    async def change_password(self, user_id: UserId, password_hash: str, now: datetime) -> None:
        """Set a new password hash, revoke every refresh token of the user and refuse
        their access tokens issued before `now` (see token_cutoffs). NotFound if no user."""

    async def token_cutoffs(self, since: datetime) -> dict[UserId, datetime]:
        """Users whose tokens were cut off (a password change) after `since`, and when."""

    # rooms
    async def create_room(
        self, owner_id: UserId, name: str, visibility: Visibility, now: datetime
    ) -> Room: ...
    async def room(self, room_id: RoomId) -> Room | None: ...
    async def rooms_visible_to(
        self, user_id: UserId, after: RoomId | None, limit: int
    ) -> list[Room]: ...
    async def update_room(
        self, room_id: RoomId, name: str | None, visibility: Visibility | None
    ) -> Room: ...
    async def delete_room(self, room_id: RoomId) -> None: ...
    async def is_member(self, room_id: RoomId, user_id: UserId) -> bool: ...
    async def add_member(self, room_id: RoomId, user_id: UserId, now: datetime) -> None: ...
    async def remove_member(self, room_id: RoomId, user_id: UserId) -> None: ...
    async def members(self, room_id: RoomId) -> list[UserId]: ...

    # messages
    async def append(self, drafts: Sequence[Draft], now: datetime) -> list[Appended | ChatdError]:
        """Commit a batch in one transaction; one outcome per draft, in order.

        Each room's new messages take the next ids of its sequence with no
        hole. A draft whose (room, user, client_id) was stored before comes
        back as the original with fresh=False and consumes no id.
        """

    async def messages_before(
        self, room_id: RoomId, before: int | None, limit: int
    ) -> list[Message]:
        """The `limit` newest messages with id < before (all if None), oldest first."""

    async def messages_after(self, room_id: RoomId, after: int, limit: int) -> list[Message]:
        """Up to `limit` messages with id > after, oldest first."""

    async def last_message_id(self, room_id: RoomId) -> int: ...
