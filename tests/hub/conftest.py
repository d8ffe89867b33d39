"""Fixtures of the hub's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatd.store import Store, open_store


@pytest.fixture
async def sqlite_store(sqlite_database: str) -> AsyncIterator[Store]:
    """A store on a fresh SQLite file: the hub's logic, without a server to start."""
    store = open_store(sqlite_database)
    try:
        yield store
    finally:
        await store.aclose()
