"""Fixtures for the terminal client tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(sqlite_database: str) -> str:
    """The client does not care which store the server uses: SQLite only here."""
    return sqlite_database
