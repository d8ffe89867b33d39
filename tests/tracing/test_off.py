"""Tracing off (the default) costs the message path nothing: it never reaches OpenTelemetry."""

from __future__ import annotations

import sys
from dataclasses import replace
from types import FrameType
from typing import Any

import trio

from chatd.config import Settings
from chatd.tracing import TRACE
from tests.conftest import start_server
from tests.redisserver import RedisServer

OURS = ("/opentelemetry/", "/chatd/tracing/")


async def test_with_tracing_off_no_span_code_runs_on_the_message_path(
    nursery: trio.Nursery, settings: Settings, redis: RedisServer
) -> None:
    assert not TRACE.on
    # Presence refreshes far apart: none falls inside the few seconds watched.
    api, _ = await start_server(
        nursery, replace(settings, redis_url=redis.url, presence_ttl_s=3600.0)
    )
    alice, bob = await api.signup(), await api.signup()
    room = await api.create_room(alice)
    async with api.socket(alice, room["id"]) as sender, api.socket(bob, room["id"]) as reader:
        await sender.send_many(3)  # warmed up: the room, the writer and the bus are busy
        await reader.messages(3)

        # Every Python function the event loop calls meanwhile, by the file it is in.
        reached: set[str] = set()

        def watch(frame: FrameType, event: str, arg: Any) -> None:
            if event == "call" and any(part in frame.f_code.co_filename for part in OURS):
                reached.add(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

        sys.setprofile(watch)
        try:
            # Receive, commit, publish (Redis), deliver; and a REST read.
            sent = await sender.send_many(20)
            assert [m["id"] for m in await reader.messages(20)] == [m["id"] for m in sent]
            await api.history(bob, room["id"])
        finally:
            sys.setprofile(None)
    assert reached == set()
    await api.aclose()
