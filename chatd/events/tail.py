"""`chatd events tail`: print the event stream as it comes, or replay it from an id.

    chatd events tail                     # new events, one line each
    chatd events tail --from 1 --json     # everything kept, as consumers receive it
    chatd events tail --keys 'room.7.#' --count 10

It reads CHATD_EVENTS_URL (the broker; empty: it follows the outbox in the database,
polling every CHATD_RELAY_POLL_S) and CHATD_DATABASE_URL (for --from, and to fill any
gap the broker leaves). Its queue is its own, gone when it exits. Ctrl-C ends it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

import trio

from chatd.config import Settings
from chatd.events.event import Event


def add_events_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    events = commands.add_parser("events", help="the event stream (docs/events.md)")
    actions = events.add_subparsers(dest="events_command", required=True)
    tail = actions.add_parser(
        "tail", help="print events as they are published (CHATD_EVENTS_URL, CHATD_DATABASE_URL)"
    )
    tail.add_argument(
        "--from",
        dest="from_id",
        type=int,
        metavar="ID",
        help="start at event ID (replayed from the database); default: only new events",
    )
    tail.add_argument(
        "--keys",
        action="append",
        metavar="KEYS",
        help="routing keys to follow, comma-separated: room.7.#, room.*.message.created "
        "(default: #, everything)",
    )
    tail.add_argument("--json", action="store_true", help="each event as consumers receive it")
    tail.add_argument("--count", type=int, metavar="N", help="exit after N events")


def line_of(event: Event) -> str:
    """#id type room=.. actor=.. data"""
    room = "-" if event.room_id is None else event.room_id
    actor = "-" if event.actor_id is None else event.actor_id
    return f"#{event.id} {event.type} room={room} actor={actor} {event.data}"


def events_command(settings: Settings, args: argparse.Namespace) -> int:
    keys = [k.strip() for arg in args.keys or ["#"] for k in arg.split(",") if k.strip()]
    if args.count is not None and args.count < 1:
        print("chatd: --count must be 1 or more", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        trio.run(tail, settings, args.from_id, keys, args.json, args.count, sys.stdout)
    return 0


async def tail(
    settings: Settings,
    from_id: int | None,
    keys: list[str],
    as_json: bool,
    count: int | None,
    out: TextIO,
) -> None:
    from chatd.events.feed import follow
    from chatd.store import open_store

    store = open_store(settings.database_url, pool_size=2, timeout_s=settings.db_timeout_s)
    try:
        after = await store.last_event_id() if from_id is None else max(0, from_id - 1)
        async with follow(store, settings, after, binding_keys=keys) as feed:
            printed = 0
            async for event in feed:
                print(event.encode() if as_json else line_of(event), file=out, flush=True)
                printed += 1
                if printed == count:
                    return
    finally:
        with trio.move_on_after(2, shield=True):
            await store.aclose()
