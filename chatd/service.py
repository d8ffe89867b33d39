"""The service: one nursery owning the store, the bus, the hub and the writer."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from chatd.admin.reports import InstanceReports
from chatd.auth.accounts import Accounts, TokenPolicy
from chatd.bus.base import Bus
from chatd.bus.local import LocalBus
from chatd.bus.redis import RedisBus
from chatd.bus.redis_presence import RedisPresence
from chatd.config import Settings
from chatd.events.relay import Relay
from chatd.hub.history import History
from chatd.hub.hub import Hub
from chatd.hub.presence import LocalPresence, Presence, PresenceBackend
from chatd.hub.reads import ReadMarks
from chatd.hub.writer import Writer
from chatd.metrics import Metrics
from chatd.model import RoomId, Signal
from chatd.notifications.role import notifications_consumer
from chatd.ratelimit import Limits
from chatd.store import Store, open_store
from chatd.tracing import serve_as

log = logging.getLogger(__name__)

# Names this process on the bus (so it can skip its own publications), unless the
# settings name the instance (CHATD_INSTANCE_ID; tests run two in one process).
INSTANCE_ID = secrets.token_hex(6)


@dataclass(frozen=True)
class Service:
    settings: Settings
    store: Store
    hub: Hub
    writer: Writer
    accounts: Accounts
    metrics: Metrics
    bus: Bus
    presence: Presence
    history: History
    # Set on SIGTERM: readiness fails and new sockets are refused while we drain.
    draining: trio.Event
    limits: Limits
    reads: ReadMarks
    instance_id: str
    # This instance's statistics and live connections, and every instance's (admin API).
    reports: InstanceReports | None = None
    # Publishes the event stream's outbox; in-process consumers wait on it (docs/events.md).
    relay: Relay | None = None


def open_bus(settings: Settings, metrics: Metrics, instance_id: str) -> tuple[Bus, PresenceBackend]:
    """Redis when configured (many instances as one service), else in-process."""
    if not settings.redis_url:
        return LocalBus(), LocalPresence()
    bus = RedisBus(
        settings.redis_url,
        instance_id=instance_id,
        prefix=settings.redis_prefix,
        recent_size=settings.recent_cache_size,
        metrics=metrics,
    )
    return bus, RedisPresence(settings.redis_prefix, instance_id, lambda: bus.recent.client)


def presence_announcer(bus: Bus) -> Callable[[RoomId], None]:
    """How the presence tracker asks every instance to look at a room's presence again."""

    def announce(room_id: RoomId) -> None:
        bus.publish_nowait(Signal(room_id, "presence"))

    return announce


def redis_client_of(bus: Bus) -> Callable[[], Any] | None:
    """The bus's Redis client (None until it connects), for what else shares state there."""
    if not isinstance(bus, RedisBus):
        return None
    recent = bus.recent
    return lambda: recent.client


async def watch_event_loop(metrics: Metrics, period_s: float = 0.5) -> None:
    """Tick and measure lateness: how long the loop was too busy to run anything."""
    while True:
        due = trio.current_time() + period_s
        await trio.sleep_until(due)
        metrics.event_loop_lag.observe(trio.current_time() - due)


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[Service]:
    """Everything behind the transport, running until the block exits."""
    store = open_store(
        settings.database_url, pool_size=settings.db_pool_size, timeout_s=settings.db_timeout_s
    )
    try:
        metrics = Metrics()
        instance_id = settings.instance_id or INSTANCE_ID
        serve_as(instance_id)  # every span of this service's tasks says which instance
        bus, presence_backend = open_bus(settings, metrics, instance_id)
        presence = Presence(
            presence_backend,
            ttl_s=settings.presence_ttl_s,
            announce=presence_announcer(bus),
            clock=time.time,  # shared with other instances: wall clock
        )
        hub = Hub(store, bus, presence, metrics, settings.room_inbox_size)
        writer = Writer(
            store,
            bus,
            metrics,
            settings.writer_queue_size,
            settings.writer_batch_max,
            # SQLite has one write lock: a second lane would only wait for it.
            lanes=1 if settings.sqlite_path else settings.writer_lanes,
        )
        accounts = Accounts(
            store,
            TokenPolicy(
                secret=settings.jwt_secret,
                access_ttl_s=settings.access_token_ttl_s,
                refresh_ttl_s=settings.refresh_token_ttl_s,
                bcrypt_rounds=settings.bcrypt_rounds,
                refresh_replay_grace_s=settings.refresh_replay_grace_s,
            ),
        )
        # Shared through the bus's Redis connection when there is one.
        limits = Limits(settings, metrics, redis_client_of(bus))
        async with trio.open_nursery() as nursery:
            # The hub is the sink of the bus and of the presence tracker: what they
            # carry goes to its room tasks.
            await nursery.start(bus.run, hub.dispatch_nowait, hub.resync_all, hub.user_event_nowait)
            await nursery.start(hub.run)
            await nursery.start(presence.run, hub.presence_changed)
            nursery.start_soon(watch_event_loop, metrics)
            # Every instance runs one (the database lets one at a time publish); each
            # commit of an event here wakes it.
            relay = Relay(store, settings, metrics)
            store.on_events_committed(relay.wake)
            await nursery.start(relay.run)
            await nursery.start(writer.run)
            await nursery.start(accounts.cutoffs.run, hub.end_sessions)
            await nursery.start(limits.run)
            reads = ReadMarks(bus, settings.read_broadcast_s)
            await nursery.start(reads.run)
            if "notifications" in settings.roles:
                consumer = notifications_consumer(
                    store, bus, presence, metrics, settings, instance_id, relay
                )
                await nursery.start(consumer.run)
            recent = bus.recent if isinstance(bus, RedisBus) else None
            history = History(store, recent, metrics)
            reports = InstanceReports(settings, hub, metrics, redis_client_of(bus), instance_id)
            await nursery.start(reports.run)
            yield Service(
                settings,
                store,
                hub,
                writer,
                accounts,
                metrics,
                bus,
                presence,
                history,
                trio.Event(),
                limits,
                reads,
                instance_id,
                reports=reports,
                relay=relay,
            )
            nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(2, shield=True):
            await store.aclose()
