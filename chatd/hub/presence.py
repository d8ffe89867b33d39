"""Who is online in each room, across instances, told to members as it changes.

Each instance records its own connections in a shared PresenceBackend as
entries that expire unless refreshed (a heartbeat every ttl/3), so the users
of a crashed instance drop out by themselves within about ttl. Members are
told of changes by diffing what the backend says against what they were
told last, at most once per coalescing window per room: a user who drops
and comes back within a window (a reconnect storm) makes no noise at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import trio

from chatd.model import RoomId, UserId

log = logging.getLogger(__name__)

Change = Callable[[RoomId, UserId, str], None]  # (room, user, "online" | "offline")


class PresenceBackend(Protocol):
    async def refresh(self, entries: list[tuple[RoomId, UserId]], expires_at: float) -> None:
        """Mark these (room, user) pairs of this instance online until expires_at."""

    async def remove(self, room_id: RoomId, user_id: UserId) -> None:
        """This instance no longer has the user in the room."""

    async def online(self, room_id: RoomId, now: float) -> set[UserId]:
        """Users with an unexpired entry from any instance."""

    async def remove_user(self, user_id: UserId) -> None:
        """This instance no longer has the user in any room (refresh() marks users online
        anywhere as it marks them online in a room)."""

    async def online_anywhere(self, user_ids: set[UserId], now: float) -> set[UserId]:
        """Those of user_ids with a live socket in any room, on any instance."""


def _not_running(room_id: RoomId, user_id: UserId, status: str) -> None:
    raise RuntimeError("the presence tracker is not running")


class Presence:
    def __init__(
        self,
        backend: PresenceBackend,
        *,
        ttl_s: float,
        announce: Callable[[RoomId], None],
        clock: Callable[[], float],
        coalesce_s: float = 0.5,
    ) -> None:
        self._backend = backend
        self._ttl_s = ttl_s
        self._on_change: Change = _not_running
        self._announce = announce  # tell the other instances to look at a room again
        self._clock = clock  # the backend's time: wall clock when instances share it
        self._coalesce_s = coalesce_s
        self._connections: Counter[tuple[RoomId, UserId]] = Counter()
        self._per_room: Counter[RoomId] = Counter()
        self._per_user: Counter[UserId] = Counter()  # one entry per connected user
        self._gone: set[tuple[RoomId, UserId]] = set()
        self._told: dict[RoomId, set[UserId]] = {}
        self._diffed: set[RoomId] = set()  # rooms whose _told came from the backend
        self._joiner_views: dict[RoomId, tuple[float, set[UserId]]] = {}
        self._dirty: set[RoomId] = set()
        self._wake = trio.Event()

    # -- called by the hub (never wait) ------------------------------------

    def joined(self, room_id: RoomId, user_id: UserId) -> None:
        self._connections[room_id, user_id] += 1
        self._per_room[room_id] += 1
        self._per_user[user_id] += 1
        self._told.setdefault(room_id, set())
        self._gone.discard((room_id, user_id))
        self._touch(room_id)

    def left(self, room_id: RoomId, user_id: UserId) -> None:
        key = (room_id, user_id)
        self._connections[key] -= 1
        self._per_room[room_id] -= 1
        self._per_user[user_id] -= 1
        if self._per_user[user_id] <= 0:
            del self._per_user[user_id]
        if self._connections[key] <= 0:
            del self._connections[key]
            self._gone.add(key)
        self._touch(room_id)

    def hint(self, room_id: RoomId) -> None:
        """Another instance changed this room's presence."""
        if room_id in self._told:
            self._dirty.add(room_id)
            self._wake.set()

    async def online(self, room_id: RoomId) -> set[UserId]:
        return await self._backend.online(room_id, self._clock())

    async def online_anywhere(self, user_ids: set[UserId]) -> set[UserId]:
        """Those of user_ids with a live socket anywhere (any room, any instance)."""
        return await self._backend.online_anywhere(user_ids, self._clock())

    async def online_for_joiner(self, room_id: RoomId) -> set[UserId]:
        """Who a new local member is told is online, without a backend round trip per
        connect: what this instance last told the room's other members, or a view of the
        backend's at most one coalescing window old (a burst of joiners shares it). The
        next sweep's changes reach the joiner like everyone else."""
        if room_id in self._diffed:
            return set(self._told[room_id])
        view = self._joiner_views.get(room_id)
        if view is not None and trio.current_time() - view[0] < self._coalesce_s:
            return set(view[1])
        online = await self.online(room_id)
        if room_id in self._told:  # still has local members
            self._joiner_views[room_id] = (trio.current_time(), online)
        return set(online)

    # -- the task ----------------------------------------------------------

    async def run(
        self, on_change: Change, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep this instance's entries fresh and tell `on_change` who came and went."""
        self._on_change = on_change
        heartbeat_s = self._ttl_s / 3
        next_beat = trio.current_time() + heartbeat_s
        task_status.started()
        while True:
            with trio.move_on_at(next_beat):
                await self._wake.wait()
                await trio.sleep(self._coalesce_s)  # let a burst of changes settle
            self._wake = trio.Event()
            beat = trio.current_time() >= next_beat
            if beat:
                next_beat = trio.current_time() + heartbeat_s
            try:
                await self._sweep(beat)
            except Exception as exc:  # the backend is away: try again next beat
                log.warning("presence: sweep failed: %s", exc)

    async def _sweep(self, beat: bool) -> None:
        changed: set[RoomId] = set()
        gone, self._gone = self._gone, set()
        for room_id, user_id in gone:
            if (room_id, user_id) not in self._connections:
                await self._backend.remove(room_id, user_id)
                changed.add(room_id)
            if user_id not in self._per_user:
                await self._backend.remove_user(user_id)
        fresh = [key for key in self._connections if key[1] not in self._told.get(key[0], ())]
        if beat or fresh:
            # Between heartbeats only the new entries are written: a connect storm of
            # thousands would otherwise rewrite every entry on every sweep.
            entries = list(self._connections) if beat else fresh
            await self._backend.refresh(entries, self._clock() + self._ttl_s)
            changed.update(room_id for room_id, _ in fresh)
        for room_id in changed:
            self._announce(room_id)
        rooms = set(self._told) if beat else self._dirty | changed
        self._dirty = set()
        for room_id in rooms:
            await self._diff(room_id)

    async def _diff(self, room_id: RoomId) -> None:
        if room_id not in self._told:
            return
        now_online = await self._backend.online(room_id, self._clock())
        if room_id not in self._told:  # the last local member left meanwhile
            return
        told = self._told[room_id]
        for user_id in sorted(now_online - told):
            self._on_change(room_id, user_id, "online")
        for user_id in sorted(told - now_online):
            self._on_change(room_id, user_id, "offline")
        self._told[room_id] = now_online
        self._diffed.add(room_id)
        self._joiner_views.pop(room_id, None)

    def _touch(self, room_id: RoomId) -> None:
        self._dirty.add(room_id)
        self._wake.set()
        if self._per_room[room_id] <= 0:
            del self._per_room[room_id]
            self._told.pop(room_id, None)  # nobody here to tell any more
            self._diffed.discard(room_id)
            self._joiner_views.pop(room_id, None)


class LocalPresence:
    """The single-instance backend: a dict, with the same expiry rules."""

    def __init__(self) -> None:
        self._entries: dict[RoomId, dict[UserId, float]] = {}
        self._users: dict[UserId, float] = {}

    async def refresh(self, entries: list[tuple[RoomId, UserId]], expires_at: float) -> None:
        for room_id, user_id in entries:
            self._entries.setdefault(room_id, {})[user_id] = expires_at
            self._users[user_id] = expires_at

    async def remove(self, room_id: RoomId, user_id: UserId) -> None:
        users = self._entries.get(room_id, {})
        users.pop(user_id, None)
        if not users:
            self._entries.pop(room_id, None)

    async def online(self, room_id: RoomId, now: float) -> set[UserId]:
        users = self._entries.get(room_id, {})
        for user_id in [u for u, expires in users.items() if expires <= now]:
            del users[user_id]
        return set(users)

    async def remove_user(self, user_id: UserId) -> None:
        self._users.pop(user_id, None)

    async def online_anywhere(self, user_ids: set[UserId], now: float) -> set[UserId]:
        users = self._users
        return {u for u in user_ids if users.get(u, now) > now}
