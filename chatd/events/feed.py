"""follow(): the one way a consumer reads the event stream, from any event id.

    async with follow(store, settings, after=position, binding_keys=["room.*.#"]) as feed:
        async for event in feed:
            ...  # every event with id > position, once each, in id order

The guarantee: every event after `after` that the binding keys select, exactly once and
in id order, whatever the broker does (redeliveries, a restart that lost a queue, events
published before we subscribed). How: subscribe first, so the broker keeps what comes
from then on; replay from the store (the outbox keeps published events for
events_retention_s) until caught up; then take the broker's deliveries, skipping ids
already yielded, and when one jumps ahead of the last id yielded, fill the gap from the
store first. A lost broker connection is a new subscription and the same catch-up;
until the broker is back, the feed reads on from the store.
Events are numbered without holes across all keys, so with keys narrower than "#" the
store fills in only the events those keys select (a gap is normal there).

When the broker has been quiet for relay_poll_s the feed looks in the store too, so
that an event the broker never delivers (published before the subscription, committed
after the catch-up) does not wait for a later one to reveal it. With no broker
(CHATD_EVENTS_URL empty) the feed follows the store: it polls events_after, woken early
by the in-process relay when one is given.

Exactly-once effect is the consumer's part: store the last event id processed in the
same transaction as the effect, and resume with follow(after=that id). The broker's
copy of an event is acknowledged when the consumer asks for the next one (it has done
with this one); a consumer that crashes gets the unacknowledged again from a durable
queue, and skips them by id.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import trio

from chatd.config import Settings
from chatd.errors import StoreUnavailable
from chatd.events.event import Event
from chatd.events.transport import (
    Delivery,
    Subscription,
    SubscriptionLost,
    new_subscription,
    sole_error,
)

log = logging.getLogger(__name__)

PAGE = 500  # events per store read while catching up
# A gap the broker showed that the store cannot fill yet: the batch that numbered those
# events has not committed (the relay publishes, then commits). Look again this often.
GAP_POLL_S = 0.02
# Subscribing again after the broker was lost, or reading the store again after the
# database was: first wait, doubling up to the cap. While the broker is away the feed
# reads the store (the relay cannot publish without the broker, so nothing is lost by
# waiting; but a consumer started during an outage replays).
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


class EventSource(Protocol):
    """What a feed reads from the store (chatd.store.Store has it)."""

    async def events_after(self, after: int, limit: int) -> list[Event]: ...


class Published(Protocol):
    """The in-process relay, as a feed without a broker waits on it."""

    async def wait_published(self, after: int) -> int:
        """Return once an event with id > after is published (at once if one is)."""


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` zero or more. The feed applies it to
    the events it reads from the store, which the broker did not filter for it."""
    return _match(binding_key.split("."), routing_key.split("."))


def _match(key: list[str], words: list[str]) -> bool:
    if not key:
        return not words
    if key[0] == "#":
        return any(_match(key[1:], words[i:]) for i in range(len(words) + 1))
    return bool(words) and key[0] in ("*", words[0]) and _match(key[1:], words[1:])


