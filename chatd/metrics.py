"""Prometheus metrics, one registry per running service.

A registry per service (not the process-global default) keeps two
services in one process, as in the tests, from counting into each other.

Under `chatd serve --workers N` every worker is its own process: the
supervisor sets PROMETHEUS_MULTIPROC_DIR, prometheus-client then keeps
each worker's values in files there, and whichever worker answers
/metrics reports the sum over all live workers (gauges: `livesum`).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, registry=registry, multiprocess_mode="livesum")

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, text, labels, registry=registry)

        def histogram(
            name: str, text: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
        ) -> Histogram:
            return Histogram(name, text, labels, registry=registry, buckets=buckets)

        self.ws_connections_active = gauge(
            "chatd_ws_connections_active", "Open WebSocket connections."
        )
        self.ws_connections = counter("chatd_ws_connections", "WebSocket connections accepted.")
        self.messages_received = counter(
            "chatd_messages_received", "Chat messages received from clients."
        )
        self.messages_persisted = counter(
            "chatd_messages_persisted", "Chat messages committed to the store."
        )
        self.messages_delivered = counter(
            "chatd_messages_delivered", "Chat messages handed to a connection's outbox."
        )
        self.fanout_latency = histogram(
            "chatd_fanout_latency_seconds",
            "From a message's commit to its hand-off to the last local member.",
            LATENCY_BUCKETS,
        )
        self.persist_batch_size = histogram(
            "chatd_persist_batch_size", "Messages per committed writer batch.", BATCH_BUCKETS
        )
        self.persist_batch_duration = histogram(
            "chatd_persist_batch_duration_seconds",
            "Time to commit one writer batch.",
            LATENCY_BUCKETS,
        )
        self.bus_publish_duration = histogram(
            "chatd_bus_publish_duration_seconds",
            "Time to send one pipelined batch of publications to Redis.",
            LATENCY_BUCKETS,
        )
        self.bus_reconnects = counter(
            "chatd_bus_reconnects", "Times the Redis bus lost its connection."
        )
        self.bus_connected = gauge(
            "chatd_bus_connected", "1 while the Redis bus is connected (0 without Redis)."
        )
        self.slow_consumer_disconnects = counter(
            "chatd_slow_consumer_disconnects", "Connections closed because their outbox was full."
        )
        self.rooms_active = gauge("chatd_rooms_active", "Rooms with at least one local connection.")
        self.rate_limit_refusals = counter(
            "chatd_rate_limit_refusals",
            "Requests, logins and WebSocket sends refused by a rate limit, by limit name.",
            ("limit",),
        )
        self.room_failures = counter(
            "chatd_room_failures",
            "Unexpected errors in a room task: its sockets closed (1011) and the room restarted.",
        )
        self.event_loop_lag = histogram(
            "chatd_event_loop_lag_seconds",
            "How late a periodic tick runs: time the event loop was too busy to notice.",
            LATENCY_BUCKETS,
        )
        self.recent_cache_hits = counter(
            "chatd_recent_cache_hits", "History reads answered by the Redis recent-message cache."
        )
        self.recent_cache_misses = counter(
            "chatd_recent_cache_misses",
            "History reads the cache could not answer in full (the store did).",
        )
        self.http_requests = counter(
            "chatd_http_requests",
            "REST requests by route template, method and status.",
            ("route", "method", "status"),
        )
        self.http_request_duration = histogram(
            "chatd_http_request_duration_seconds",
            "REST request latency by route template and method.",
            LATENCY_BUCKETS,
            ("route", "method"),
        )
        # The event stream's relay (chatd/events/relay.py).
        self.events_published = counter(
            "chatd_events_published", "Events the relay published (numbered) from the outbox."
        )
        # The outbox is the database's, not this process's: every worker and instance
        # sees the same figure, so workers report the largest, not the sum.
        self.outbox_backlog = Gauge(
            "chatd_outbox_backlog_events",
            "Outbox rows not published yet.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.outbox_oldest_age = Gauge(
            "chatd_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not published yet (0 when none).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.relay_errors = counter(
            "chatd_relay_errors", "Relay passes that failed (broker or database away)."
        )
        self.relay_batch_duration = histogram(
            "chatd_relay_batch_duration_seconds",
            "Time to number, publish and mark one batch of events.",
            LATENCY_BUCKETS,
        )
        # The notifications role (chatd/notifications/).
        self.notifications_created = counter(
            "chatd_notifications_created",
            "Notifications recorded, by kind (mention, dm).",
            ("kind",),
        )
        self.notifications_consumer_lag = gauge(
            "chatd_notifications_consumer_lag_events",
            "Events in the stream the notifications consumer has not processed yet "
            "(0 on a replica standing by).",
        )
        # The admin API (chatd/admin/): actions done, by action (room.close, ...).
        self.admin_actions = counter(
            "chatd_admin_actions", "Administrative actions done, by action.", ("action",)
        )

    def render(self) -> bytes:
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
