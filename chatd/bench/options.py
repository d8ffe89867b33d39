"""`chatd bench` options: one set, with defaults that depend on the scenario."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

SCENARIOS = ("echo", "fanout", "idle", "flood", "soak")
# soak: what it runs when not told otherwise
SOAK_ROOMS, SOAK_CLIENTS, SOAK_RATE, SOAK_DURATION_S = 50, 10, 1000.0, 600.0


@dataclass(frozen=True)
class BenchOptions:
    scenario: str = "echo"
    runs: int = 3
    workers: int = 1  # `chatd serve --workers` of the server under test
    server_src: Path | None = None
    client_procs: int | None = None  # None: 1 for small runs, 2 for big ones
    json: bool = False
    text_bytes: int = 100
    clients: int = 50  # echo: sockets in its one room; fanout: sockets per room
    messages: int = 40  # echo: messages each client sends
    rooms: int = 10
    concurrency: int = 200  # connection attempts in flight
    # fanout
    step_s: float = 4.0
    settle_s: float = 1.0
    start_rate: float = 1000.0
    factor: float = 1.5
    refine: int = 3
    max_steps: int = 20
    p99_ms: float = 100.0
    rate: float | None = None  # fanout: one fixed-rate step; idle: light traffic
    # idle
    connections: int = 5000
    users: int | None = None
    hold_s: float = 10.0
    # flood
    senders: int = 50
    window: int = 64
    duration_s: float = 10.0  # flood; soak: SOAK_DURATION_S
    # soak
    churn_s: float = 30.0  # mean time a socket stays open before it closes
    leave_pct: float = 20.0  # of those closes: leave for good (a newcomer joins instead)
    warmup_s: float | None = None  # None: a fifth of the soak, at most a minute
    max_growth_mib: float = 16.0  # server RSS growth after the warm-up that fails the soak


DEFAULTS = BenchOptions()  # the one place each default is written


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--scenario",
        choices=SCENARIOS,
        default=DEFAULTS.scenario,
        help="echo (default): one room, one message in flight per client; fanout: R rooms x C "
        "clients, a step-up search for the highest rate with p99 < --p99-ms and nothing lost; "
        "idle: N open sockets, connects/s and server memory per socket; flood: pipelined "
        "senders, messages persisted/s; soak: rooms with steady traffic and sockets that "
        "come and go for --duration-s, checks nothing is lost and memory stays flat",
    )
    add("--runs", type=int, help="repetitions, medians printed (default: echo 3, others 1)")
    add(
        "--workers",
        type=int,
        default=DEFAULTS.workers,
        help="`serve --workers N` for the server under test",
    )
    add("--server-src", type=Path, metavar="DIR", help="run the server from this checkout")
    add("--client-procs", type=int, help="client processes (default: 1; 2 from 100 sockets)")
    add("--json", action="store_true", help="JSON results on stdout (the text goes to stderr)")
    add("--text-bytes", type=int, default=DEFAULTS.text_bytes, help="size of each message text")
    add("--clients", type=int, help="sockets in a room (echo, fanout: 50; soak: 10)")
    add("--messages", type=int, default=DEFAULTS.messages, help="echo: messages each client sends")
    add(
        "--rooms",
        type=int,
        help="fanout: rooms (10); idle: rooms the sockets spread over (50); soak: rooms (50)",
    )
    add(
        "--concurrency",
        type=int,
        default=DEFAULTS.concurrency,
        help="connection attempts in flight",
    )
    add("--step-s", type=float, default=DEFAULTS.step_s, help="fanout: length of a step")
    add("--settle-s", type=float, help="wait for stragglers (fanout: 1) or before RSS (idle: 5)")
    add(
        "--start-rate",
        type=float,
        default=DEFAULTS.start_rate,
        help="fanout: first step, deliveries/s",
    )
    add(
        "--factor",
        type=float,
        default=DEFAULTS.factor,
        help="fanout: rate multiplier while steps pass",
    )
    add(
        "--refine",
        type=int,
        default=DEFAULTS.refine,
        help="fanout: steps between last pass and first fail",
    )
    add(
        "--max-steps",
        type=int,
        default=DEFAULTS.max_steps,
        help="fanout: steps in a search at most",
    )
    add(
        "--p99-ms", type=float, default=DEFAULTS.p99_ms, help="fanout: a step passes below this p99"
    )
    add(
        "--rate",
        type=float,
        help="deliveries/s; fanout: one step at this rate, no search; idle: light traffic; "
        "soak: steady traffic (1000)",
    )
    add("--connections", type=int, default=DEFAULTS.connections, help="idle: sockets to open")
    add("--users", type=int, help="idle: users the sockets log in as (default: one per socket)")
    add(
        "--hold-s",
        type=float,
        default=DEFAULTS.hold_s,
        help="idle: how long they stay open after that",
    )
    add(
        "--senders",
        type=int,
        default=DEFAULTS.senders,
        help="flood: senders, each in a room of its own",
    )
    add(
        "--window",
        type=int,
        default=DEFAULTS.window,
        help="flood: unacknowledged messages per sender",
    )
    add(
        "--duration-s",
        type=float,
        help="flood: how long the senders send (10); soak: how long it runs (600)",
    )
    add(
        "--churn-s",
        type=float,
        default=DEFAULTS.churn_s,
        help="soak: mean time a socket stays open before it closes and comes back",
    )
    add(
        "--leave-pct",
        type=float,
        default=DEFAULTS.leave_pct,
        help="soak: share of those closes that leave for good (a newcomer joins instead)",
    )
    add(
        "--warmup-s",
        type=float,
        help="soak: memory growth is measured from then on (a fifth of the run, at most 60)",
    )
    add(
        "--max-growth-mib",
        type=float,
        default=DEFAULTS.max_growth_mib,
        help="soak: server RSS growth after the warm-up that fails the run",
    )


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    scenario: str = args.scenario
    soak = scenario == "soak"
    options = BenchOptions(
        scenario=scenario,
        runs=args.runs if args.runs is not None else 3 if scenario == "echo" else 1,
        workers=args.workers,
        server_src=args.server_src.resolve() if args.server_src else None,
        client_procs=args.client_procs,
        json=args.json,
        text_bytes=args.text_bytes,
        clients=_given(args.clients, SOAK_CLIENTS if soak else DEFAULTS.clients),
        messages=args.messages,
        rooms=_given(args.rooms, SOAK_ROOMS if soak else 50 if scenario == "idle" else 10),
        concurrency=args.concurrency,
        step_s=args.step_s,
        settle_s=args.settle_s if args.settle_s is not None else 5.0 if scenario == "idle" else 1.0,
        start_rate=args.start_rate,
        factor=args.factor,
        refine=args.refine,
        max_steps=args.max_steps,
        p99_ms=args.p99_ms,
        rate=_given(args.rate, SOAK_RATE if soak else None),
        connections=args.connections,
        users=args.users,
        hold_s=args.hold_s,
        senders=args.senders,
        window=args.window,
        duration_s=_given(args.duration_s, SOAK_DURATION_S if soak else DEFAULTS.duration_s),
        churn_s=args.churn_s,
        leave_pct=args.leave_pct,
        warmup_s=args.warmup_s,
        max_growth_mib=args.max_growth_mib,
    )
    check(options)
    return options


def _given(value: T | None, default: U) -> T | U:
    return default if value is None else value


def check(options: BenchOptions) -> None:
    """Refuse what cannot run (a ValueError naming the option)."""
    at_least_one = ("runs", "workers", "text_bytes", "clients", "messages", "rooms", "concurrency",
                    "max_steps", "connections", "senders", "window")  # fmt: skip
    for name in at_least_one:
        if getattr(options, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("step_s", "start_rate", "p99_ms", "hold_s", "duration_s", "churn_s"):
        if getattr(options, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    if options.settle_s < 0 or options.refine < 0:
        raise ValueError("--settle-s and --refine cannot be negative")
    if not 0 <= options.leave_pct <= 100:
        raise ValueError("--leave-pct must be between 0 and 100")
    if options.warmup_s is not None and not 0 <= options.warmup_s < options.duration_s:
        raise ValueError("--warmup-s must be at least 0 and shorter than --duration-s")
    if options.max_growth_mib < 0:
        raise ValueError("--max-growth-mib cannot be negative")
    if options.factor <= 1:
        raise ValueError("--factor must be above 1")
    if options.client_procs is not None and options.client_procs < 1:
        raise ValueError("--client-procs must be at least 1")
    if options.rate is not None and options.rate < 0:
        raise ValueError("--rate cannot be negative")
    if options.users is not None and options.users < 1:
        raise ValueError("--users must be at least 1")
    if options.server_src is not None and not (options.server_src / "chatd").is_dir():
        raise ValueError(f"--server-src {options.server_src}: no chatd package there")
