"""The idle scenario: open N WebSockets spread over rooms, --concurrency attempts at
a time; how fast do they open, and what does each cost the server in memory?

Memory per connection = (server RSS with N open - RSS before) / N, read once the
connections have settled (--settle-s). Then they stay open for --hold-s, with
light traffic if --rate is given, while the server's event-loop lag is read from
its /metrics (chatd_event_loop_lag_seconds) before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from chatd.bench.accounts import Accounts, create_rooms
from chatd.bench.options import BenchOptions
from chatd.bench.procs import cpu_percent
from chatd.bench.prom import buckets, quantile
from chatd.bench.server import Server
from chatd.bench.stats import histogram, percentile_ms
from chatd.bench.steps import paced_step
from chatd.bench.workers import default_client_procs, open_connections, open_workers

LAG_METRIC = "chatd_event_loop_lag_seconds"
QUIET_BEFORE_S = 1.0  # after set-up (registrations), before the first RSS reading


async def run_idle(
    server: Server, options: BenchOptions, accounts: Accounts, say: Callable[[str], None]
) -> dict[str, Any]:
    count, rooms_n = options.connections, min(options.rooms, options.connections)
    users = min(options.users or count, count)
    tokens = await accounts.tokens(server.http, users)
    rooms = await create_rooms(server.http, tokens[0], rooms_n)
    procs = options.client_procs or default_client_procs(count)
    traffic = bool(options.rate)
    # Socket i: room i % rooms_n, user i % users; the first socket of a room sends.
    shares: list[list[list[Any]]] = [[] for _ in range(procs)]
    members: dict[int, int] = {}
    for i in range(count):
        room = rooms[i % rooms_n]
        members[room] = members.get(room, 0) + 1
        sender = traffic and i < rooms_n
        shares[i % procs].append([room, tokens[i % users], sender, i / rooms_n if sender else 0])
    async with open_workers(procs, server.host, server.port) as workers:
        await trio.sleep(QUIET_BEFORE_S)
        before = server.usage()
        opened = await open_connections(workers, shares, options.concurrency)
        connect_cpu = cpu_percent(before, server.usage())
        say(
            f"  {opened.count} of {count} sockets open in {opened.elapsed_s:.1f} s: "
            f"{opened.per_s:.0f} connects/s, server CPU {connect_cpu:.0f}%"
            + (f"; failed: {opened.failed}" if opened.failed else "")
        )
        settle_until = trio.current_time() + options.settle_s
        quiet_after_s, _late = await workers.wait_quiet()
        await trio.sleep_until(settle_until)
        after = server.usage()
        say(
            f"  quiet after {quiet_after_s:.1f} s; server RSS {before.rss_bytes / 2**20:.1f} -> "
            f"{after.rss_bytes / 2**20:.1f} MiB"
        )
        lag_before = buckets(await server.metrics(), LAG_METRIC)
        hold = await paced_step(
            server,
            workers,
            index=0,
            target_per_s=options.rate or 0.0,
            members=members,
            duration_s=options.hold_s,
            settle_s=0.5,
            text_bytes=options.text_bytes,
        )
        lag_after = buckets(await server.metrics(), LAG_METRIC)
        still_open = hold.tally.connected
        say(
            f"  held {options.hold_s:g} s: {still_open} still open, server CPU "
            f"{hold.cpu.server:.0f}%, clients {hold.cpu.clients:.0f}%, "
            f"other processes {hold.cpu.other:.0f}%"
            + (
                f", {hold.achieved_per_s:.0f} deliveries/s (p50 "
                f"{hold.tally.percentile_ms(0.5) or 0:.1f} ms, p99 "
                f"{hold.tally.percentile_ms(0.99) or 0:.1f} ms, {hold.lost} lost)"
                if traffic
                else ""
            )
            + f", {hold.tally.others.get('presence', 0)} presence frames"
        )
        await workers.ask_each({"op": "close"})
    handshakes = histogram(opened.handshake_us)
    grown = after.rss_bytes - before.rss_bytes
    lag_p99 = quantile(0.99, lag_before, lag_after) if lag_after else None
    return {
        "connections": count,
        "rooms": rooms_n,
        "users": users,
        "client_procs": procs,
        "opened": opened.count,
        "failed": opened.failed,
        "open_s": round(opened.elapsed_s, 3),
        "connects_per_s": round(opened.per_s, 1),
        "server_cpu_connecting_pct": round(connect_cpu, 1),
        "handshake_p50_ms": percentile_ms(handshakes, 0.5),
        "handshake_p99_ms": percentile_ms(handshakes, 0.99),
        "handshake_max_ms": max(opened.handshake_us, default=0) / 1000,
        "quiet_after_s": round(quiet_after_s, 1),
        "server_rss_before_mib": round(before.rss_bytes / 2**20, 1),
        "server_rss_after_mib": round(after.rss_bytes / 2**20, 1),
        "kib_per_connection": round(grown / opened.count / 1024, 2) if opened.count else None,
        "still_open_after_hold": still_open,
        "hold_s": options.hold_s,
        "hold": hold.to_json(),
        "traffic_p50_ms": hold.tally.percentile_ms(0.5),
        "traffic_p99_ms": hold.tally.percentile_ms(0.99),
        "event_loop_lag_p99_ms": round(lag_p99 * 1000, 2) if lag_p99 is not None else None,
    }
