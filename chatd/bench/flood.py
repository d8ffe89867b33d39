"""The flood scenario: S senders, each alone in its room, each keeping up to W messages
unacknowledged (the echo is the acknowledgement) for T seconds. How many messages
a second does the server persist?

The figure is acknowledged / elapsed (start to the last echo), cross-checked
against the server's own counter chatd_messages_persisted_total, read before and
after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chatd.bench.accounts import Accounts, create_rooms, join_rooms
from chatd.bench.errors import BenchFailed
from chatd.bench.options import BenchOptions
from chatd.bench.prom import total
from chatd.bench.server import Server
from chatd.bench.steps import LEAD_S, Tally, measured
from chatd.bench.workers import default_client_procs, open_connections, open_workers

PERSISTED = "chatd_messages_persisted_total"
DRAIN_S = 10.0  # after sending stops, how long to wait for the last echoes


async def run_flood(
    server: Server, options: BenchOptions, accounts: Accounts, say: Callable[[str], None]
) -> dict[str, Any]:
    senders = options.senders
    tokens = await accounts.tokens(server.http, senders)
    rooms = await create_rooms(server.http, tokens[0], senders)
    # Members: each commit also moves its sender's read watermark, as in real rooms.
    await join_rooms(server.http, list(zip(tokens, rooms, strict=True)))
    procs = options.client_procs or default_client_procs(senders)
    shares: list[list[list[Any]]] = [[] for _ in range(procs)]
    for i, (room, token) in enumerate(zip(rooms, tokens, strict=True)):
        shares[i % procs].append([room, token, True, 0])
    async with open_workers(procs, server.host, server.port) as workers:
        opened = await open_connections(workers, shares, options.concurrency)
        if opened.count < senders:
            raise BenchFailed(f"only {opened.count} of {senders} opened: {opened.failed}")
        persisted_before = total(await server.metrics(), PERSISTED)
        start = time.monotonic() + LEAD_S
        command = {
            "op": "flood",
            "window": options.window,
            "start_at": start,
            "duration_s": options.duration_s,
            "drain_s": DRAIN_S,
            "text_bytes": options.text_bytes,
        }
        replies, cpu = await measured(
            server, workers, start, start + options.duration_s, lambda: workers.ask_each(command)
        )
        persisted_after = total(await server.metrics(), PERSISTED)
        await workers.ask_each({"op": "close"})
    tally = Tally.of(replies)
    last_ack_ns = max(int(reply["last_ack_ns"]) for reply in replies)
    elapsed = last_ack_ns / 1e9 - start if last_ack_ns else options.duration_s
    persisted = (
        persisted_after - persisted_before
        if persisted_after is not None and persisted_before is not None
        else None
    )
    result = {
        "senders": senders,
        "window": options.window,
        "duration_s": options.duration_s,
        "client_procs": procs,
        "sent": sum(tally.sent.values()),
        "acknowledged": tally.delivered,
        "in_flight_at_end": sum(int(reply["in_flight"]) for reply in replies),
        "errors": tally.others.get("error", 0),
        "elapsed_s": round(elapsed, 3),
        "acked_per_s": round(tally.delivered / elapsed, 1),
        "persisted_metric": persisted,
        "persisted_metric_per_s": round(persisted / elapsed, 1) if persisted is not None else None,
        "ack_p50_ms": tally.percentile_ms(0.5),
        "ack_p99_ms": tally.percentile_ms(0.99),
        "ack_max_ms": tally.max_us / 1000,
        "server_cpu_pct": round(cpu.server, 1),
        "client_cpu_pct": round(cpu.clients, 1),
        "client_cpu_max_pct": round(cpu.client_max, 1),
        "other_cpu_pct": round(cpu.other, 1),
        "reconnects": tally.reconnects,
        "gaps": tally.gaps,
    }
    say(
        f"  {result['acked_per_s']:.0f} acked/s (server counter: "
        f"{_or_dash(result['persisted_metric_per_s'])}/s), ack p50 "
        f"{_or_dash(result['ack_p50_ms'])} ms p99 {_or_dash(result['ack_p99_ms'])} ms, "
        f"server CPU {cpu.server:.0f}%, clients {cpu.clients:.0f}%, other processes "
        f"{cpu.other:.0f}%"
    )
    return result


def _or_dash(value: object) -> str:
    if isinstance(value, float | int):
        return f"{value:.1f}"
    return "-"
