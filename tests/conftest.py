"""Fixtures: real databases (a throwaway PostgreSQL, SQLite files) and real servers."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from chatd.config import Settings
from chatd.server import serve
from chatd.store import Store, open_store
from chatd.store.migrate import apply_migrations
from tests.helpers import Api
from tests.pgserver import PgServer, missing_binaries_reason
from tests.rabbitserver import RabbitServer, missing_rabbitmq_reason
from tests.redisserver import RedisServer, missing_redis_reason

IN_CI = os.environ.get("CI", "").lower() == "true"
TEMPLATE_DB = "chatd_template"
_db_names = itertools.count(1)


def skip_or_fail(reason: str) -> None:
    """Missing infrastructure: a loud skip on a laptop, a failure in CI."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"NOT TESTED: {reason}")


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    external = os.environ.get("CHATD_TEST_DATABASE_URL")
    if external:
        server = PgServer.from_url(external)
    else:
        reason = missing_binaries_reason()
        if reason:
            skip_or_fail(f"PostgreSQL tests need a server: {reason}")
        server = PgServer.start_new()
    try:
        server.drop_database(TEMPLATE_DB)
        server.create_database(TEMPLATE_DB)
        apply_migrations(server.url(TEMPLATE_DB))
        yield server
    finally:
        if not external:
            server.destroy()


@pytest.fixture
def postgres_database(pg: PgServer) -> Iterator[str]:
    """A fresh, migrated database cloned from the template."""
    name = f"chatd_test_{os.getpid()}_{next(_db_names)}"
    pg.create_database(name, template=TEMPLATE_DB)
    try:
        yield pg.url(name)
    finally:
        pg.drop_database(name)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'chatd.db'}"
    apply_migrations(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_database"))


def settings_for(database_url: str) -> Settings:
    """A server on a free loopback port, with a fixed secret and cheap password hashing."""
    return Settings(
        host="127.0.0.1",
        port=0,
        database_url=database_url,
        jwt_secret="test-secret-that-is-long-enough-for-hs256",
        bcrypt_rounds=4,  # the minimum: the suite hashes hundreds of passwords
    )


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port, for this test alone."""
    reason = missing_redis_reason()
    if reason:
        skip_or_fail(f"tests of the Redis bus need Redis: {reason}")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


_vhosts = itertools.count(1)


def _new_rabbit() -> RabbitServer:
    reason = missing_rabbitmq_reason()
    if reason:
        skip_or_fail(f"tests of the event stream's broker need RabbitMQ: {reason}")
    server = RabbitServer()
    server.start()
    return server


@pytest.fixture(scope="session")
def rabbit_server() -> Iterator[RabbitServer]:
    """A throwaway RabbitMQ (never the machine's own on 5672) for the whole session."""
    server = _new_rabbit()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def events_url(rabbit_server: RabbitServer) -> str:
    """amqp:// URL of a vhost of this test's own on the session's broker."""
    return rabbit_server.add_vhost(f"chatd-test-{next(_vhosts)}")


@pytest.fixture
def rabbit() -> Iterator[RabbitServer]:
    """A RabbitMQ for this test alone, which it may stop, kill and restart."""
    server = _new_rabbit()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = open_store(database_url, pool_size=4)
    try:
        yield store
    finally:
        await store.aclose()


async def start_server(nursery: trio.Nursery, settings: Settings) -> tuple[Api, trio.CancelScope]:
    """A real chatd on a free port; cancel the scope to stop it."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[str]) -> None:
        with scope:
            await serve(settings, task_status=task_status)

    base_url: str = await nursery.start(run)
    return Api(base_url), scope


@pytest.fixture
async def api(nursery: trio.Nursery, settings: Settings) -> AsyncIterator[Api]:
    client, _ = await start_server(nursery, settings)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings_with(settings: Settings):  # type: ignore[no-untyped-def]
    def make(**changes: object) -> Settings:
        return replace(settings, **changes)  # type: ignore[arg-type]

    return make
