"""The notifications consumer: follow message.created events, record, push.

Exactly-once effect. The consumer's position (the last event id it processed) is
stored in the same transaction as the notifications a batch produced; it resumes
from the stored position after a crash or a restart, and the feed (chatd/events/
feed.py) delivers every event after it once, in id order. An event processed twice
anyway (a position moved back by hand) records nothing twice: notifications are
unique per user, event and kind. Pushes follow the commit, so a crash between the
two loses a push, never a notification: the client finds it in GET /notifications.

One replica at a time. Every process playing the notifications role runs this task;
each tries to take a lease on the consumer's row, the one that gets it consumes and
renews it, the others stand by and try again every LEASE_S / 3. Each batch's commit
checks the lease: a replica that stalled past its lease writes nothing (LeaseLost)
and goes back to standing by.

Batches: the feed is pumped into a bounded channel; each batch is what is waiting,
up to BATCH_MAX events, in one transaction. A slow database slows the pump, and so
the feed (the broker's delivery), rather than filling memory. Most messages notify
nobody, and a flood of them must cost the role little: once caught up it lets events
gather for GATHER_S, passes over messages that mention nobody in rooms known not to
be DMs without parsing them, and commits a position that recorded nothing at most
every POSITION_EVERY_S.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, suppress
from datetime import UTC, datetime

import trio
from opentelemetry.trace import SpanKind

from chatd.bus.base import Bus
from chatd.errors import ChatdError, PresenceUnavailable, StoreUnavailable
from chatd.events.event import Event
from chatd.hub.presence import Presence
from chatd.metrics import Metrics
from chatd.model import Notification, Room, RoomId, UserEvent, UserId
from chatd.notifications.frames import notification_frame
from chatd.notifications.recipients import dm_recipients, drafts_for, message_of
from chatd.store import Store
from chatd.store.notifications import LeaseLost, NotificationDraft
from chatd.tracing import TRACE
from chatd.tracing.events import EventSpans

log = logging.getLogger(__name__)

CONSUMER = "notifications"  # its consumer_positions row, and its durable queue's name
BINDING_KEYS = ("room.*.message.created",)
LEASE_S = 15.0
BATCH_MAX = 64
RETRY_MAX_S = 10.0
# Rooms known not to be DMs (a room never becomes one): no lookup for their messages.
ROOM_CACHE_MAX = 10_000
MENTIONS_KEY = '"mentions":'  # in a message's JSON when it mentions anyone
# A batch that records nothing commits its position only if the last commit is this old.
POSITION_EVERY_S = 1.0
# Once caught up, wait this long before the next batch: notifications come this much
# later, and a busy stream costs a few reads a second rather than one per commit.
GATHER_S = 0.2

# Events after a position, in id order, each once, for as long as the block lasts:
# chatd.events.feed.follow, bound to this consumer's keys and queue.
Follow = Callable[[int], AbstractAsyncContextManager[AsyncIterator[Event]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class NotificationsConsumer:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        presence: Presence,
        metrics: Metrics,
        follow: Follow,
        *,
        holder: str,
    ) -> None:
        self._store = store
        self._bus = bus
        self._presence = presence
        self._metrics = metrics
        self._follow = follow
        self._holder = holder  # this replica, in the lease
        self._position = 0
        self._committed_position = 0  # the position the store has
        self._committed_at = -POSITION_EVERY_S  # trio time of the last committed batch
        self._plain_rooms: set[RoomId] = set()

    @property
    def position(self) -> int:
        """The last event id this replica committed as processed."""
        return self._position

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stand by, consume while holding the lease, stand by again; until cancelled."""
        task_status.started()
        retry_s = 0.5
        try:
            while True:
                try:
                    position = await self._store.claim_consumer(
                        CONSUMER, self._holder, LEASE_S, utcnow()
                    )
                    if position is None:  # another replica consumes
                        self._metrics.notifications_consumer_lag.set(0)
                        await trio.sleep(LEASE_S / 3)
                        continue
                    log.info("notifications: consuming from event %s", position)
                    self._position = self._committed_position = position
                    await self._consume()
                except LeaseLost:
                    log.warning("notifications: lost the lease; standing by")
                except StoreUnavailable as exc:
                    log.warning("notifications: %s; retrying in %.1f s", exc.message, retry_s)
                    await trio.sleep(retry_s)
                    retry_s = min(retry_s * 2, RETRY_MAX_S)
                    continue
                except Exception:
                    # A bug, or an event it cannot read: the server stays up, the position
                    # stays where it was (the lag metric and its alert show it), and the
                    # batch is tried again after a pause.
                    log.exception("notifications: the consumer failed; retrying in %.1f s", retry_s)
                    await trio.sleep(retry_s)
                    retry_s = min(retry_s * 2, RETRY_MAX_S)
                    continue
                retry_s = 0.5
        finally:
            # The position a quiet end left uncommitted, then the lease for a standby;
            # unless the lease is gone already or the database is away (it lapses).
            with trio.move_on_after(2, shield=True), suppress(ChatdError):
                await self._store.record_notifications(
                    CONSUMER, self._holder, self._position, [], LEASE_S, utcnow()
                )
                await self._store.release_consumer(CONSUMER, self._holder)

    async def _consume(self) -> None:
        """Follow the stream from self._position until the lease is lost (LeaseLost) or
        something fails (raised as itself, not in a group: run() tells them apart)."""
        try:
            await self._consume_in_tasks()
        except BaseExceptionGroup as group:
            failures, others = group.split(Exception)
            if others is not None or failures is None:
                raise  # Cancelled, KeyboardInterrupt: not ours to handle
            raise _first(failures) from None

    async def _consume_in_tasks(self) -> None:
        send, receive = trio.open_memory_channel[Event](BATCH_MAX)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, self._position, send)
            nursery.start_soon(self._keep_lease)
            async with receive:
                while True:
                    try:
                        batch = [await receive.receive()]
                    except trio.EndOfChannel:  # the feed ended: start over
                        nursery.cancel_scope.cancel()
                        return
                    while len(batch) < BATCH_MAX:
                        try:
                            batch.append(receive.receive_nowait())
                        except trio.WouldBlock:
                            break
                    await self._process(batch)
                    if len(batch) < BATCH_MAX:
                        # Caught up: let events gather rather than read the stream again
                        # at once, so a busy one is read in pages, not one per commit.
                        await trio.sleep(GATHER_S)
                        if not receive.statistics().current_buffer_used:
                            await self._commit_position()  # quiet now: say how far we are

    async def _commit_position(self) -> None:
        """Record the position a batch that made nothing left uncommitted (see
        _process_batch), so that the lag reads 0 once the stream goes quiet."""
        if self._position > self._committed_position:
            await self._store.record_notifications(
                CONSUMER, self._holder, self._position, [], LEASE_S, utcnow()
            )
            self._committed_position = self._position
            self._committed_at = trio.current_time()

    async def _pump(self, after: int, send: trio.MemorySendChannel[Event]) -> None:
        async with send, self._follow(after) as feed:
            async for event in feed:
                await send.send(event)

    async def _keep_lease(self) -> None:
        """Renew the lease between batches (a quiet stream commits none), and measure lag."""
        while True:
            await trio.sleep(LEASE_S / 3)
            if await self._store.claim_consumer(CONSUMER, self._holder, LEASE_S, utcnow()) is None:
                raise LeaseLost(f"consumer {CONSUMER}: another replica took the lease")
            head = await self._store.last_event_id()
            self._metrics.notifications_consumer_lag.set(max(0, head - self._position))

    async def _process(self, batch: list[Event]) -> None:
        if not TRACE.on:
            await self._process_batch(batch)
            return
        # Each event's span continues its trace (the message's, through the relay).
        traced = EventSpans("notifications.consume", batch, SpanKind.CONSUMER)
        try:
            with traced.batch("notifications.batch"):
                for notification in await self._process_batch(batch):
                    traced.add_event(
                        notification.event_id,
                        "notification",
                        {
                            "chatd.notification.id": notification.id,
                            "chatd.notification.kind": notification.kind,
                            "user.id": notification.user_id,
                        },
                    )
        finally:
            traced.end()

    async def _process_batch(self, batch: list[Event]) -> list[Notification]:
        """One transaction for the batch's notifications and the new position; then push.
        The notifications made."""
        plain = self._plain_rooms
        events = [
            e
            for e in batch
            if e.id > self._position
            and e.type == "message.created"
            # Most messages notify nobody: in a room known not to be a DM, one that
            # mentions nobody is passed over unread (its JSON has no "mentions").
            and (e.room_id not in plain or MENTIONS_KEY in e.data)
        ]
        messages = [(event, message_of(event)) for event in events]
        rooms = await self._rooms({message.room_id for _, message in messages})
        candidates: set[UserId] = set()
        for _, message in messages:
            candidates |= dm_recipients(message, rooms.get(message.room_id))
        offline = candidates - await self._online(candidates)
        drafts: list[NotificationDraft] = []
        for event, message in messages:
            drafts.extend(drafts_for(event, message, rooms.get(message.room_id), offline))
        position = max(self._position, batch[-1].id)
        now = trio.current_time()
        if not drafts and now - self._committed_at < POSITION_EVERY_S:
            # Nothing to record: the position alone can wait for the next commit, so a
            # flood of plain messages costs no transaction per batch. (After a crash the
            # consumer reads these events again, and again records nothing.)
            self._position = position
            return []
        made = await self._store.record_notifications(
            CONSUMER, self._holder, position, drafts, LEASE_S, utcnow()
        )
        self._position = self._committed_position = position
        self._committed_at = now
        for notification in made:
            self._metrics.notifications_created.labels(notification.kind).inc()
            frame = notification_frame(notification)
            self._bus.publish_user_nowait(UserEvent(notification.user_id, "notification", frame))
        return made

    async def _rooms(self, room_ids: set[RoomId]) -> dict[RoomId, Room]:
        """The rooms that may be DMs (their members are looked up each time: a group DM's
        change); rooms known to be plain rooms are left out."""
        found: dict[RoomId, Room] = {}
        for room_id in sorted(room_ids - self._plain_rooms):
            room = await self._store.room(room_id)
            if room is None:
                continue  # deleted since: the store records nothing for it
            if room.kind == "dm":
                found[room_id] = room
            else:
                if len(self._plain_rooms) >= ROOM_CACHE_MAX:
                    self._plain_rooms.clear()
                self._plain_rooms.add(room_id)
        return found

    async def _online(self, user_ids: set[UserId]) -> set[UserId]:
        if not user_ids:
            return set()
        try:
            return await self._presence.online_anywhere(user_ids)
        except PresenceUnavailable:
            # Better a notification too many than one missed: count them offline.
            log.warning("notifications: presence unavailable; DMs notify everyone")
            return set()


def _first(group: BaseExceptionGroup[Exception]) -> Exception:
    """The first exception of a group, however nested."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
