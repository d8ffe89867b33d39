"""Prometheus metrics, one registry per running service.

A registry per service (not the process-global default) keeps two
services in one process, as in the tests, from counting into each other.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.ws_connections_active = Gauge(
            "chatd_ws_connections_active", "Open WebSocket connections.", registry=registry
        )
        self.ws_connections = Counter(
            "chatd_ws_connections", "WebSocket connections accepted.", registry=registry
        )
        self.messages_received = Counter(
            "chatd_messages_received", "Chat messages received from clients.", registry=registry
        )
        self.messages_persisted = Counter(
            "chatd_messages_persisted", "Chat messages committed to the store.", registry=registry
        )
        self.messages_delivered = Counter(
            "chatd_messages_delivered",
            "Chat messages handed to a connection's outbox.",
            registry=registry,
        )
        self.slow_consumer_disconnects = Counter(
            "chatd_slow_consumer_disconnects",
            "Connections closed because their outbox was full.",
            registry=registry,
        )
        self.rooms_active = Gauge(
            "chatd_rooms_active", "Rooms with at least one local connection.", registry=registry
        )
        self.recent_cache_hits = Counter(
            "chatd_recent_cache_hits",
            "History reads answered by the Redis recent-message cache.",
            registry=registry,
        )
        self.recent_cache_misses = Counter(
            "chatd_recent_cache_misses",
            "History reads the cache could not answer in full (the store did).",
            registry=registry,
        )
        self.http_requests = Counter(
            "chatd_http_requests",
            "REST requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
