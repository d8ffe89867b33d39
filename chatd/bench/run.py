"""`chatd bench`: set up, run the scenario --runs times (a fresh server each), report."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from chatd.bench.accounts import Accounts
from chatd.bench.echo import run_echo
from chatd.bench.errors import BenchFailed, reportable
from chatd.bench.fanout import run_fanout
from chatd.bench.flood import run_flood
from chatd.bench.idle import run_idle
from chatd.bench.options import BenchOptions, options_from_args
from chatd.bench.procs import raise_file_limit
from chatd.bench.report import (
    describe,
    figure,
    headline,
    medians,
    print_json,
    print_medians,
    sayer,
)
from chatd.bench.scratch import forget_redis_keys, scratch_settings
from chatd.bench.server import Server, migrate, open_server
from chatd.bench.soak import SOAK_FIGURES, run_soak, soak_headline
from chatd.bench.stats import median
from chatd.config import Settings
from chatd.store.migrate import apply_migrations

Say = Callable[[str], None]
Scenario = Callable[[Server, BenchOptions, Accounts, Say], Awaitable[dict[str, Any]]]
SCENARIOS: dict[str, Scenario] = {
    "echo": lambda server, options, accounts, say: run_echo(server, options),
    "fanout": run_fanout,
    "idle": run_idle,
    "flood": run_flood,
    "soak": run_soak,
}


def bench_command(settings: Settings, args: argparse.Namespace) -> int:
    """`chatd bench …`: the exit status (2: bad options, 1: the run failed, 130: Ctrl-C)."""
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"chatd bench: {exc}", file=sys.stderr)
        return 2
    try:
        bench(settings, options)
    except KeyboardInterrupt:  # the server and the workers are stopped by now
        print("chatd bench: interrupted", file=sys.stderr)
        return 130
    except BenchFailed as exc:
        print(f"chatd bench: {exc}", file=sys.stderr)
        return 1
    return 0


def bench(settings: Settings, options: BenchOptions) -> None:
    raise_file_limit()  # inherited by the server and the workers
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    say = sayer(options)
    with tempfile.TemporaryDirectory() as scratch:
        settings = scratch_settings(settings, Path(scratch))
        if options.scenario != "echo":
            say(soak_headline(options) if options.scenario == "soak" else headline(options))
            say(describe(settings, options))
        try:
            results = trio.run(_run_all, settings, options, say)
        except BaseException as exc:  # children are stopped by now
            raise reportable(exc) from None
    table = soak_medians(results) if options.scenario == "soak" else medians(results, options)
    if options.scenario == "echo":
        o = options
        say(f"chatd bench: {o.clients} clients x {o.messages} messages, one room, {o.runs} runs")
        say(describe(settings, options))
    else:
        say(f"medians over {options.runs} run{'s' if options.runs > 1 else ''}:")
    print_medians(table, say)
    if options.json:
        print_json(settings, options, results, table)
    # A scenario with a verdict of its own (soak) fails after it has been reported.
    failures = [why for result in results for why in result.get("failures", [])]
    if failures:
        raise BenchFailed(f"{options.scenario} failed: " + "; ".join(failures))


def soak_medians(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table = {}
    for name in SOAK_FIGURES:
        values = [figure(result, (name,)) for result in results]
        table[name] = {"median": median(values), "runs": values}
    return table


async def _run_all(settings: Settings, options: BenchOptions, say: Say) -> list[dict[str, Any]]:
    if options.server_src is not None:
        await migrate(settings, options.server_src)  # that checkout's schema
    else:
        await trio.to_thread.run_sync(apply_migrations, settings.database_url)
    accounts = Accounts()
    results = []
    try:
        for run in range(options.runs):
            if options.scenario != "echo":
                say(f"run {run + 1} of {options.runs}")
            async with open_server(
                settings, workers=options.workers, server_src=options.server_src
            ) as server:
                results.append(await SCENARIOS[options.scenario](server, options, accounts, say))
    finally:
        with trio.move_on_after(10, shield=True):
            await forget_redis_keys(settings)
    return results
