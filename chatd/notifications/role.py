"""The notifications role's part of the service: its consumer, fed by the stream."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from chatd.bus.base import Bus
from chatd.config import Settings
from chatd.events.event import Event
from chatd.events.feed import Published, follow
from chatd.hub.presence import Presence
from chatd.metrics import Metrics
from chatd.notifications.consumer import BINDING_KEYS, CONSUMER, NotificationsConsumer
from chatd.store import Store


def notifications_consumer(
    store: Store,
    bus: Bus,
    presence: Presence,
    metrics: Metrics,
    settings: Settings,
    instance_id: str,
    relay: Published | None,
) -> NotificationsConsumer:
    """The consumer, following the stream through the broker's durable queue
    "<prefix>notifications" when there is a broker, else the outbox in this process
    (woken by this process's relay)."""

    def follow_from(after: int) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        return follow(
            store,
            settings,
            after,
            binding_keys=BINDING_KEYS,
            queue=f"{settings.redis_prefix}{CONSUMER}",
            relay=relay,
        )

    # Unique per service, so that two services in one process (tests) are two holders.
    holder = f"{instance_id}/{secrets.token_hex(3)}"
    return NotificationsConsumer(store, bus, presence, metrics, follow_from, holder=holder)
