"""`chatd events tail`, run as an operator would, against a real server's stream."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from typing import Any

import trio

from chatd.config import Settings
from tests.conftest import start_server
from tests.processes import instance_env

TIMEOUT_S = 30


def tail_env(settings: Settings) -> dict[str, str]:
    return instance_env(
        settings.database_url,
        settings={"CHATD_EVENTS_URL": settings.events_url, "CHATD_RELAY_POLL_S": "0.1"},
    )


async def tail(settings: Settings, *args: str) -> list[str]:
    """`chatd events tail ARGS` to its end; its output lines."""
    with trio.fail_after(TIMEOUT_S):
        done = await trio.run_process(
            [sys.executable, "-m", "chatd", "events", "tail", *args],
            env=tail_env(settings),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


async def rooms_created(settings: Settings, nursery: trio.Nursery, count: int) -> list[Any]:
    api, _ = await start_server(nursery, settings)
    ann = await api.signup()
    return [await api.create_room(ann, name=f"room{i}") for i in range(count)]


async def test_tail_replays_from_an_id_and_prints_one_line_per_event(
    nursery: trio.Nursery, settings: Settings, events_url: str
) -> None:
    settings = replace(settings, events_url=events_url)
    rooms = await rooms_created(settings, nursery, 3)
    lines = await tail(settings, "--from", "2", "--count", "2")
    assert [line.split(" ", 2)[:2] for line in lines] == [
        ["#2", "room.created"],
        ["#3", "room.created"],
    ]
    assert f"room={rooms[1]['id']}" in lines[0]
    raw = await tail(settings, "--from", "1", "--count", "3", "--json", "--keys", "room.*.room.#")
    assert [json.loads(line)["data"]["name"] for line in raw] == ["room0", "room1", "room2"]


async def test_tail_follows_live_events_through_the_broker(
    nursery: trio.Nursery, settings: Settings, events_url: str
) -> None:
    settings = replace(settings, events_url=events_url)
    api, _ = await start_server(nursery, settings)
    ann = await api.signup()
    room = await api.create_room(ann)  # event 1
    printed: list[str] = []
    done = trio.Event()

    async def run_tail() -> None:
        printed.extend(await tail(settings, "--from", "2", "--count", "5", "--json"))
        done.set()

    nursery.start_soon(run_tail)
    async with api.socket(ann, room["id"]) as ws:
        sent = await ws.send_many(5)
    with trio.fail_after(TIMEOUT_S):
        await done.wait()
    events = [json.loads(line) for line in printed]
    assert [e["type"] for e in events] == ["message.created"] * 5
    assert [e["data"]["id"] for e in events] == [m["id"] for m in sent]
    assert [e["id"] for e in events] == [2, 3, 4, 5, 6]


async def test_tail_follows_the_database_without_a_broker_and_ends_on_ctrl_c(
    nursery: trio.Nursery, settings: Settings
) -> None:
    assert settings.events_url == ""
    api, _ = await start_server(nursery, settings)
    ann = await api.signup()
    await api.create_room(ann, name="before")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "chatd", "events", "tail"],  # only what comes from now on
        env=tail_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        with trio.fail_after(TIMEOUT_S):
            first = b""
            # It prints only what is published after it started: keep making rooms
            # until one shows (the process takes a moment to start).
            while not first.endswith(b"\n"):
                await api.create_room(ann, name="after")
                with trio.move_on_after(0.5):
                    first += await process.stdout.receive_some()
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
            errors = b"".join([chunk async for chunk in process.stderr])
    finally:
        if process.returncode is None:
            process.kill()
    line = first.decode().splitlines()[0]
    assert line.split(" ")[1] == "room.created" and '"name":"after"' in line
    assert int(line.split(" ")[0][1:]) >= 2  # not the room made before it started
    assert b"Traceback" not in errors
