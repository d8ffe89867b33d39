"""The relay: publishes the outbox's events, in order, and records each batch.

Every instance runs one; a PostgreSQL advisory lock taken in each publishing transaction
(store/outbox.py) lets one at a time publish, so no row is published by two of them, and
any of them carries on when the one that was publishing stops. Published means numbered:
with no broker configured the publisher does nothing, and the events are still numbered
(without being read: Store.number_events) and kept for replay and for in-process
consumers.

A pass publishes batches until one comes back short, then the relay waits for a wake-up
(this process committed an event: the store's on_events_committed hook) or for
relay_poll_s (another instance did, or its relay stopped). A pass that fails (the broker
or the database is away) leaves its rows unnumbered; the relay backs off and publishes
the same rows, under the same ids, on its next try. Published rows older than
events_retention_s are pruned about hourly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import trio

from chatd.config import Settings
from chatd.errors import ChatdError
from chatd.events.event import Event
from chatd.events.transport import NoBroker, Publisher, PublishFailed, open_publisher
from chatd.metrics import Metrics
from chatd.store import Store
from chatd.tracing import TRACE
from chatd.tracing.events import publish_traced

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 15.0
# After a wake-up that found nothing to publish (another instance's relay held the lock,
# or a transaction still running held numbering back), look again this soon, then twice
# as late each time, until relay_poll_s: a transaction anywhere on the PostgreSQL server
# can hold numbering back for longer than one look on a busy machine.
RECHECK_S = 0.05
# The backlog gauges cost a query: at most this often.
BACKLOG_EVERY_S = 5.0
PRUNE_EVERY_S = 3600.0
PRUNE_FIRST_S = 60.0  # the first prune after a start: restarts must not starve it
PRUNE_CHUNK = 10_000  # rows per pruning transaction


def utcnow() -> datetime:
    return datetime.now(UTC)


class Relay:
    """The outbox's publisher task: `await nursery.start(relay.run)`.

    wake(): this process committed an event; publish soon (cheap, never blocks).

    In-process consumers follow the stream without a broker through
    `await relay.wait_published(after)`: it returns the newest event id this relay knows
    of once that is above `after`; the consumer then reads `store.events_after(after, n)`.
    The relay learns of events published by other instances' relays every relay_poll_s
    while somebody waits, so a consumer in a process that is not publishing still
    follows, a poll behind at worst.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        publisher_factory: Callable[[Settings], Publisher] = open_publisher,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._settings = settings
        self._publisher_factory = publisher_factory
        # What the spans of a publish name the broker (chatd/tracing/events.py).
        self._broker_system = "rabbitmq" if settings.events_url.startswith("amqp") else None
        self._batch = max(1, settings.relay_batch_max)
        self._poll_s = settings.relay_poll_s
        self._wakeup = trio.Event()
        self._last_id = 0
        self._advanced = trio.Event()  # set, and replaced, whenever _last_id grows

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def last_event_id(self) -> int:
        """The newest event id this relay knows to be published."""
        return self._last_id

    async def wait_published(self, after: int) -> int:
        """Wait until an event with id > after is published; the newest id known then."""
        while self._last_id <= after:
            await self._advanced.wait()
        return self._last_id

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        publisher = self._publisher_factory(self._settings)  # it connects when it first publishes
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._prune_periodically)
                task_status.started()
                await self._publish_forever(publisher)
        finally:
            with trio.move_on_after(2, shield=True):
                await trio.to_thread.run_sync(publisher.close, abandon_on_cancel=True)

    # -- publishing -------------------------------------------------------------------

    async def _publish_forever(self, publisher: Publisher) -> NoReturn:
        failures = 0
        backoff_s = BACKOFF_MIN_S
        next_backlog = next_look = trio.current_time()
        recheck_s = 0.0  # > 0: a wake-up found nothing yet; look again this soon
        while True:
            now = trio.current_time()
            if now >= next_backlog:
                await self._measure_backlog()
                next_backlog = now + BACKLOG_EVERY_S
            if now >= next_look and self._advanced.statistics().tasks_waiting:
                await self._look_for_published()  # maybe by another instance's relay
                next_look = now + self._poll_s
            # A commit from here on wakes the next wait: no wake-up falls between passes.
            self._wakeup = trio.Event()
            try:
                published = await self._publish_batch(publisher)
            except Exception as exc:  # the relay outlives any outage
                failures += 1
                self._metrics.relay_errors.inc()
                if failures == 1:
                    if isinstance(exc, (PublishFailed, ChatdError)):
                        log.warning("relay: cannot publish events, retrying: %s", exc)
                    else:
                        log.exception("relay: publishing failed unexpectedly, retrying")
                await trio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            if failures:
                log.info("relay: publishing again after %d failed tries", failures)
                failures, backoff_s = 0, BACKOFF_MIN_S
            if published == self._batch:
                continue  # more are waiting
            if published == 0 and recheck_s:
                await self._wait(recheck_s)
                recheck_s = recheck_s * 2 if recheck_s * 2 < self._poll_s else 0.0
                continue
            woken = await self._wait(self._poll_s)
            recheck_s = RECHECK_S if woken else 0.0
            if not woken:
                await self._idle_tick(publisher)

    async def _publish_batch(self, publisher: Publisher) -> int:
        """One transaction: the next batch numbered, published and recorded; how many."""
        started = trio.current_time()
        if isinstance(publisher, NoBroker) and not TRACE.on:
            # Nothing to hand the events to (and no spans to make of them): the store
            # numbers the rows without reading them.
            count, last_id = await self._store.number_events(self._batch, utcnow())
            if count:
                self._published(count, started, last_id)
            return count
        newest: list[int] = []

        def publish(events: list[Event]) -> None:
            if TRACE.on:  # a span per event, continuing its trace; the broker gets it too
                publish_traced(publisher.publish, events, self._broker_system)
            else:
                publisher.publish(events)
            newest.append(events[-1].id)

        count = await self._store.publish_events(publish, self._batch, utcnow())
        if count:
            self._published(count, started, newest[-1])
        return count

    def _published(self, count: int, started: float, last_id: int) -> None:
        self._metrics.relay_batch_duration.observe(trio.current_time() - started)
        self._metrics.events_published.inc(count)
        self._advance(last_id)

    async def _wait(self, timeout_s: float) -> bool:
        """Until a wake-up (True) or the timeout (False)."""
        with trio.move_on_after(timeout_s):
            await self._wakeup.wait()
            return True
        return False

    async def _idle_tick(self, publisher: Publisher) -> None:
        """A poll with nothing to do: keep the broker connection alive (heartbeats)."""
        # A failure here is told by the next pass that has events to publish.
        with contextlib.suppress(PublishFailed):
            await trio.to_thread.run_sync(publisher.publish, [])

    async def _look_for_published(self) -> None:
        with contextlib.suppress(ChatdError):  # the publishing pass reports an outage
            self._advance(await self._store.last_event_id())

    def _advance(self, last_id: int) -> None:
        if last_id > self._last_id:
            self._last_id = last_id
            self._advanced.set()
            self._advanced = trio.Event()

    async def _measure_backlog(self) -> None:
        try:
            count, oldest = await self._store.outbox_backlog()
        except ChatdError:
            return  # the publishing pass reports the outage
        self._metrics.outbox_backlog.set(count)
        age_s = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        self._metrics.outbox_oldest_age.set(age_s)

    # -- retention --------------------------------------------------------------------

    async def _prune_periodically(self) -> NoReturn:
        retention = timedelta(seconds=self._settings.events_retention_s)
        await trio.sleep(PRUNE_FIRST_S)
        while True:
            try:
                pruned = await self.prune(utcnow() - retention)
                if pruned:
                    log.info("relay: pruned %d events older than the retention", pruned)
            except ChatdError as exc:
                log.warning("relay: pruning failed, trying again in an hour: %s", exc)
            await trio.sleep(PRUNE_EVERY_S)

    async def prune(self, published_before: datetime) -> int:
        """Delete the events published before then (but the newest), a chunk per
        transaction; how many went."""
        total = 0
        while True:
            pruned = await self._store.prune_events(published_before, PRUNE_CHUNK)
            total += pruned
            if pruned < PRUNE_CHUNK:
                return total
