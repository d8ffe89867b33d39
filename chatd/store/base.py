"""The Store protocol: everything chatd keeps, behind one async interface.

Both backends run their drivers in worker threads; callers only see async
methods and ChatdError subclasses (never a driver exception).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from chatd.errors import ChatdError
from chatd.events.event import Event
from chatd.model import (
    Appended,
    AuditEntry,
    Draft,
    Invite,
    Membership,
    Message,
    MessageId,
    Notification,
    Reaction,
    Role,
    Room,
    RoomId,
    RoomKind,
    RoomMember,
    User,
    UserId,
    Visibility,
)
from chatd.store.notifications import NotificationDraft


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

    # rooms (store/rooms.py)
    async def create_room(
        self, owner_id: UserId, name: str, visibility: Visibility, now: datetime
    ) -> Room: ...
    async def room(self, room_id: RoomId) -> Room | None: ...
    async def room_for(
        self, room_id: RoomId, user_id: UserId
    ) -> tuple[Room, Membership | None] | None:
        """The room and the user's membership of it (None if not a member)."""

    async def rooms_visible_to(
        self,
        user_id: UserId,
        after: RoomId | None,
        limit: int,
        *,
        kind: RoomKind | None = None,
        joined: bool = False,
    ) -> list[tuple[Room, Membership | None]]: ...
    # Each change below records its event (docs/events.md); `actor` is who made it.
    async def update_room(
        self,
        room_id: RoomId,
        name: str | None,
        visibility: Visibility | None,
        *,
        actor: UserId | None = None,
    ) -> Room: ...
    async def delete_room(self, room_id: RoomId, *, actor: UserId | None = None) -> None: ...
    async def open_dm(
        self, user_ids: Sequence[UserId], now: datetime, *, actor: UserId | None = None
    ) -> tuple[Room, bool, list[UserId]]:
        """The one DM of exactly these people, created if need be: (room, created, who
        is back in it having left it)."""

    async def is_member(self, room_id: RoomId, user_id: UserId) -> bool: ...
    async def role_of(self, room_id: RoomId, user_id: UserId) -> Role | None: ...
    async def add_member(
        self,
        room_id: RoomId,
        user_id: UserId,
        now: datetime,
        role: Role = "member",
        *,
        actor: UserId | None = None,
    ) -> bool:
        """True if the user was not a member before. `actor` None: they joined."""

    async def remove_member(
        self, room_id: RoomId, user_id: UserId, *, actor: UserId | None = None
    ) -> bool:
        """True if they were a member. `actor` None: they left."""

    async def members(self, room_id: RoomId) -> list[UserId]: ...
    async def member_list(self, room_id: RoomId) -> list[RoomMember]: ...
    async def member_count(self, room_id: RoomId) -> int: ...
    async def set_role(
        self, room_id: RoomId, user_id: UserId, role: Role, *, actor: UserId | None = None
    ) -> RoomMember: ...
    async def transfer_owner(
        self, room_id: RoomId, new_owner: UserId, *, actor: UserId | None = None
    ) -> Room: ...
    async def invite(
        self, room_id: RoomId, user_id: UserId, invited_by: UserId, now: datetime
    ) -> Invite: ...
    async def invite_of(self, room_id: RoomId, user_id: UserId) -> Invite | None: ...
    async def room_invites(self, room_id: RoomId) -> list[Invite]: ...
    async def user_invites(self, user_id: UserId) -> list[Invite]: ...
    async def withdraw_invite(self, room_id: RoomId, user_id: UserId) -> bool: ...
    async def accept_invite(self, room_id: RoomId, user_id: UserId, now: datetime) -> bool: ...
    async def mark_read(
        self, room_id: RoomId, user_id: UserId, message_id: int
    ) -> tuple[Membership, bool]:
        """Move the member's watermark forward, never back: (membership, whether it moved).
        NotFound if not a member."""

    async def reads(self, room_id: RoomId) -> list[tuple[UserId, int]]: ...
    async def users_by_handle(self, prefix: str, limit: int) -> list[User]: ...
    async def existing_users(self, user_ids: Sequence[UserId]) -> set[UserId]: ...

    # events about messages (store/events.py)
    async def edit_message(
        self, room_id: RoomId, message_id: MessageId, editor: UserId, text: str, now: datetime
    ) -> tuple[Message, Message]:
        """(the message as it now is, the edit event)."""

    async def delete_message(
        self, room_id: RoomId, message_id: MessageId, by: UserId, any_author: bool, now: datetime
    ) -> Message | None:
        """The deletion event, or None if it was deleted already."""

    async def react(
        self,
        room_id: RoomId,
        message_id: MessageId,
        user_id: UserId,
        emoji: str,
        add: bool,
        now: datetime,
    ) -> tuple[Reaction, Message | None]: ...
    async def reactions(
        self, room_id: RoomId, first: int, last: int, viewer: UserId
    ) -> dict[MessageId, list[Reaction]]: ...

    # search (store/search.py)
    async def search_messages(
        self,
        user_id: UserId,
        terms: list[str],
        room_id: RoomId | None,
        before: tuple[str, int, int] | None,
        limit: int,
    ) -> list[Message]:
        """Messages (not events, not tombstones) holding every term as a word or a word's
        start, in rooms the user may read (or only room_id), newest first, after the key
        `before` = (created_at ISO 8601, room_id, id) of the last one shown."""

    # notifications and the stream's consumers (store/notifications.py)
    async def claim_consumer(
        self, name: str, holder: str, lease_s: float, now: datetime
    ) -> int | None:
        """Take or renew consumer `name`'s lease: its position, or None while another
        holder's lease runs."""

    async def release_consumer(self, name: str, holder: str) -> None: ...
    async def consumer_position(self, name: str) -> int: ...
    async def set_consumer_position(self, name: str, position: int) -> None: ...
    async def record_notifications(
        self,
        consumer: str,
        holder: str,
        position: int,
        drafts: Sequence[NotificationDraft],
        lease_s: float,
        now: datetime,
    ) -> list[Notification]:
        """The drafts not recorded before whose user may still read the room, and the
        consumer's new position, in one transaction; LeaseLost if the lease is gone."""

    async def notifications_for(
        self, user_id: UserId, *, unread_only: bool, before: int | None, limit: int
    ) -> list[Notification]: ...
    async def unread_notifications(self, user_id: UserId) -> int: ...
    async def mark_notifications_read(
        self,
        user_id: UserId,
        *,
        ids: Sequence[int] = (),
        up_to: int | None = None,
        now: datetime,
    ) -> int:
        """Mark the user's own notifications read; the unread count after."""

    # administration (store/admin.py): each change writes its audit row in its transaction
    async def is_admin(self, user_id: UserId) -> bool: ...
    async def set_admin(self, user_id: UserId, admin: bool, audit: AuditEntry) -> bool:
        """Grant or revoke; whether that changed anything. NotFound if no such user."""

    async def make_admin(
        self, email: str, password_hash: str | None, audit: AuditEntry
    ) -> tuple[User, bool]:
        """Promote the user with this email, creating them first if need be (and a
        password hash is given): (user, created)."""

    async def admin_disconnect(
        self, user_id: UserId, revoke_sessions: bool, now: datetime, audit: AuditEntry
    ) -> None:
        """Audit a disconnect; revoke_sessions also cuts off every token issued before now."""

    async def close_room(self, room_id: RoomId, now: datetime, audit: AuditEntry) -> Room: ...
    async def reopen_room(self, room_id: RoomId, now: datetime, audit: AuditEntry) -> Room: ...
    async def purge_room(
        self, room_id: RoomId, now: datetime, audit: AuditEntry
    ) -> tuple[int, int]:
        """Delete the room's messages and events: (messages deleted, last id purged)."""

    async def audit_log(self, before: int | None, limit: int) -> list[AuditEntry]: ...

    # the event stream's outbox (store/outbox.py; the relay: chatd/events/relay.py)
    def on_events_committed(self, hook: Callable[[], None] | None) -> None:
        """Call `hook` in the event loop after each commit that wrote an event."""

    async def publish_events(
        self, publish: Callable[[list[Event]], None], limit: int, now: datetime
    ) -> int:
        """In one transaction: number the next `limit` unpublished events (ids go on from
        the last with no hole), call the blocking `publish` with them, record the batch as
        published. If `publish` raises, nothing is recorded and the next call numbers the
        same events the same way. How many were published; 0 also while another relay is
        at it."""

    async def number_events(self, limit: int, now: datetime) -> tuple[int, int]:
        """publish_events() with nowhere to publish (no broker): the events are numbered
        without being read. (How many were numbered, the newest id then.)"""

    async def events_after(self, after: int, limit: int) -> list[Event]:
        """Published events with id > after, in id order (a consumer's replay)."""

    async def last_event_id(self) -> int:
        """The newest published event's id; 0 before the first."""

    async def prune_events(self, published_before: datetime, limit: int = 10_000) -> int:
        """Delete up to `limit` of the oldest events published before then (never the
        newest); how many went."""

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """(events not yet published, when the oldest of them was written)."""

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
        """The `limit` newest messages (not events) with id < before (all if None),
        oldest first, as they now are."""

    async def messages_after(self, room_id: RoomId, after: int, limit: int) -> list[Message]:
        """Up to `limit` entries of the sequence (messages and events) with id > after,
        oldest first: what a live member would have been sent."""

    async def last_message_id(self, room_id: RoomId) -> int: ...
