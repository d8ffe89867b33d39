"""The fanout scenario: R rooms x C sockets, one sender per room, paced; how many
deliveries a second can the server sustain with p99 < --p99-ms and nothing lost?

A step-up search: start at --start-rate deliveries/s, multiply by --factor while
steps pass, then bisect --refine times between the last pass and the first fail.
With --rate, one step at that rate instead (e.g. "p99 at 2,500 deliveries/s").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chatd.bench.accounts import Accounts, create_rooms
from chatd.bench.errors import BenchFailed
from chatd.bench.options import BenchOptions
from chatd.bench.server import Server
from chatd.bench.steps import StepResult, paced_step
from chatd.bench.workers import Workers, default_client_procs, open_connections, open_workers

LOWEST_RATE = 10.0  # deliveries/s: below this a search gives up


async def run_fanout(
    server: Server, options: BenchOptions, accounts: Accounts, say: Callable[[str], None]
) -> dict[str, Any]:
    rooms_n, per_room = options.rooms, options.clients
    tokens = await accounts.tokens(server.http, rooms_n * per_room)
    rooms = await create_rooms(server.http, tokens[0], rooms_n)
    procs = options.client_procs or default_client_procs(rooms_n * per_room)
    # Room r's sender (its client 0) lives in worker r % procs: senders spread evenly.
    shares: list[list[list[Any]]] = [[] for _ in range(procs)]
    for r, room in enumerate(rooms):
        for c in range(per_room):
            token = tokens[r * per_room + c]
            shares[(r + c) % procs].append([room, token, c == 0, r / rooms_n])
    members = dict.fromkeys(rooms, per_room)
    async with open_workers(procs, server.host, server.port) as workers:
        opened = await open_connections(workers, shares, options.concurrency)
        say(
            f"  {opened.count} sockets in {rooms_n} rooms open in {opened.elapsed_s:.1f} s "
            f"({procs} client process{'es' if procs > 1 else ''})"
        )
        if opened.count < rooms_n * per_room:
            raise BenchFailed(
                f"only {opened.count} of {rooms_n * per_room} opened: {opened.failed}"
            )
        settled_s, _late = await workers.wait_quiet()
        say(f"  quiet after {settled_s:.1f} s (the presence frames of the joins)")
        say(STEP_LEGEND)
        say(STEP_HEADER)
        search = _Search(server, workers, options, members, say)
        if options.rate is not None:
            await search.step(options.rate)
        else:
            await search.run()
        await workers.ask_each({"op": "close"})
    best = search.best()
    return {
        "rooms": rooms_n,
        "clients_per_room": per_room,
        "client_procs": procs,
        "best": best.to_json() if best else None,
        "steps": [step.to_json() | {"passed": not why, "why": why} for step, why in search.steps],
    }


class _Search:
    def __init__(
        self,
        server: Server,
        workers: Workers,
        options: BenchOptions,
        members: dict[int, int],
        say: Callable[[str], None],
    ) -> None:
        self._server, self._workers, self._options = server, workers, options
        self._members = members
        self._say = say
        self.steps: list[tuple[StepResult, list[str]]] = []

    async def step(self, rate: float) -> bool:
        options = self._options
        result = await paced_step(
            self._server,
            self._workers,
            index=len(self.steps),
            target_per_s=rate,
            members=self._members,
            duration_s=options.step_s,
            settle_s=options.settle_s,
            text_bytes=options.text_bytes,
        )
        if result.verdict(options.p99_ms):
            # Let an overloaded step's backlog drain before the next one starts, and
            # count what of it arrived after all (late, rather than lost).
            _seconds, late = await self._workers.wait_quiet()
            result = replace(result, late=late[result.index])
        why = result.verdict(options.p99_ms)
        self.steps.append((result, why))
        self._say(step_line(result, why))
        return not why

    async def run(self) -> None:
        options = self._options
        rate = options.start_rate
        passed_at, failed_at = 0.0, math.inf  # highest pass, lowest fail so far
        refined = 0
        for _ in range(options.max_steps):
            if await self.step(rate):
                passed_at = max(passed_at, rate)
            else:
                failed_at = min(failed_at, rate)
            if math.isinf(failed_at):
                rate *= options.factor
            elif not passed_at:
                rate /= options.factor  # even the first step failed: go down
                if rate < LOWEST_RATE:
                    return
            elif refined < options.refine and passed_at < failed_at:
                refined += 1
                rate = math.sqrt(passed_at * failed_at)  # halfway, on a log scale
            else:
                return

    def best(self) -> StepResult | None:
        passed = [step for step, why in self.steps if not why]
        return max(passed, key=lambda step: step.achieved_per_s, default=None)


STEP_LEGEND = (
    "  (CPU %: 100 = one core; (max) = the busiest client process; other = every other "
    "process: PostgreSQL, Redis, anything else running)"
)
STEP_HEADER = (
    f"  {'step':>4} {'target/s':>9} {'achieved/s':>10} {'p50_ms':>7} {'p99_ms':>7} "
    f"{'max_ms':>7} {'lost':>6} {'srv_cpu%':>8} {'cli_cpu%':>8} {'(max)':>6} {'other%':>6}"
    "  result"
)


def step_line(step: StepResult, why: list[str]) -> str:
    tally = step.tally
    notes = []
    if tally.reconnects:
        notes.append(f"{tally.reconnects} reconnects")
    if tally.unsent:
        notes.append(f"{tally.unsent} unsent")
    if step.late:
        notes.append(f"{step.late} late")
    if tally.stale:
        notes.append(f"{tally.stale} from an earlier step")
    return (
        f"  {step.index:>4} {step.target_per_s:>9.0f} {step.achieved_per_s:>10.0f} "
        f"{_ms(tally.percentile_ms(0.5))} {_ms(tally.percentile_ms(0.99))} "
        f"{_ms(tally.max_us / 1000)} {step.lost:>6} {step.cpu.server:>8.0f} "
        f"{step.cpu.clients:>8.0f} {step.cpu.client_max:>6.0f} {step.cpu.other:>6.0f}  "
        f"{'FAIL (' + ', '.join(why) + ')' if why else 'pass'}"
        f"{'  ' + '; '.join(notes) if notes else ''}"
    )


def _ms(value: float | None) -> str:
    return f"{value:>7.1f}" if value is not None else f"{'-':>7}"
