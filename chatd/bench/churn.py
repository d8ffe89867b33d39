"""Inside a soak worker: people who come and go in rooms, a steady sender per room, and
the check that no socket misses or repeats a message.

Each person is one task in the soak's nursery: connect with ?since=<the last id it
saw> (a newcomer: the newest id the room's other sockets here saw), read until its
time is up, close, pause, come back. Now and then one leaves for good and a newcomer
takes its place. A pacer per room sends through whichever of its people is connected;
the sender's echo is the acknowledgement.

The check needs no bookkeeping per message: since every connection starts from a
known id, each id it receives must be one past the one before, the replay after
?since= included. A jump is a gap (lost), a repeat a duplicate. What the rooms sent
last is checked at the end, when everyone is back: every socket must be at its
room's newest id.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from chatd.bench.client import (
    Closed,
    HandshakeFailed,
    WebSocket,
    close_socket,
    connect,
    failure_reason,
    read_until_closed,
    status_code,
)
from chatd.bench.stats import bucket_of
from chatd.bench.wire import filler_text, frame_type, message_frame, read_message
from chatd.closecodes import then_for

CONNECT_TIMEOUT_S = 30.0
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
QUIET_S = 1.0  # at the end: nothing received for this long and everyone caught up
REFUSED_FOR_GOOD = (403, 404)  # no access, no room: retrying cannot help (401: a token aged)


@dataclass(eq=False, slots=True)
class RoomState:
    id: int
    people: list[Person] = field(default_factory=list)
    newest_seen: int = 0  # by any socket of this worker: where a newcomer starts


@dataclass(eq=False, slots=True)
class Person:
    room: RoomState
    token_index: int
    last_id: int | None = None  # None: a newcomer that has not connected yet
    ws: WebSocket | None = None
    connection: int = 0  # how many times it connected: an ack's latency counts on the same one
    pending: dict[int, int] = field(default_factory=dict)  # sent ns -> connection, not yet echoed
    life: trio.CancelScope | None = None  # while connected: ends when it closes by choice
    gone: bool = False  # refused or closed for good (4403/4404): not expected at the end


@dataclass(frozen=True)
class Churn:
    """How people come and go; from the parent's start command."""

    rate_per_room: float  # messages/s
    life_s: float  # mean time a socket stays open (exponential)
    leave_fraction: float  # of closes by choice: leave for good, a newcomer joins instead
    pause_s: float  # mean time before coming back
    text_bytes: int

    @classmethod
    def of(cls, command: dict[str, Any]) -> Churn:
        return cls(
            rate_per_room=float(command["rate_per_room"]),
            life_s=float(command["life_s"]),
            leave_fraction=float(command["leave_fraction"]),
            pause_s=float(command["pause_s"]),
            text_bytes=int(command["text_bytes"]),
        )


