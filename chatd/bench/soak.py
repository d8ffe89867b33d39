"""The soak scenario: many rooms, steady traffic and sockets coming and going for a
long while (10 minutes by default). Does the server stay flat and lose nothing?

People (sockets) live a random while (--churn-s on average), close, and come back
with ?since=<last id seen>; --leave-pct of them leave for good instead and a
newcomer takes their place. Each room gets a steady share of --rate deliveries/s.
Clients check that every socket receives every id exactly once, in order, from
where it (re)connected (see chatd/bench/churn.py); at the end, once everyone is
back, each must be at its room's newest message, as the REST history says.

Reported: losses (ids skipped, and sockets behind at the end), duplicates, errors
(error frames, closes the clients did not ask for, failed connects, room task
failures, sockets the server still counts after every client closed), and the
server's memory: RSS sampled all along, growth from the end of --warmup-s to the
end and its slope per minute. Any loss, duplicate or error, or growth beyond
--max-growth-mib, fails the run (exit status 1), after the report.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from chatd.bench.accounts import Accounts, create_rooms
from chatd.bench.options import BenchOptions
from chatd.bench.procs import cpu_percent
from chatd.bench.prom import Samples, total
from chatd.bench.server import Server
from chatd.bench.stats import percentile_ms
from chatd.bench.workers import Workers, default_client_procs, open_workers

SAMPLE_EVERY_S = 10.0  # server RSS and /metrics; more often in short runs (30 samples at least)
PROGRESS_EVERY_S = 60.0  # a line of counts, and fresh tokens if they are getting old
PAUSE_S = 1.0  # mean time a socket stays away before coming back
FINISH_TIMEOUT_S = 60.0  # for every socket to be back and caught up at the end
LEAK_WAIT_S = 10.0  # for the server to count no socket once the clients closed them all
CONCURRENCY_CAP = 200  # first connects in flight (--concurrency)

ACTIVE = "chatd_ws_connections_active"
ROOMS_ACTIVE = "chatd_rooms_active"
ROOM_FAILURES = "chatd_room_failures_total"
SLOW_CLOSES = "chatd_slow_consumer_disconnects_total"

SOAK_FIGURES = (
    "lost",
    "duplicates",
    "errors",
    "rss_growth_mib",
    "rss_slope_mib_per_min",
    "rss_end_mib",
    "acked_per_s",
    "ack_p99_ms",
    "reconnects",
)


def soak_headline(options: BenchOptions) -> str:
    o = options
    return (
        f"chatd bench soak: {o.rooms} rooms x {o.clients} sockets, {o.rate or 0:.0f} deliveries/s, "
        f"each socket open ~{o.churn_s:g} s then back with ?since= ({o.leave_pct:g} % leave "
        f"for good, newcomers replace them); {o.duration_s:g} s, memory measured after "
        f"{warmup_s(o):g} s; {o.runs} run{'s' if o.runs > 1 else ''}"
    )


def warmup_s(options: BenchOptions) -> float:
    if options.warmup_s is not None:
        return options.warmup_s
    return min(60.0, options.duration_s / 5)


async def run_soak(
    server: Server, options: BenchOptions, accounts: Accounts, say: Callable[[str], None]
) -> dict[str, Any]:
    rooms_n, per_room = options.rooms, options.clients
    sockets = rooms_n * per_room
    users = min(options.users or sockets, sockets)
    tokens = await accounts.tokens(server.http, users)
    rooms = await create_rooms(server.http, tokens[0], rooms_n)
    procs = min(rooms_n, options.client_procs or default_client_procs(sockets))
    rate = options.rate or 0.0
    before = await server.metrics()
    # A room lives in one worker, whole: its newcomers start from what its sockets saw.
    shares: list[list[list[Any]]] = [[] for _ in range(procs)]
    for r, room in enumerate(rooms):
        shares[r % procs].append([room, [(r * per_room + c) % users for c in range(per_room)]])
    each = {
        "op": "start",
        "tokens": tokens,
        "concurrency": max(1, min(options.concurrency, CONCURRENCY_CAP) // procs),
        "rate_per_room": rate / sockets,  # each message reaches per_room sockets
        "life_s": options.churn_s,
        "leave_fraction": options.leave_pct / 100,
        "pause_s": PAUSE_S,
        "text_bytes": options.text_bytes,
    }
    async with open_workers(procs, server.host, server.port, "chatd.bench.soak_worker") as workers:
        started = await workers.ask_all([each | {"rooms": share} for share in shares])
        opened = sum(int(reply["opened"]) for reply in started)
        say(
            f"  {opened} of {sockets} sockets open in "
            f"{max(float(r['elapsed_s']) for r in started):.1f} s ({procs} client "
            f"process{'es' if procs > 1 else ''}); {rate / per_room:.0f} messages/s in all"
        )
        watch = _Watch(server, workers, accounts, users, tokens, say)
        usage_0 = server.usage(), workers.usage()
        samples = await watch.run(options.duration_s, warmup_s(options))
        usage_1 = server.usage(), workers.usage()
        finished = await workers.ask_each({"op": "finish", "timeout_s": FINISH_TIMEOUT_S})
    cpu = Cpu(cpu_percent(usage_0[0], usage_1[0]), cpu_percent(usage_0[1], usage_1[1]))
    leaked = await _sockets_left(server)
    after = await server.metrics()
    newest = await _newest_ids(server, watch.tokens[0], rooms)
    return _result(options, samples, finished, newest, before, after, leaked, cpu, say)


@dataclass(frozen=True)
class Cpu:
    """Mean CPU % over the soak (100 = one core): on a shared machine, what else ran."""

    server: float
    clients: float


@dataclass(frozen=True)
class Reading:
    at_s: float  # since the soak started
    rss_mib: float
    sockets: float | None  # the server's chatd_ws_connections_active
    rooms: float | None

    def to_json(self) -> list[float | None]:
        return [round(self.at_s, 1), round(self.rss_mib, 2), self.sockets, self.rooms]


class _Watch:
    """While the soak runs: samples the server, tells progress, renews the tokens."""

    def __init__(
        self,
        server: Server,
        workers: Workers,
        accounts: Accounts,
        users: int,
        tokens: list[str],
        say: Callable[[str], None],
    ) -> None:
        self._server, self._workers, self._accounts = server, workers, accounts
        self._users, self.tokens = users, tokens
        self._say = say

    async def run(self, duration_s: float, warmup_s: float) -> list[Reading]:
        every_s = min(SAMPLE_EVERY_S, duration_s / 30)
        progress_every = max(1, round(min(PROGRESS_EVERY_S, duration_s / 5) / every_s))
        started = trio.current_time()
        samples: list[Reading] = []
        tick = 0
        while (at := started + tick * every_s) <= started + duration_s + 1e-9:
            await trio.sleep_until(at)
            samples.append(await self._sample(at - started))
            if tick and tick % progress_every == 0:
                await self._progress(samples[-1], warmup_s)
                await self._renew_tokens()
            tick += 1
        return samples

    async def _sample(self, at_s: float) -> Reading:
        metrics = await self._server.metrics()
        rss = self._server.usage().rss_bytes / 2**20
        return Reading(at_s, rss, total(metrics, ACTIVE), total(metrics, ROOMS_ACTIVE))

    async def _progress(self, sample: Reading, warmup_s: float) -> None:
        counts = merged(await self._workers.ask_each({"op": "progress"}))
        minutes, seconds = divmod(int(sample.at_s), 60)
        self._say(
            f"  {minutes:>2}:{seconds:02}  RSS {sample.rss_mib:6.1f} MiB"
            f"{' (warming up)' if sample.at_s < warmup_s else ''}, {sample.sockets or 0:.0f} "
            f"sockets; {counts['acked']} acked, {counts['reconnects']} reconnects, "
            f"{counts['newcomers']} newcomers; gaps {counts['gaps']}, duplicates "
            f"{counts['duplicates']}, errors {errors_of(counts)}"
        )

    async def _renew_tokens(self) -> None:
        """Access tokens expire (15 min by default); Accounts logs in again when they
        get old, and the workers' reconnects use the new ones."""
        tokens = await self._accounts.tokens(self._server.http, self._users)
        if tokens != self.tokens:
            self.tokens = tokens
            await self._workers.ask_each({"op": "tokens", "tokens": tokens})


