"""Inside a bench worker: many WebSockets, paced or pipelined senders, and the tally.

One Reactor task (owned by the worker's nursery) reads every connection. Each
message frame is counted for its step (or as late, if it comes after its step's
report), its id must follow the last one seen on that connection (a jump is a loss),
and its send-to-receipt latency is kept. A connection the server closes comes
back with ?since=. Senders run only inside a step, in the step's nursery.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import trio

from chatd import closecodes
from chatd.bench.client import Closed, HandshakeFailed, Reactor, WebSocket, connect, failure_reason
from chatd.bench.stats import histogram
from chatd.bench.wire import filler_text, frame_type, message_frame, read_message

CONNECT_TIMEOUT_S = 30.0
RECONNECT_FIRST_S = 0.2
RECONNECT_MAX_S = 5.0
NO_STEP = -2  # between steps: every message is late


@dataclass(slots=True)
class Conn:
    room: int
    path: str
    sender: bool
    phase: float  # where in its send interval this sender fires (0..1): no bursts
    ws: WebSocket | None = None
    last_id: int = 0
    # Flood only (wake is None otherwise): sends allowed before their echoes come
    # back, and the event a sender out of credits waits on.
    credits: int = 0
    wake: trio.Event | None = None


class Load:
    def __init__(self, nursery: trio.Nursery, host: str, port: int) -> None:
        self._nursery = nursery
        self._host, self._port = host, port
        self.conns: list[Conn] = []
        self.closing = False
        self.step = NO_STEP
        self.last_frame_ns = 0  # any frame: a backlog is still draining
        self.in_flight = 0  # flood: sent, not yet acknowledged
        # step -> its messages that came after its report; told (and cleared) by wait_quiet
        self.late_by_step: Counter[int] = Counter()
        self._drained: trio.Event | None = None  # set when in_flight gets to 0
        self._reset()
        self._reactor = Reactor[Conn](self._tally, self._lost)
        nursery.start_soon(self._reactor.run)

    def _reset(self) -> None:
        self.sent: Counter[int] = Counter()  # room -> messages sent this step
        self.received: Counter[int] = Counter()  # room -> deliveries of this step's messages
        self.latencies_us: list[int] = []
        self.last_message_ns = 0  # the newest message of this step
        self.in_flight = 0
        self.stale = self.gaps = self.duplicates = self.unsent = self.reconnects = 0
        self.others: Counter[str] = Counter()  # frame types other than messages
        self.closes: Counter[int] = Counter()  # close codes seen

    # -- connections ---------------------------------------------------------

    async def open(self, specs: list[list[Any]], concurrency: int) -> dict[str, Any]:
        """Open [room, token, sender, phase] connections, `concurrency` attempts at a time."""
        limiter = trio.CapacityLimiter(concurrency)
        handshakes_us: list[int] = []
        failures: Counter[str] = Counter()
        started = time.monotonic()

        async def open_one(conn: Conn) -> None:
            async with limiter:
                began = time.monotonic_ns()
                try:
                    with trio.fail_after(CONNECT_TIMEOUT_S):
                        conn.ws = await connect(self._host, self._port, conn.path)
                except (OSError, HandshakeFailed, trio.TooSlowError) as exc:
                    failures[failure_reason(exc)] += 1
                    return
                handshakes_us.append((time.monotonic_ns() - began) // 1000)
            self.conns.append(conn)
            self._reactor.add(conn.ws, conn)

        async with trio.open_nursery() as nursery:
            for room, token, sender, phase in specs:
                path = f"/ws/rooms/{room}?token={token}"
                nursery.start_soon(open_one, Conn(room, path, bool(sender), float(phase)))
        return {
            "opened": len(handshakes_us),
            "failed": dict(failures),
            "elapsed_s": time.monotonic() - started,
            "handshake_us": handshakes_us,
        }

    async def close(self) -> dict[str, Any]:
        self.closing = True
        return {"closed": self._reactor.close_all()}

    def _lost(self, conn: Conn, closed: Closed) -> None:
        conn.ws = None
        if self.closing:
            return
        self.closes[closed.code] += 1
        if closecodes.then_for(closed.code) != "stop":  # removed, deleted: no way back
            self._nursery.start_soon(self._reconnect, conn)

    def _tally(self, conn: Conn, frames: list[bytes]) -> None:
        """The hot path: runs for every frame every client receives."""
        now_ns = self.last_frame_ns = time.monotonic_ns()
        step = self.step
        for frame in frames:
            parsed = read_message(frame)
            if parsed is None:
                kind = frame_type(frame)
                self.others[kind] += 1
                if kind == "error" and conn.wake is not None:
                    self._credit(conn)  # a refused send: its slot is free again
                continue
            message_id, sent_step, sent_ns = parsed
            last = conn.last_id
            if last and message_id != last + 1:
                if message_id <= last:
                    self.duplicates += 1
                    continue
                self.gaps += message_id - last - 1
            conn.last_id = message_id
            if sent_step == step:
                self.received[conn.room] += 1
                self.latencies_us.append((now_ns - sent_ns) // 1000)
                self.last_message_ns = now_ns
            else:
                self.stale += 1  # of an earlier step (during a step: its backlog is not over)
                self.late_by_step[sent_step] += 1
            if conn.wake is not None:
                self._credit(conn)

    def _credit(self, conn: Conn) -> None:
        conn.credits += 1
        assert conn.wake is not None
        conn.wake.set()
        self.in_flight -= 1
        if not self.in_flight and self._drained is not None:
            self._drained.set()

    async def _reconnect(self, conn: Conn) -> None:
        """Back with ?since=<last id seen>, so the server replays what we missed."""
        delay = RECONNECT_FIRST_S
        while not self.closing:
            await trio.sleep(delay * (0.5 + random.random() / 2))
            path = conn.path + (f"&since={conn.last_id}" if conn.last_id else "")
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    ws = await connect(self._host, self._port, path)
            except (OSError, HandshakeFailed, trio.TooSlowError) as exc:
                if isinstance(exc, HandshakeFailed) and exc.refused:
                    return  # no access, or no room: retrying cannot help
                delay = min(RECONNECT_MAX_S, delay * 2)
                continue
            if self.closing:
                ws.close_nowait()
                return
            conn.ws = ws
            self.reconnects += 1
            self._reactor.add(ws, conn)
            return

    # -- steps ---------------------------------------------------------------

    def _trio_time(self, monotonic_s: float) -> float:
        """trio's clock has its own origin; the parent speaks time.monotonic()."""
        return trio.current_time() + (monotonic_s - time.monotonic())

    async def paced_step(self, command: dict[str, Any]) -> dict[str, Any]:
        """Senders send at a fixed rate for duration_s; report after settle_s more."""
        self._reset()
        self.step = step = int(command["step"])
        rate = float(command["rate_per_sender"])
        start = self._trio_time(float(command["start_at"]))
        end = start + float(command["duration_s"])
        text = filler_text(int(command["text_bytes"]))
        if rate > 0:
            async with trio.open_nursery() as nursery:
                for conn in self.conns:
                    if conn.sender:
                        first = start + conn.phase / rate
                        nursery.start_soon(self._pace, conn, step, rate, first, end, text)
        await trio.sleep_until(end + float(command["settle_s"]))
        report = self._report()
        self.step = NO_STEP
        return report

    async def _pace(
        self, conn: Conn, step: int, rate: float, first: float, end: float, text: bytes
    ) -> None:
        interval = 1.0 / rate
        seq = 0
        at = first
        while at < end:
            await trio.sleep_until(at)  # behind schedule: at once, then catch up
            at = first + (seq + 1) * interval
            ws = conn.ws
            frame = message_frame(text, step, time.monotonic_ns(), seq)
            seq += 1
            if ws is None:
                self.unsent += 1
                continue
            try:
                await ws.send_text(frame)
            except (OSError, trio.ClosedResourceError):
                self.unsent += 1
                continue
            self.sent[conn.room] += 1

    async def flood(self, command: dict[str, Any]) -> dict[str, Any]:
        """Every connection sends, keeping up to `window` messages unacknowledged."""
        self._reset()
        self.step = 0
        window = int(command["window"])
        start = self._trio_time(float(command["start_at"]))
        end = start + float(command["duration_s"])
        text = filler_text(int(command["text_bytes"]))
        for conn in self.conns:
            conn.credits, conn.wake = window, trio.Event()
        async with trio.open_nursery() as nursery:
            for conn in self.conns:
                nursery.start_soon(self._flood_one, conn, start, end, text)
        # Sending is over; wait for the echoes still on their way.
        self._drained = trio.Event()
        if self.in_flight > 0:
            with trio.move_on_after(float(command["drain_s"])):
                await self._drained.wait()
        self._drained = None
        report = self._report()
        report["last_ack_ns"] = self.last_message_ns
        report["in_flight"] = self.in_flight
        self.step = NO_STEP
        for conn in self.conns:
            conn.wake = None
        return report

    async def _flood_one(self, conn: Conn, start: float, end: float, text: bytes) -> None:
        await trio.sleep_until(start)
        seq = 0
        while trio.current_time() < end:
            if conn.credits <= 0 or conn.ws is None:
                conn.wake = trio.Event()
                with trio.move_on_at(end):
                    await conn.wake.wait()
                continue
            count, conn.credits = conn.credits, 0
            now_ns = time.monotonic_ns()
            frames = [message_frame(text, 0, now_ns, seq + i) for i in range(count)]
            seq += count
            self.in_flight += count  # before the send: an echo may beat its return
            try:
                await conn.ws.send_many(frames)
            except (OSError, trio.ClosedResourceError):
                self.in_flight -= count
                self.unsent += count
                conn.credits += count
                continue
            self.sent[conn.room] += count

    async def wait_quiet(self, idle_s: float, timeout_s: float) -> dict[str, Any]:
        """Until no frame has arrived for idle_s (a backlog drained), at most timeout_s."""
        with trio.move_on_after(timeout_s) as waited:
            while True:
                quiet_for_s = (time.monotonic_ns() - self.last_frame_ns) / 1e9
                if quiet_for_s >= idle_s:
                    break
                await trio.sleep(idle_s - quiet_for_s)
        late, self.late_by_step = self.late_by_step, Counter()
        return {
            "quiet": not waited.cancelled_caught,
            "late_by_step": {str(step): n for step, n in late.items()},
        }

    def _report(self) -> dict[str, Any]:
        return {
            "sent": {str(room): count for room, count in self.sent.items()},
            "received": {str(room): count for room, count in self.received.items()},
            "latency_hist": {str(us): n for us, n in histogram(self.latencies_us).items()},
            "latency_max_us": max(self.latencies_us, default=0),
            "stale": self.stale,
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "unsent": self.unsent,
            "reconnects": self.reconnects,
            "closes": {str(code): n for code, n in self.closes.items()},
            "others": dict(self.others),
            "connected": sum(conn.ws is not None for conn in self.conns),
        }
