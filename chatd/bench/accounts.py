"""Users and rooms for a bench, made through the REST API like any client would.

Users are registered once per bench and reused by every run (the database and
the JWT secret outlive each server); they log in again when their tokens get old.
Rooms are new in every run, so message ids start at 1 and nothing is left over.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import trio

PASSWORD = "bench-password"
REST_CONCURRENCY = 16  # bcrypt runs in server threads: a few requests at once use both cores
T = TypeVar("T")


class Accounts:
    def __init__(self) -> None:
        self._emails: list[str] = []
        self._tokens: list[str] = []
        self._fresh_until = 0.0
        self._tag = secrets.token_hex(4)  # several benches may share one database

    async def tokens(self, http: httpx.AsyncClient, count: int) -> list[str]:
        """Access tokens of `count` users (registering those not made yet)."""
        if time.monotonic() > self._fresh_until:
            self._tokens = []
        new = [
            f"bench-{self._tag}-{index}@example.com" for index in range(len(self._emails), count)
        ]
        await _each(new, lambda email: _register(http, email))
        self._emails += new
        if len(self._tokens) < count:
            issued_at = time.monotonic()
            missing = self._emails[len(self._tokens) : count]
            tokens = [""] * len(missing)

            async def log_in(index: int) -> None:
                tokens[index], lifetime_s = await _log_in(http, missing[index])
                # Half the lifetime left at least, or log in again next run.
                self._fresh_until = issued_at + lifetime_s / 2

            await _each(list(range(len(missing))), log_in)
            self._tokens += tokens
        return self._tokens[:count]


async def create_rooms(http: httpx.AsyncClient, token: str, count: int) -> list[int]:
    ids = [0] * count

    async def create(index: int) -> None:
        reply = await http.post(
            "/api/v1/rooms",
            json={"name": f"bench {index}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        reply.raise_for_status()
        ids[index] = int(reply.json()["id"])

    await _each(list(range(count)), create)
    return ids


async def join_rooms(http: httpx.AsyncClient, pairs: list[tuple[str, int]]) -> None:
    """Each (token, room): that user joins that room, as members of a real room have.
    A server older than room membership answers 404 or 405: then nobody joins."""

    async def join(pair: tuple[str, int]) -> None:
        token, room = pair
        reply = await http.post(
            f"/api/v1/rooms/{room}/join", headers={"Authorization": f"Bearer {token}"}
        )
        if reply.status_code not in (404, 405):
            reply.raise_for_status()

    await _each(pairs, join)


async def _register(http: httpx.AsyncClient, email: str) -> None:
    reply = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    if reply.status_code != 409:  # 409: it exists already
        reply.raise_for_status()


async def _log_in(http: httpx.AsyncClient, email: str) -> tuple[str, float]:
    body = {"email": email, "password": PASSWORD}
    reply = await http.post("/api/v1/auth/login", json=body)
    if reply.status_code == 401:  # the database was emptied under us: register again
        await _register(http, email)
        reply = await http.post("/api/v1/auth/login", json=body)
    reply.raise_for_status()
    body = reply.json()
    return str(body["access_token"]), float(body["expires_in"])


async def _each(items: list[T], job: Callable[[T], Awaitable[None]]) -> None:
    """job(item) for every item, REST_CONCURRENCY at a time."""
    limiter = trio.CapacityLimiter(REST_CONCURRENCY)

    async def run(item: T) -> None:
        async with limiter:
            await job(item)

    async with trio.open_nursery() as nursery:
        for item in items:
            nursery.start_soon(run, item)
