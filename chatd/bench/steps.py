"""One measured interval: paced senders for a while, every worker's tally merged, and
the CPU the server and the clients used meanwhile (read from /proc)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from chatd.bench.procs import cpu_percent, machine_cpu_s
from chatd.bench.server import Server
from chatd.bench.stats import merge, percentile_ms
from chatd.bench.workers import Workers

LEAD_S = 0.3  # workers get the command this long before the step starts, all at once


@dataclass
class CpuWindow:
    """CPU % of the server (all its processes) and of the clients between two instants:
    100 = one core. client_max is the busiest worker: near 100, the clients are the limit."""

    server: float = 0.0
    clients: float = 0.0
    client_max: float = 0.0
    # Every other process on the machine: PostgreSQL and Redis working for the server, and
    # whatever else runs (a developer's tests, say). When server + clients + other is
    # near 100 x cores, the machine is the limit, not the server.
    other: float = 0.0
    server_rss_bytes: int = 0

    async def measure(self, server: Server, workers: Workers, start: float, end: float) -> None:
        await _sleep_until_monotonic(start)
        machine_0 = machine_cpu_s()
        server_0, clients_0, each_0 = server.usage(), workers.usage(), workers.usage_each()
        await _sleep_until_monotonic(end)
        machine_1 = machine_cpu_s()
        server_1, clients_1, each_1 = server.usage(), workers.usage(), workers.usage_each()
        self.server = cpu_percent(server_0, server_1)
        self.clients = cpu_percent(clients_0, clients_1)
        self.client_max = max(map(cpu_percent, each_0, each_1), default=0.0)
        machine = 100.0 * (machine_1 - machine_0) / max(1e-9, server_1.at_s - server_0.at_s)
        self.other = max(0.0, machine - self.server - self.clients)
        self.server_rss_bytes = server_1.rss_bytes


async def measured(
    server: Server,
    workers: Workers,
    start: float,
    end: float,
    work: Callable[[], Awaitable[list[dict[str, Any]]]],
) -> tuple[list[dict[str, Any]], CpuWindow]:
    """work()'s replies, and the CPU used from start to end (time.monotonic())."""
    cpu = CpuWindow()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cpu.measure, server, workers, start, end)
        replies = await work()
    return replies, cpu


@dataclass
class Tally:
    """Worker reports added up."""

    sent: Counter[int] = field(default_factory=Counter)  # room -> messages
    delivered: int = 0
    latency_hist: Counter[int] = field(default_factory=Counter)
    max_us: int = 0
    stale: int = 0  # messages of an earlier step received during this one
    gaps: int = 0
    duplicates: int = 0
    unsent: int = 0
    reconnects: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    others: Counter[str] = field(default_factory=Counter)
    connected: int = 0

    @classmethod
    def of(cls, replies: list[dict[str, Any]]) -> Tally:
        tally = cls()
        for reply in replies:
            tally.sent.update({int(room): n for room, n in reply["sent"].items()})
            tally.delivered += sum(reply["received"].values())
            tally.max_us = max(tally.max_us, int(reply["latency_max_us"]))
            for key in ("stale", "gaps", "duplicates", "unsent", "reconnects", "connected"):
                setattr(tally, key, getattr(tally, key) + int(reply[key]))
            tally.closes.update(reply["closes"])
            tally.others.update(reply["others"])
        tally.latency_hist = merge(
            {int(us): n for us, n in reply["latency_hist"].items()} for reply in replies
        )
        return tally

    def percentile_ms(self, q: float) -> float | None:
        return percentile_ms(self.latency_hist, q)


@dataclass(frozen=True)
class StepResult:
    index: int
    target_per_s: float
    duration_s: float
    expected: int  # deliveries: each message sent x the sockets in its room
    tally: Tally
    cpu: CpuWindow
    late: int = 0  # deliveries after the settle time (known once the clients are quiet)

    @property
    def lost(self) -> int:
        return self.expected - self.tally.delivered - self.late

    @property
    def achieved_per_s(self) -> float:
        return self.tally.delivered / self.duration_s

    def verdict(self, p99_limit_ms: float) -> list[str]:
        """Why the step failed; [] when it passed."""
        why = []
        p99 = self.tally.percentile_ms(0.99)
        if p99 is None or p99 >= p99_limit_ms:
            why.append("p99")
        if self.lost or self.tally.gaps:
            why.append("lost")
        if self.late:
            why.append("late")
        if self.achieved_per_s < 0.9 * self.target_per_s:
            why.append("short")  # the senders could not keep the pace
        return why

    def to_json(self) -> dict[str, Any]:
        tally = self.tally
        return {
            "step": self.index,
            "target_per_s": round(self.target_per_s, 1),
            "achieved_per_s": round(self.achieved_per_s, 1),
            "messages_sent": sum(tally.sent.values()),
            "deliveries_expected": self.expected,
            "deliveries": tally.delivered,
            "lost": self.lost,
            "late": self.late,
            "stale": tally.stale,
            "gaps": tally.gaps,
            "duplicates": tally.duplicates,
            "unsent": tally.unsent,
            "reconnects": tally.reconnects,
            "closes": dict(tally.closes),
            "other_frames": dict(tally.others),
            "connected": tally.connected,
            "p50_ms": tally.percentile_ms(0.5),
            "p99_ms": tally.percentile_ms(0.99),
            "max_ms": tally.max_us / 1000,
            "server_cpu_pct": round(self.cpu.server, 1),
            "client_cpu_pct": round(self.cpu.clients, 1),
            "client_cpu_max_pct": round(self.cpu.client_max, 1),
            "other_cpu_pct": round(self.cpu.other, 1),
            "server_rss_mib": round(self.cpu.server_rss_bytes / 2**20, 1),
        }


async def paced_step(
    server: Server,
    workers: Workers,
    *,
    index: int,
    target_per_s: float,
    members: dict[int, int],
    duration_s: float,
    settle_s: float,
    text_bytes: int,
) -> StepResult:
    """Every sender sends target_per_s / (sockets in rooms with a sender) messages a second:
    one sender per room and everyone in it receiving, that is target_per_s deliveries."""
    receivers = sum(members.values())
    start = time.monotonic() + LEAD_S
    command = {
        "op": "paced_step",
        "step": index,
        "rate_per_sender": target_per_s / receivers if receivers else 0.0,
        "start_at": start,
        "duration_s": duration_s,
        "settle_s": settle_s,
        "text_bytes": text_bytes,
    }
    replies, cpu = await measured(
        server, workers, start, start + duration_s, lambda: workers.ask_each(command)
    )
    tally = Tally.of(replies)
    expected = sum(n * members.get(room, 0) for room, n in tally.sent.items())
    return StepResult(index, target_per_s, duration_s, expected, tally, cpu)


async def _sleep_until_monotonic(at: float) -> None:
    await trio.sleep(max(0.0, at - time.monotonic()))