class Soak:
    def __init__(self, nursery: trio.Nursery, host: str, port: int) -> None:
        self._nursery = nursery
        self._host, self._port = host, port
        self._tokens: list[str] = []
        self._rooms: list[RoomState] = []
        self._churn: Churn | None = None
        self._pacing = trio.CancelScope()
        self._settling = trio.Event()  # set by finish(): nobody leaves or pauses any more
        self._changed = trio.Event()  # set by every frame and connect: "not quiet yet"
        self._open_limiter: trio.CapacityLimiter | None = None  # first connects only
        self.sent = self.unsent = self.acked = self.received = 0
        self.gaps = self.duplicates = 0
        self.connects = self.reconnects = self.newcomers = self.leaves = self.closes_by_us = 0
        self.first_opened = 0  # of the people start() began with
        self.abandoned = 0  # sent by people who then left for good, never echoed to them
        self.failed_connects: Counter[str] = Counter()
        self.unexpected_closes: Counter[int] = Counter()
        self.error_frames: Counter[str] = Counter()
        self.ack_latency_hist: Counter[int] = Counter()  # bucketed: a long soak stays small

    # -- commands --------------------------------------------------------------

    async def start(self, command: dict[str, Any]) -> dict[str, Any]:
        """Connect everyone (command["concurrency"] at a time), then start the churn and
        the pacers; answers once every first attempt is over."""
        self._churn = churn = Churn.of(command)
        self._tokens = list(command["tokens"])
        self._open_limiter = trio.CapacityLimiter(int(command["concurrency"]))
        started = time.monotonic()
        first_attempts: list[trio.Event] = []
        for room_id, token_indexes in command["rooms"]:
            room = RoomState(int(room_id))
            self._rooms.append(room)
            for token_index in token_indexes:
                person = Person(room, int(token_index))
                room.people.append(person)
                attempted = trio.Event()
                first_attempts.append(attempted)
                self._nursery.start_soon(self._live, person, attempted)
        for attempted in first_attempts:
            await attempted.wait()
        self._open_limiter = None
        self._nursery.start_soon(self._run_pacers, churn)
        return {
            "opened": self.first_opened,
            "failed": dict(self.failed_connects),
            "elapsed_s": time.monotonic() - started,
        }

    async def use_tokens(self, command: dict[str, Any]) -> dict[str, Any]:
        """Fresh tokens (the old ones expire during a long soak); reconnects use them."""
        self._tokens = list(command["tokens"])
        return {}

    async def progress(self, command: dict[str, Any]) -> dict[str, Any]:
        return self._counts()

    async def finish(self, command: dict[str, Any]) -> dict[str, Any]:
        """Stop sending and churning, wait until every socket is back and has caught up
        (at most timeout_s), report, close everything."""
        self._pacing.cancel()
        self._settling.set()
        for room in self._rooms:
            for person in room.people:
                if person.life is not None:
                    person.life.deadline = math.inf
        caught_up = False
        with trio.move_on_after(float(command["timeout_s"])):
            while True:
                self._changed = trio.Event()
                with trio.move_on_after(QUIET_S) as quiet:
                    await self._changed.wait()
                if quiet.cancelled_caught and (caught_up := self._caught_up()):
                    break
        report = self._counts() | {
            "caught_up": caught_up,
            "ack_latency_hist": {str(us): n for us, n in self.ack_latency_hist.items()},
            "rooms": {
                str(room.id): {
                    "newest_seen": room.newest_seen,
                    "last_ids": [p.last_id for p in room.people if p.ws is not None],
                    "away": sum(p.ws is None and not p.gone for p in room.people),
                }
                for room in self._rooms
            },
        }
        self._nursery.cancel_scope.cancel()  # every person closes its socket on the way out
        return report

    # -- people ----------------------------------------------------------------

    async def _live(self, person: Person, attempted: trio.Event | None = None) -> None:
        """Connect, stay a while, close; come back or leave. Runs until cancelled or
        until the person is refused or closed for good. `attempted` is set once its
        first connect succeeded or failed."""
        churn = self._churn
        assert churn is not None
        while True:
            ws = await self._connect(person, attempted)
            attempted = None
            if ws is None:
                person.gone = True
                return
            closed = await self._hold(person, ws, churn)
            if closed is not None:  # the server closed it: never part of the plan
                self.unexpected_closes[closed.code] += 1
                if then_for(closed.code) == "stop":
                    person.gone = True
                    return
                await trio.sleep(RETRY_FIRST_S)
                continue
            self.closes_by_us += 1
            if not self._settling.is_set() and random.random() < churn.leave_fraction:
                self.leaves += 1
                self.abandoned += len(person.pending)
                person.room.people.remove(person)
                newcomer = Person(person.room, random.randrange(len(self._tokens)))
                person.room.people.append(newcomer)
                self.newcomers += 1
                self._nursery.start_soon(self._live, newcomer)
                return
            with trio.move_on_after(random.expovariate(1 / churn.pause_s)):
                await self._settling.wait()  # at the end everyone comes back at once

    async def _connect(self, person: Person, attempted: trio.Event | None) -> WebSocket | None:
        """Open the person's socket (retrying with backoff); None if refused for good."""
        delay = RETRY_FIRST_S
        while True:
            # A returning person resumes after what it saw; a newcomer after what its
            # room's other sockets here saw: either way the next id it gets is known.
            since = person.last_id if person.last_id is not None else person.room.newest_seen
            token = self._tokens[person.token_index % len(self._tokens)]
            path = f"/ws/rooms/{person.room.id}?token={token}&since={since}"
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    if self._open_limiter is not None:
                        async with self._open_limiter:
                            ws = await connect(self._host, self._port, path)
                    else:
                        ws = await connect(self._host, self._port, path)
            except (OSError, HandshakeFailed, trio.TooSlowError) as exc:
                self.failed_connects[failure_reason(exc)] += 1
                if attempted is not None:
                    attempted.set()
                if isinstance(exc, HandshakeFailed) and (
                    status_code(exc.status) in REFUSED_FOR_GOOD
                ):
                    return None
                await trio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            self.connects += 1
            self.reconnects += person.connection > 0
            person.last_id = since
            person.connection += 1
            person.ws = ws
            self._changed.set()
            if attempted is not None:
                self.first_opened += 1
                attempted.set()
            return ws

    async def _hold(self, person: Person, ws: WebSocket, churn: Churn) -> Closed | None:
        """Read until the person's time is up (None: we closed) or the server closes."""
        life_s = math.inf if self._settling.is_set() else random.expovariate(1 / churn.life_s)
        try:
            with trio.CancelScope(deadline=trio.current_time() + life_s) as person.life:
                return await read_until_closed(ws, partial(self._take, person))
            return None
        finally:
            person.life = None
            person.ws = None
            if ws.closed is None:
                ws.close_nowait()
            else:
                close_socket(ws.sock)

    def _take(self, person: Person, frames: list[bytes]) -> None:
        """The hot path: every frame every socket receives."""
        self._changed.set()
        now_ns = time.monotonic_ns()
        for frame in frames:
            parsed = read_message(frame)
            if parsed is None:
                if frame_type(frame) == "error":
                    self.error_frames[_error_code(frame)] += 1
                continue
            message_id, _step, sent_ns = parsed
            last = person.last_id
            assert last is not None  # set on connecting
            if message_id <= last:
                self.duplicates += 1
                continue
            self.gaps += message_id - last - 1
            person.last_id = message_id
            self.received += 1
            room = person.room
            if message_id > room.newest_seen:
                room.newest_seen = message_id
            if (on_connection := person.pending.pop(sent_ns, None)) is not None:
                self.acked += 1
                if on_connection == person.connection:  # not an echo that came in a replay
                    self.ack_latency_hist[bucket_of((now_ns - sent_ns) // 1000)] += 1

    def _caught_up(self) -> bool:
        """Everyone expected is connected, at their room's newest id."""
        for room in self._rooms:
            for person in room.people:
                if person.gone:
                    continue
                if person.ws is None or person.last_id != room.newest_seen:
                    return False
        return True

    # -- traffic ---------------------------------------------------------------

    async def _run_pacers(self, churn: Churn) -> None:
        if churn.rate_per_room <= 0:
            return
        text = filler_text(churn.text_bytes)
        with self._pacing:
            async with trio.open_nursery() as nursery:
                for room in self._rooms:
                    nursery.start_soon(self._pace, room, churn.rate_per_room, text)

    async def _pace(self, room: RoomState, rate: float, text: bytes) -> None:
        """rate messages a second into the room, each from one of its connected people."""
        interval = 1.0 / rate
        at = trio.current_time() + random.random() * interval  # rooms out of step: no bursts
        seq = 0
        while True:
            await trio.sleep_until(at)  # behind schedule: at once, then catch up
            at += interval
            online = [person for person in room.people if person.ws is not None]
            if not online:
                self.unsent += 1
                continue
            person = random.choice(online)
            ws = person.ws
            assert ws is not None
            sent_ns = time.monotonic_ns()
            frame = message_frame(text, 0, sent_ns, seq)
            seq += 1
            person.pending[sent_ns] = person.connection
            try:
                await ws.send_text(frame)
            except (OSError, trio.ClosedResourceError):
                # Closed under us (its time was up): maybe sent, maybe not; if the server
                # took it, the echo comes in the replay when this person is back.
                self.unsent += 1
                continue
            self.sent += 1

    def _counts(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "unsent": self.unsent,
            "acked": self.acked,
            "unconfirmed": self.abandoned
            + sum(len(p.pending) for room in self._rooms for p in room.people),
            "received": self.received,
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "newcomers": self.newcomers,
            "leaves": self.leaves,
            "closes_by_us": self.closes_by_us,
            "connected": sum(p.ws is not None for room in self._rooms for p in room.people),
            "failed_connects": dict(self.failed_connects),
            "unexpected_closes": {str(code): n for code, n in self.unexpected_closes.items()},
            "error_frames": dict(self.error_frames),
        }


def _error_code(frame: bytes) -> str:
    try:
        return str(json.loads(frame)["payload"]["code"])
    except (ValueError, KeyError, TypeError):
        return "unreadable"
