"""The service: one nursery owning the store, the bus, the hub and the writer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from chatd.auth.accounts import Accounts, TokenPolicy
from chatd.bus.local import LocalBus
from chatd.config import Settings
from chatd.hub.hub import Hub
from chatd.hub.writer import Writer
from chatd.metrics import Metrics
from chatd.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    settings: Settings
    store: Store
    hub: Hub
    writer: Writer
    accounts: Accounts
    metrics: Metrics


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[Service]:
    """Everything behind the transport, running until the block exits."""
    store = open_store(
        settings.database_url, pool_size=settings.db_pool_size, timeout_s=settings.db_timeout_s
    )
    try:
        metrics = Metrics()
        hub = Hub(store, metrics, settings.room_inbox_size)
        bus = LocalBus(hub.dispatch_nowait)
        hub.attach(bus)
        writer = Writer(store, bus, metrics, settings.writer_queue_size, settings.writer_batch_max)
        accounts = Accounts(
            store,
            TokenPolicy(
                secret=settings.jwt_secret,
                access_ttl_s=settings.access_token_ttl_s,
                refresh_ttl_s=settings.refresh_token_ttl_s,
                bcrypt_rounds=settings.bcrypt_rounds,
            ),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            await nursery.start(hub.run)
            await nursery.start(writer.run)
            yield Service(settings, store, hub, writer, accounts, metrics)
            nursery.cancel_scope.cancel()
    finally:
        with trio.move_on_after(2, shield=True):
            await store.aclose()
