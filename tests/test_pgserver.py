"""Self-test of the throwaway PostgreSQL server helper."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from tests.pgserver import PgServer, missing_binaries_reason

REASON = missing_binaries_reason()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")

# Locally a machine without PostgreSQL skips (loudly, with the reason); CI fails instead.
pytestmark = pytest.mark.skipif(REASON is not None and not IN_CI, reason=f"{REASON}")


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    if REASON is not None:
        pytest.fail(f"CI=true but no PostgreSQL server can be started: {REASON}")
    server = PgServer.start_new()
    try:
        yield server
    finally:
        server.destroy()


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


def test_clone_from_template(server: PgServer) -> None:
    server.create_database("tpl_clone")
    execute(server.url("tpl_clone"), "CREATE TABLE rooms (id int PRIMARY KEY)")
    execute(server.url("tpl_clone"), "INSERT INTO rooms VALUES (7)")

    server.create_database("clone", template="tpl_clone")

    assert query(server.url("clone"), "SELECT id FROM rooms") == [(7,)]
    with psycopg.connect(server.url("clone")):  # still connected: FORCE disconnects it
        server.drop_database("clone")
    databases = query(server.url(), "SELECT datname FROM pg_database")
    assert ("clone",) not in databases
    server.drop_database("clone")  # dropping a missing database is fine


def test_stop_and_start_keep_data(server: PgServer) -> None:
    server.create_database("survivor")
    execute(server.url("survivor"), "CREATE TABLE notes (body text)")
    execute(server.url("survivor"), "INSERT INTO notes VALUES ('kept')")
    port = server.port

    server.stop()
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url("survivor"), connect_timeout=2)

    server.start()
    assert server.is_running()
    assert server.port == port
    assert query(server.url("survivor"), "SELECT body FROM notes") == [("kept",)]


def test_from_url_manages_databases_but_not_the_server(server: PgServer) -> None:
    external = PgServer.from_url(server.url("some_app_db"))
    assert external.url("x") == server.url("x")
    external.create_database("external_db")
    assert query(external.url("external_db"), "SELECT 1") == [(1,)]
    external.drop_database("external_db")
    assert external.is_running()

    with pytest.raises(NotImplementedError, match="cannot restart an external server"):
        external.stop()
    with pytest.raises(NotImplementedError, match="cannot restart an external server"):
        external.start()
    external.destroy()  # no-op: it is not ours
    assert server.is_running()


def test_destroy_removes_everything() -> None:
    if REASON is not None:
        pytest.fail(f"CI=true but no PostgreSQL server can be started: {REASON}")
    server = PgServer.start_new()
    base_dir = server.base_dir
    assert base_dir is not None and base_dir.is_dir()

    server.destroy()

    assert not base_dir.exists()
    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url(), connect_timeout=2)
    server.destroy()  # idempotent
