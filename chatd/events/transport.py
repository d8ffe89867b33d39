"""The broker behind the event stream, as the relay and the consumers see it.

A transport is a Publisher (the relay's side) and a subscription (a consumer's side).
RabbitMQ is the first (rabbitmq.py); NATS JetStream or Kafka would be another module
with the same two pieces, chosen here by the URL's scheme. With no broker configured
(CHATD_EVENTS_URL empty) events are still numbered and kept in the outbox, and
consumers follow the store instead (feed.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import trio

from chatd.config import ConfigError, Settings
from chatd.events.event import Event


class PublishFailed(Exception):
    """The broker did not take the batch, or may not have: the relay leaves its rows
    unmarked and publishes them again (with the same ids) on its next try."""


class SubscriptionLost(Exception):
    """The broker connection of a subscription is gone, or could not be made; the feed
    subscribes again and fills what it missed from the store."""


class Publisher(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Hand the events to the broker, all or (as far as the caller knows) none;
        PublishFailed otherwise. Blocking: the relay calls it from a worker thread,
        one call at a time. An empty batch keeps an idle connection alive (heartbeats):
        the relay calls it so when it finds nothing to publish."""

    def close(self) -> None: ...

    def health(self) -> str:
        """One line for operators: "connected", "not connected: <why>", "no broker"."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event as the broker delivered it; `tag` acknowledges it (Subscription.ack)."""

    event: Event
    tag: int


class Subscription(Protocol):
    """A queue bound to the stream, delivering in the order the broker received."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Started once bound: what the broker routes from then on is kept for us.
        Delivers until cancelled or the connection is lost (receive() then raises
        SubscriptionLost); SubscriptionLost at once if the broker cannot be reached."""

    async def receive(self) -> Delivery:
        """The next delivery; SubscriptionLost when the connection is gone."""

    def ack(self, tag: int) -> None:
        """Done with every delivery up to and including this tag (never blocks)."""


class NoBroker:
    """CHATD_EVENTS_URL is empty: published means numbered and kept in the outbox."""

    def publish(self, events: Sequence[Event]) -> None:
        pass

    def close(self) -> None:
        pass

    def health(self) -> str:
        return "no broker"


def open_publisher(settings: Settings) -> Publisher:
    """The publisher for settings.events_url; it connects on its first publish."""
    url = settings.events_url
    if not url:
        return NoBroker()
    if url.startswith(("amqp://", "amqps://")):
        from chatd.events.rabbitmq import RabbitPublisher

        return RabbitPublisher(url, settings.events_exchange)
    raise ConfigError(f"CHATD_EVENTS_URL: {_scheme(url)!r} is not a broker chatd knows (amqp://)")


def new_subscription(
    settings: Settings, binding_keys: Sequence[str], queue: str | None = None
) -> Subscription:
    """A subscription to settings.events_url, to be run (Subscription.run) by its owner.

    `queue` names a durable queue that outlives the consumer and the broker's restarts
    (a service consuming the stream); None is a queue of this subscription alone, gone
    when it ends (a tail).
    """
    url = settings.events_url
    if url.startswith(("amqp://", "amqps://")):
        from chatd.events.rabbitmq import RabbitSubscription

        return RabbitSubscription(url, settings.events_exchange, binding_keys, queue)
    raise ConfigError(f"CHATD_EVENTS_URL: {_scheme(url)!r} is not a broker chatd knows (amqp://)")


@asynccontextmanager
async def open_subscription(
    settings: Settings, binding_keys: Sequence[str], queue: str | None = None
) -> AsyncIterator[Subscription]:
    """Subscribed when the block starts, unsubscribed when it ends."""
    subscription = new_subscription(settings, binding_keys, queue)
    with sole_error():
        async with trio.open_nursery() as nursery:
            await nursery.start(subscription.run)
            try:
                yield subscription
            finally:
                nursery.cancel_scope.cancel()


@contextmanager
def sole_error() -> Iterator[None]:
    """Around a context manager's own nursery, whose tasks fail only as they start:
    the block's error (or that start's) comes out as itself, not in an ExceptionGroup."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else url[:10]


__all__ = [
    "Delivery",
    "NoBroker",
    "PublishFailed",
    "Publisher",
    "Subscription",
    "SubscriptionLost",
    "new_subscription",
    "open_publisher",
    "open_subscription",
]