async def _sockets_left(server: Server) -> float | None:
    """What the server still counts as open once every client has closed (0 unless it
    leaks connections), after giving it LEAK_WAIT_S to notice the closes."""
    left = None
    with trio.move_on_after(LEAK_WAIT_S):
        # Another process's count: there is nothing to wait on but asking again.
        while left := total(await server.metrics(), ACTIVE):  # noqa: ASYNC110
            await trio.sleep(0.1)
    return left


async def _newest_ids(server: Server, token: str, rooms: list[int]) -> dict[int, int]:
    """Each room's newest message id, as its history says."""
    newest = {}
    for room in rooms:
        reply = await server.http.get(
            f"/api/v1/rooms/{room}/messages",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
        reply.raise_for_status()
        items = reply.json()["items"]
        newest[room] = int(items[-1]["id"]) if items else 0
    return newest


COUNTS = ("sent", "unsent", "acked", "unconfirmed", "received", "gaps", "duplicates",
          "connects", "reconnects", "newcomers", "leaves", "closes_by_us", "connected")  # fmt: skip
TALLIES = ("failed_connects", "unexpected_closes", "error_frames")


def merged(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' counts added up."""
    counts: dict[str, Any] = {name: sum(int(r[name]) for r in replies) for name in COUNTS}
    for name in TALLIES:
        tally: Counter[str] = Counter()
        for reply in replies:
            tally.update(reply[name])
        counts[name] = dict(tally)
    return counts


def errors_of(counts: dict[str, Any]) -> int:
    return sum(sum(counts[name].values()) for name in TALLIES)


def memory_trend(samples: list[Reading], warmup_s: float) -> dict[str, float | None]:
    """RSS from the end of the warm-up: start and end (each the median of a few samples,
    so one collection's peak does not decide), growth, and the least-squares slope."""
    measured = [s for s in samples if s.at_s >= warmup_s]
    if len(measured) < 2:
        return {"rss_start_mib": None, "rss_end_mib": None, "rss_growth_mib": None,
                "rss_slope_mib_per_min": None}  # fmt: skip
    edge = max(1, min(3, len(measured) // 4))
    start = statistics.median(s.rss_mib for s in measured[:edge])
    end = statistics.median(s.rss_mib for s in measured[-edge:])
    mean_t = statistics.fmean(s.at_s for s in measured)
    mean_rss = statistics.fmean(s.rss_mib for s in measured)
    spread = sum((s.at_s - mean_t) ** 2 for s in measured)
    slope_per_s = (
        sum((s.at_s - mean_t) * (s.rss_mib - mean_rss) for s in measured) / spread
        if spread
        else 0.0
    )
    return {
        "rss_start_mib": round(start, 2),
        "rss_end_mib": round(end, 2),
        "rss_growth_mib": round(end - start, 2),
        "rss_slope_mib_per_min": round(slope_per_s * 60, 3),
    }


def _result(
    options: BenchOptions,
    samples: list[Reading],
    finished: list[dict[str, Any]],
    newest: dict[int, int],
    before: Samples,
    after: Samples,
    leaked: float | None,
    cpu: Cpu,
    say: Callable[[str], None],
) -> dict[str, Any]:
    counts = merged(finished)
    # At the end every socket must be at its room's newest message, as history says.
    behind = away = 0
    for reply in finished:
        for room, state in reply["rooms"].items():
            behind += sum(newest[int(room)] - int(last) for last in state["last_ids"])
            away += int(state["away"])
    lost = counts["gaps"] + behind
    room_failures = _delta(before, after, ROOM_FAILURES)
    slow_closes = _delta(before, after, SLOW_CLOSES)
    errors = errors_of(counts) + away + room_failures + int(leaked or 0)
    ack_hist: Counter[int] = Counter()
    for reply in finished:
        ack_hist.update({int(us): n for us, n in reply["ack_latency_hist"].items()})
    memory = memory_trend(samples, warmup_s(options))
    result: dict[str, Any] = {
        "rooms": options.rooms,
        "sockets": options.rooms * options.clients,
        "duration_s": options.duration_s,
        "warmup_s": warmup_s(options),
        "deliveries_per_s": options.rate,
        "acked_per_s": round(counts["acked"] / options.duration_s, 1),
        "ack_p50_ms": percentile_ms(ack_hist, 0.5),
        "ack_p99_ms": percentile_ms(ack_hist, 0.99),
        "server_cpu_pct": round(cpu.server, 1),
        "client_cpu_pct": round(cpu.clients, 1),
        **counts,
        "lost": lost,
        "gaps_total": counts["gaps"],
        "behind_at_end": behind,
        "away_at_end": away,
        "caught_up": all(reply["caught_up"] for reply in finished),
        "room_failures": room_failures,
        "slow_consumer_closes": slow_closes,  # also among unexpected_closes (1013)
        "sockets_left_on_server": leaked,
        "errors": errors,
        **memory,
        "max_growth_mib": options.max_growth_mib,
        # The server exports no count of GC-tracked objects; open sockets it does.
        "samples": [sample.to_json() for sample in samples],
        "sample_columns": ["at_s", "rss_mib", "ws_connections_active", "rooms_active"],
    }
    result["failures"] = failures = verdict(result)
    say(
        f"  sent {counts['sent']}, acked {counts['acked']} ({result['acked_per_s']:.0f}/s, "
        f"ack p50 {result['ack_p50_ms'] or 0:.1f} ms, p99 {result['ack_p99_ms'] or 0:.1f} ms; "
        f"server CPU {cpu.server:.0f} %, clients {cpu.clients:.0f} %); "
        f"{counts['connects']} connects: {counts['reconnects']} resumed with ?since=, "
        f"{counts['newcomers']} newcomers for {counts['leaves']} who left"
    )
    say(
        f"  lost {lost} (gaps {counts['gaps']}, behind at the end {behind}), duplicates "
        f"{counts['duplicates']}; errors {errors}: error frames {counts['error_frames'] or 0}, "
        f"closes not asked for {counts['unexpected_closes'] or 0}, failed connects "
        f"{counts['failed_connects'] or 0}, not back at the end {away}, room failures "
        f"{room_failures}, sockets left on the server {_count(leaked)}"
    )
    say(
        f"  server RSS {memory['rss_start_mib']} -> {memory['rss_end_mib']} MiB after the "
        f"warm-up (growth {memory['rss_growth_mib']} MiB, limit {options.max_growth_mib:g}; "
        f"slope {memory['rss_slope_mib_per_min']} MiB/min)"
    )
    say("  " + ("FAIL: " + "; ".join(failures) if failures else "pass"))
    return result


def verdict(result: dict[str, Any]) -> list[str]:
    """Why the soak failed; [] when it passed."""
    why = []
    if result["lost"]:
        why.append(f"{result['lost']} deliveries lost")
    if result["duplicates"]:
        why.append(f"{result['duplicates']} duplicates")
    if result["errors"]:
        why.append(f"{result['errors']} errors")
    growth = result["rss_growth_mib"]
    if growth is not None and growth > result["max_growth_mib"]:
        why.append(f"memory grew {growth} MiB (limit {result['max_growth_mib']:g})")
    if result["deliveries_per_s"] and not result["acked"]:
        why.append("no message was acknowledged")
    return why


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _delta(before: Samples, after: Samples, name: str) -> int:
    return int((total(after, name) or 0) - (total(before, name) or 0))
