"""Persistence: the Store protocol and its SQLite and PostgreSQL backends."""

from __future__ import annotations

from pathlib import Path

from chatd.store.base import Store
from chatd.store.migrate import yoyo_url


def open_store(database_url: str, *, pool_size: int = 10, timeout_s: float = 10.0) -> Store:
    """The backend this URL names (migrations are applied separately)."""
    _, dialect = yoyo_url(database_url)
    if dialect == "sqlite":
        from chatd.store.sqlite import open_sqlite_store

        return open_sqlite_store(Path(database_url.removeprefix("sqlite:///")), timeout_s)
    from chatd.store.postgres import open_postgres_store

    return open_postgres_store(database_url, pool_size, timeout_s)


__all__ = ["Store", "open_store"]