class Feed:
    """An async iterator of events; made and owned by follow()."""

    def __init__(
        self,
        store: EventSource,
        settings: Settings,
        after: int,
        binding_keys: Sequence[str],
        queue: str | None,
        relay: Published | None,
        nursery: trio.Nursery,
    ) -> None:
        self.position = after  # the id of the last event yielded (or `after`)
        # Every id up to here is accounted for: yielded, waiting in _ready, or not one
        # the keys select. Broker deliveries at or below it are copies.
        self._through = after
        self._store = store
        self._settings = settings
        self._keys = tuple(binding_keys) or ("#",)
        self._everything = "#" in self._keys
        self._queue = queue
        self._relay = relay
        self._nursery = nursery
        self._ready: deque[Event] = deque()  # read from the store, to yield before the rest
        self._subscription: Subscription | None = None
        self._unsubscribe = trio.CancelScope()
        self._catching_up = True  # the store may hold events the broker will not send us
        self._held: Delivery | None = None  # a delivery that waits for its gap to fill
        self._done_tag = 0  # the last delivery yielded: acknowledged once the next is asked for
        self._outage_logged = False
        self._store_outage_logged = False
        self._retry_s = RETRY_FIRST_S  # after a failed try, the next is this much later
        self._next_try = 0.0

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> Event:
        if self._done_tag and self._subscription is not None:
            self._subscription.ack(self._done_tag)  # the consumer is done with it
        while True:
            event: Event | None
            if self._ready:
                event = self._ready.popleft()
            elif not self._settings.events_url:
                await self._follow_store()
                continue
            elif self._subscription is None:
                await self._without_subscription()
                continue
            elif self._catching_up:
                await self._catch_up()
                continue
            elif self._held is not None:
                event = await self._fill_gap(self._held)
            else:
                event = await self._from_broker()
            if event is not None:
                self.position = event.id
                return event

    def _selects(self, event: Event) -> bool:
        return self._everything or any(topic_matches(k, event.routing_key) for k in self._keys)

    async def _read(self, limit: int) -> int:
        """The next events from the store into _ready (those the keys select); how many
        the store had."""
        page = await self._events_after(self._through, limit)
        if page:
            self._ready.extend(e for e in page if self._selects(e))
            self._through = page[-1].id
        return len(page)

    async def _events_after(self, after: int, limit: int) -> list[Event]:
        """The store's events; while the database is away, wait for it (a consumer has
        nothing to do without it, and its position is safe there)."""
        wait_s = RETRY_FIRST_S
        while True:
            try:
                page = await self._store.events_after(after, limit)
            except StoreUnavailable as exc:
                if not self._store_outage_logged:
                    log.warning("event feed: cannot read the outbox, retrying: %s", exc)
                    self._store_outage_logged = True
                await trio.sleep(wait_s)
                wait_s = min(wait_s * 2, RETRY_MAX_S)
                continue
            if self._store_outage_logged:
                log.info("event feed: reading the outbox again")
                self._store_outage_logged = False
            return page

    async def _follow_store(self) -> None:
        if await self._read(PAGE):
            return
        with trio.move_on_after(self._settings.relay_poll_s):
            if self._relay is not None:
                await self._relay.wait_published(self._through)
            else:
                await trio.sleep_forever()

    async def _without_subscription(self) -> None:
        """Subscribe; while the broker cannot be reached, read what the store has."""
        if trio.current_time() >= self._next_try and await self._subscribe():
            return
        if not await self._read(PAGE):
            await trio.sleep_until(self._next_try)

    async def _subscribe(self) -> bool:
        subscription = new_subscription(self._settings, self._keys, self._queue)
        scope = trio.CancelScope()
        try:
            await self._nursery.start(_run_in, scope, subscription)
        except SubscriptionLost as exc:
            if not self._outage_logged:
                log.warning("event feed: cannot subscribe, retrying: %s", exc)
                self._outage_logged = True
            self._next_try = trio.current_time() + self._retry_s
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            return False
        if self._outage_logged:
            log.info("event feed: subscribed again")
            self._outage_logged = False
        self._retry_s = RETRY_FIRST_S
        self._subscription, self._unsubscribe = subscription, scope
        # What was published while we were not subscribed is in the store only.
        self._catching_up, self._held, self._done_tag = True, None, 0
        return True

    async def _catch_up(self) -> None:
        """Read the store until a short page (the broker has the rest), stopping to yield
        whenever a page holds events for us."""
        while True:
            if await self._read(PAGE) < PAGE:
                self._catching_up = False
            if self._ready or not self._catching_up:
                return

    async def _from_broker(self) -> Event | None:
        assert self._subscription is not None
        try:
            delivery: Delivery | None = None
            with trio.move_on_after(self._settings.relay_poll_s):
                delivery = await self._subscription.receive()
        except SubscriptionLost as exc:
            log.warning("event feed: %s; subscribing again", exc)
            self._unsubscribe.cancel()
            self._subscription = None
            return None
        else:
            if delivery is None:
                # The broker is quiet; it may also have missed what a later event would
                # reveal as a gap (a batch published before we subscribed that committed
                # after we caught up): a quiet spell is when to look in the store.
                await self._read(PAGE)
                return None
        if delivery.event.id <= self._through:
            self._subscription.ack(delivery.tag)  # a copy of one accounted for
            return None
        self._held = delivery
        return await self._fill_gap(delivery)

    async def _fill_gap(self, held: Delivery) -> Event | None:
        """`held` once every id before it is accounted for: a gap (events published
        before we subscribed, or while the broker was away, or for other keys) is read
        from the store first."""
        missing = held.event.id - 1 - self._through
        if missing > 0:
            if not await self._read(min(PAGE, missing)):
                # Numbered and published, but not committed yet (the relay commits
                # after the broker has the batch): it cannot jump the queue, so wait.
                await trio.sleep(GAP_POLL_S)
            return None  # yield what the store gave first, then come back
        self._held = None
        self._through = held.event.id
        self._done_tag = held.tag
        return held.event


async def _run_in(
    scope: trio.CancelScope,
    subscription: Subscription,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await subscription.run(task_status=task_status)


@asynccontextmanager
async def follow(
    store: EventSource,
    settings: Settings,
    after: int,
    *,
    binding_keys: Sequence[str] = ("#",),
    queue: str | None = None,
    relay: Published | None = None,
) -> AsyncIterator[Feed]:
    """The stream after event `after`, from the broker when one is configured (see the
    module's docstring). `queue` names a durable queue (a service that consumes the
    stream); None is a queue of this feed alone. The feed's subscription is the block's:
    it ends when the block does."""
    with sole_error():
        async with trio.open_nursery() as nursery:
            feed = Feed(store, settings, after, binding_keys, queue, relay, nursery)
            try:
                yield feed
            finally:
                nursery.cancel_scope.cancel()
