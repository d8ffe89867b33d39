"""The Redis bus: committed messages and signals reach every instance through pub/sub.

One publisher task (pipelined, fed by a bounded queue) and one subscriber
task per process. The subscriber listens only to rooms with local members.

Redis is a fast path, never the source of truth: a message is committed
before it is published, local members get it straight away, and rooms fill
any gap from the store. So when Redis goes away this instance keeps serving
its own clients; when it comes back every local room refills from the
store, and rooms whose messages could not be published are announced so
the other instances refill them too.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import coredis
import trio
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

from chatd.bus.base import NOT_RUNNING, Sink, UserSink, ignore_user_events
from chatd.bus.recent import RecentCache
from chatd.metrics import Metrics
from chatd.model import (
    ROOM_CHANGES,
    SIGNALS,
    BusEvent,
    Message,
    RoomChange,
    RoomId,
    Signal,
    TracedMessage,
    UserEvent,
    UserEventKind,
    UserId,
)
from chatd.tracing import TRACE
from chatd.tracing.messages import PublishSpans

log = logging.getLogger(__name__)

USER_EVENT_KINDS = frozenset({"notification", "disconnect"})
# Events that change what their message's cached copy says.
STALES = frozenset({"edited", "deleted"})

PUBLISH_BATCH_MAX = 512
# Rooms whose publications were dropped, remembered to announce a resync;
# past this many, every room is announced.
DROPPED_ROOMS_MAX = 10_000
CONNECT_TIMEOUT_S = 2.0
# Network faults, and Redis answering something we cannot use.
# coredis runs on anyio: a connection it closed under us (on a reconnect, or while
# the bus shuts down and its pub/sub unsubscribes) raises anyio's resource errors.
FAULTS = (
    RedisError,
    OSError,
    TimeoutError,
    trio.BrokenResourceError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


def _root_cause(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, for a readable reason."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _traced(message: Message, traceparent: object) -> Message:
    """The message with the traceparent the wire carried beside it, if that is text
    (chatd/tracing/ checks the rest)."""
    if not isinstance(traceparent, str):
        return message
    return TracedMessage.of(message, traceparent)


def backoff_s(attempt: int, cap_s: float) -> float:
    """Capped exponential backoff with full jitter: 0.1 s, 0.2 s, ... up to cap_s."""
    return random.uniform(0, min(cap_s, 0.1 * 2 ** min(attempt, 20)))


class RedisBus:
    def __init__(
        self,
        url: str,
        *,
        instance_id: str,
        prefix: str = "chatd:",
        queue_size: int = 4096,
        backoff_cap_s: float = 5.0,
        recent_size: int = 200,
        metrics: Metrics,
    ) -> None:
        self._url = url
        self._sink = NOT_RUNNING
        self._user_sink: UserSink = ignore_user_events
        self._resync: Callable[[], None] = lambda: None
        self._instance = instance_id
        # Our publications start with this (see _encode_messages and _encode_event).
        self._own_prefix = f'{{"o":{json.dumps(instance_id)},'
        self._prefix = prefix
        self._backoff_cap_s = backoff_cap_s
        self.recent = RecentCache(prefix, recent_size)
        self._queue_send, self._queue_recv = trio.open_memory_channel[BusEvent | UserEvent](
            queue_size
        )
        self._wanted: set[RoomId] = set()
        self._changed = trio.Event()
        self._subscribed: dict[RoomId, trio.Event] = {}
        self._connected = False
        self._problem = "not connected yet"
        self._dropped_rooms: set[RoomId] = set()
        self._dropped_all = False
        self._metrics = metrics

    # -- the Bus protocol ---------------------------------------------------

    async def run(
        self,
        sink: Sink,
        resync: Callable[[], None],
        user_sink: UserSink = ignore_user_events,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._sink, self._resync, self._user_sink = sink, resync, user_sink
        async with self._client() as client, trio.open_nursery() as nursery:
            self.recent.client = client
            nursery.start_soon(self._publish_loop, client)
            nursery.start_soon(self._subscribe_loop)
            task_status.started()  # usable at once: degraded until Redis answers

    def publish_nowait(self, event: BusEvent) -> None:
        if event.room_id in self._wanted:
            self._sink(event)  # local members first, whatever Redis is doing
        try:
            self._queue_send.send_nowait(event)
        except trio.WouldBlock:
            # Redis has been away for a while. The message is committed and
            # delivered here; the others refill this room once we announce it.
            if len(self._dropped_rooms) < DROPPED_ROOMS_MAX:
                self._dropped_rooms.add(event.room_id)
            else:
                self._dropped_all = True

    def publish_user_nowait(self, event: UserEvent) -> None:
        self._user_sink(event)  # this instance's sockets first, whatever Redis is doing
        try:
            self._queue_send.send_nowait(event)
        except trio.WouldBlock:
            # Redis has been away for a while: like typing, a user event is not kept.
            log.warning("bus: Redis is behind; a %s for user %s reached this instance only",
                        event.kind, event.user_id)  # fmt: skip

    async def subscribe(self, room_id: RoomId) -> None:
        self._wanted.add(room_id)
        done = self._subscribed.setdefault(room_id, trio.Event())
        self._changed.set()
        if self._connected:
            # If the connection drops meanwhile, the reconnect's resync covers us.
            with trio.move_on_after(CONNECT_TIMEOUT_S):
                await done.wait()

    def unsubscribe(self, room_id: RoomId) -> None:
        self._wanted.discard(room_id)
        self._subscribed.pop(room_id, None)
        self._changed.set()

    def health(self) -> str:
        return "ok" if self._connected else self._problem

    # -- the wire format ----------------------------------------------------

    def channel(self, room_id: RoomId) -> str:
        return f"{self._prefix}room:{room_id}"

    @property
    def _resync_channel(self) -> str:
        return f"{self._prefix}resync"

    @property
    def _users_channel(self) -> str:
        """User events (UserEvent): one channel, every instance listens while it runs."""
        return f"{self._prefix}users"

    def _encode_user_event(self, event: UserEvent) -> str:
        body: dict[str, object] = {"o": self._instance, "u": event.user_id, "k": event.kind}
        if event.detail is not None:
            body["d"] = event.detail
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def _decode_user_event(self, raw: str) -> UserEvent | None:
        if raw.startswith(self._own_prefix):
            return None  # ours, delivered here when published
        body = json.loads(raw)
        detail = body.get("d")
        if body["k"] not in USER_EVENT_KINDS:
            raise ValueError(f"unknown user event {body['k']!r}")
        if detail is not None and not isinstance(detail, str):
            raise ValueError("bad user event detail")
        kind: UserEventKind = "notification" if body["k"] == "notification" else "disconnect"
        return UserEvent(UserId(int(body["u"])), kind, detail)

    def _encode_event(self, event: Signal | RoomChange) -> str:
        # A signal travels as "s", a room change as "c": each names its kind.
        body: dict[str, object] = {"o": self._instance, "r": event.room_id, "u": event.user_id}
        if isinstance(event, Signal):
            body["s"] = event.kind
        else:
            body["c"] = event.kind
            if event.detail is not None:
                body["d"] = event.detail
        return json.dumps(body, separators=(",", ":"))

    def _encode_messages(
        self, messages_json: list[str], traceparents: list[str | None] | None = None
    ) -> str:
        # Each message's JSON is made once (recent.encode) and spliced in, not re-encoded.
        # One message travels as "m" (what instances before batching read), several as "ms".
        # Traced ones carry their publish spans' traceparents beside them: "tp" for one,
        # "tps" (in the order of "ms", null for any not traced) for several.
        origin = json.dumps(self._instance)
        if len(messages_json) == 1:
            if traceparents:
                return f'{{"o":{origin},"m":{messages_json[0]},"tp":{json.dumps(traceparents[0])}}}'
            return f'{{"o":{origin},"m":{messages_json[0]}}}'
        if traceparents:
            tps = json.dumps(traceparents)
            return f'{{"o":{origin},"ms":[{",".join(messages_json)}],"tps":{tps}}}'
        return f'{{"o":{origin},"ms":[{",".join(messages_json)}]}}'

    def _decode(self, raw: str) -> list[BusEvent]:
        if raw.startswith(self._own_prefix):
            return []  # our own, delivered locally when published: not worth parsing
        body = json.loads(raw)
        if body.get("o") == self._instance:
            return []
        if "m" in body:
            if "tp" in body:
                return [_traced(Message.from_json(body["m"]), body["tp"])]
            return [Message.from_json(body["m"])]
        if "ms" in body:
            if "tps" in body:
                return [
                    _traced(Message.from_json(message), traceparent)
                    for message, traceparent in zip(body["ms"], body["tps"], strict=True)
                ]
            return [Message.from_json(message) for message in body["ms"]]
        user = body.get("u")
        room_id, user_id = RoomId(int(body["r"])), None if user is None else UserId(int(user))
        if "c" in body:
            if body["c"] not in ROOM_CHANGES:
                raise ValueError(f"unknown room change {body['c']!r}")
            detail = body.get("d")
            if detail is not None and not isinstance(detail, str | int):
                raise ValueError(f"bad room change detail {detail!r}")
            return [RoomChange(room_id, body["c"], user_id, detail)]
        if body["s"] not in SIGNALS:
            raise ValueError(f"unknown signal {body['s']!r}")
        return [Signal(room_id, body["s"], user_id)]

    # -- tasks --------------------------------------------------------------

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[coredis.Redis[str]]:
        client = coredis.Redis.from_url(
            self._url,
            decode_responses=True,
            retry_policy=NoRetryPolicy(),  # we reconnect ourselves, and know when
            connect_timeout=CONNECT_TIMEOUT_S,
            stream_timeout=CONNECT_TIMEOUT_S * 5,
        )
        async with client:
            yield client

    async def _subscribe_loop(self) -> None:
        attempt = 0
        while True:
            try:
                async with (
                    self._client() as client,
                    client.pubsub(
                        retry_policy=NoRetryPolicy(), ignore_subscribe_messages=True
                    ) as pubsub,
                ):
                    await client.ping()
                    rooms = set(self._wanted)
                    await pubsub.subscribe(
                        self._resync_channel,
                        self._users_channel,
                        *(self.channel(r) for r in rooms),
                    )
                    self._mark_subscribed(rooms)
                    self._set_connected()
                    attempt = 0
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._reconcile, pubsub, rooms)
                        async for raw in pubsub:
                            self._deliver(raw)
                    raise ConnectionError("the subscription ended")
            except* FAULTS as group:
                # Leaving the pub/sub block while the bus shuts down closes its stream
                # under it: that is no lost connection, and says nothing.
                await trio.lowlevel.checkpoint_if_cancelled()
                self._set_disconnected(_root_cause(group))
            attempt += 1
            await trio.sleep(backoff_s(attempt, self._backoff_cap_s))

    async def _reconcile(self, pubsub: Any, subscribed: set[RoomId]) -> None:
        """Bring the subscription in line with the rooms that have local members."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            wanted = set(self._wanted)
            if gone := subscribed - wanted:
                await pubsub.unsubscribe(*(self.channel(r) for r in gone))
            if new := wanted - subscribed:
                await pubsub.subscribe(*(self.channel(r) for r in new))
            subscribed.clear()
            subscribed.update(wanted)
            # All of them, not just the new: a room left and joined again between two
            # passes never left Redis, and its joiner is waiting to hear so.
            self._mark_subscribed(wanted)

    def _mark_subscribed(self, rooms: set[RoomId]) -> None:
        for room_id in rooms:
            if (done := self._subscribed.get(room_id)) is not None:
                done.set()

    def _deliver(self, raw: Any) -> None:
        channel = raw.get("channel")
        if channel == self._resync_channel:
            if raw.get("data") != self._instance:
                self._resync()  # another instance dropped publications
            return
        if channel == self._users_channel:
            try:
                user_event = self._decode_user_event(raw["data"])
            except (ValueError, KeyError, TypeError):
                log.warning("bus: ignoring a malformed user event")
                return
            if user_event is not None:
                self._user_sink(user_event)
            return
        try:
            events = self._decode(raw["data"])
        except (ValueError, KeyError, TypeError):
            log.warning("bus: ignoring a malformed event on %s", raw.get("channel"))
            return
        for event in events:
            if event.room_id in self._wanted:
                self._sink(event)

    async def _publish_loop(self, client: coredis.Redis[str]) -> None:
        attempt = 0
        async for first in self._queue_recv:
            batch = [first]
            while len(batch) < PUBLISH_BATCH_MAX:
                try:
                    batch.append(self._queue_recv.receive_nowait())
                except trio.WouldBlock:
                    break
            while True:  # the same batch until it goes out: nothing is skipped
                try:
                    await self._send(client, batch)
                    attempt = 0
                    break
                except* FAULTS as group:
                    self._set_disconnected(_root_cause(group))
                attempt += 1
                await trio.sleep(backoff_s(attempt, self._backoff_cap_s))
            await self._announce_dropped(client)

    async def _send(self, client: coredis.Redis[str], batch: list[BusEvent | UserEvent]) -> None:
        if TRACE.on:  # each traced message's publish span; its traceparent goes along
            traced = PublishSpans(batch, self.channel)
            with traced.sending():
                await self._send_batch(client, batch, traced)
        else:
            await self._send_batch(client, batch, None)

    async def _send_batch(
        self,
        client: coredis.Redis[str],
        batch: list[BusEvent | UserEvent],
        traced: PublishSpans | None,
    ) -> None:
        started = trio.current_time()
        # A room's messages of one batch go as one cache write and one publication:
        # four commands per room per batch, not four per message. Any other event of
        # the room goes after the messages published before it, so every instance
        # sees the room's events in the order they were published.
        messages: dict[RoomId, list[Message]] = {}
        async with client.pipeline(transaction=False) as pipe:
            for event in batch:
                if isinstance(event, Message):
                    messages.setdefault(event.room_id, []).append(event)
                    continue
                if isinstance(event, UserEvent):  # no room: no order to keep with one
                    pipe.publish(self._users_channel, self._encode_user_event(event))
                    continue
                if (before := messages.pop(event.room_id, None)) is not None:
                    self._publish_messages(pipe, event.room_id, before, traced)
                if isinstance(event, RoomChange) and event.kind == "purged":
                    self.recent.drop(pipe, event.room_id)
                pipe.publish(self.channel(event.room_id), self._encode_event(event))
            for room_id, room_messages in messages.items():
                self._publish_messages(pipe, room_id, room_messages, traced)
        self._metrics.bus_publish_duration.observe(trio.current_time() - started)

    def _publish_messages(
        self, pipe: Any, room_id: RoomId, messages: list[Message], traced: PublishSpans | None
    ) -> None:
        encoded = [self.recent.encode(message) for message in messages]
        self.recent.add(pipe, room_id, messages, encoded)  # cached, then announced
        # An edited or deleted message's cached copy is out of date: without it, a read
        # that covers its id asks the store (the cache answers only whole ranges).
        self.recent.forget(
            pipe, room_id, [m.target_id for m in messages if m.kind in STALES and m.target_id]
        )
        traceparents = None if traced is None else traced.traceparents(messages)
        pipe.publish(self.channel(room_id), self._encode_messages(encoded, traceparents))

    async def _announce_dropped(self, client: coredis.Redis[str]) -> None:
        if not (self._dropped_rooms or self._dropped_all):
            return
        rooms, everything = self._dropped_rooms, self._dropped_all
        self._dropped_rooms, self._dropped_all = set(), False
        if everything:
            log.warning("bus: publications were dropped; asking every instance to resync")
        try:
            await self._send(client, [Signal(room, "resync") for room in rooms])
            if everything:
                await client.publish(self._resync_channel, self._instance)
        except* FAULTS:
            self._dropped_rooms |= rooms
            self._dropped_all |= everything

    def _set_connected(self) -> None:
        if not self._connected:
            log.info("bus: connected to Redis")
        self._connected = True
        self._metrics.bus_connected.set(1)
        self._problem = "ok"
        # Whatever was published while we were away: every local room refills.
        self._resync()

    def _set_disconnected(self, exc: BaseException) -> None:
        if self._connected:
            log.warning("bus: lost Redis (%s); local clients are still served", exc)
            self._metrics.bus_reconnects.inc()
        self._connected = False
        self._metrics.bus_connected.set(0)
        self._problem = f"redis unreachable: {exc}"[:200]
