"""What `chatd bench` prints: a header, per-run lines as they come, medians, or JSON."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TextIO

from chatd.bench.options import BenchOptions
from chatd.config import Settings

ECHO_FIGURES = ("committed_per_s", "deliveries_per_s", "latency_median_ms", "latency_p99_ms")
FANOUT_FIGURES: dict[str, tuple[str, ...]] = {
    "best_delivered_per_s": ("best", "achieved_per_s"),
    "best_p50_ms": ("best", "p50_ms"),
    "best_p99_ms": ("best", "p99_ms"),
    "best_server_cpu_pct": ("best", "server_cpu_pct"),
    "best_client_cpu_pct": ("best", "client_cpu_pct"),
}
FIXED_RATE_FIGURES: dict[str, tuple[str, ...]] = {
    name: ("steps", "0", key)
    for name, key in (
        ("delivered_per_s", "achieved_per_s"),
        ("p50_ms", "p50_ms"),
        ("p99_ms", "p99_ms"),
        ("max_ms", "max_ms"),
        ("lost", "lost"),
        ("late", "late"),
        ("server_cpu_pct", "server_cpu_pct"),
        ("client_cpu_pct", "client_cpu_pct"),
    )
}
IDLE_FIGURES = (
    "connects_per_s",
    "handshake_p50_ms",
    "handshake_p99_ms",
    "kib_per_connection",
    "server_rss_before_mib",
    "server_rss_after_mib",
    "still_open_after_hold",
    "traffic_p99_ms",
    "event_loop_lag_p99_ms",
)
FLOOD_FIGURES = (
    "acked_per_s",
    "persisted_metric_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "server_cpu_pct",
    "client_cpu_pct",
    "client_cpu_max_pct",
)


def text_stream(options: BenchOptions) -> TextIO:
    """With --json, stdout carries only the JSON document; the text goes to stderr."""
    return sys.stderr if options.json else sys.stdout


def sayer(options: BenchOptions) -> Callable[[str], None]:
    stream = text_stream(options)

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def describe(settings: Settings, options: BenchOptions) -> str:
    line = (
        f"database: {settings.database_url.split('://')[0]}, "
        f"bus: {'redis' if settings.redis_url else 'in-process'}"
    )
    if options.server_src:
        line += f", server from {options.server_src}"
    if options.workers > 1:
        line += f", {options.workers} server workers"
    return line


def headline(options: BenchOptions) -> str:
    o = options
    if o.scenario == "fanout":
        what = (
            f"{o.rooms} rooms x {o.clients} sockets, one sender per room, {o.text_bytes}-byte texts"
        )
        how = (
            f"{o.rate:.0f} deliveries/s" if o.rate else f"step-up search from {o.start_rate:.0f}/s"
        )
        return f"chatd bench fanout: {what}; {how}, {o.step_s:g} s steps; {o.runs} runs"
    if o.scenario == "idle":
        traffic = f", {o.rate:.0f} deliveries/s meanwhile" if o.rate else ""
        return (
            f"chatd bench idle: {o.connections} sockets over {o.rooms} rooms, "
            f"{o.concurrency} attempts in flight, held {o.hold_s:g} s{traffic}; {o.runs} runs"
        )
    return (
        f"chatd bench flood: {o.senders} senders (a room each), window {o.window}, "
        f"{o.duration_s:g} s; {o.runs} runs"
    )


def figure(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return float(value) if isinstance(value, int | float) else None


def medians(results: list[dict[str, Any]], options: BenchOptions) -> dict[str, dict[str, Any]]:
    """figure -> {median, runs} for the scenario's headline figures."""
    scenario = options.scenario
    paths: dict[str, tuple[str, ...]]
    if scenario == "echo":
        paths = {name: (name,) for name in ECHO_FIGURES}
    elif scenario == "fanout":
        paths = FIXED_RATE_FIGURES if options.rate is not None else FANOUT_FIGURES
    elif scenario == "idle":
        paths = {name: (name,) for name in IDLE_FIGURES}
    else:
        paths = {name: (name,) for name in FLOOD_FIGURES}
    table = {}
    for name, path in paths.items():
        values = [figure(result, path) for result in results]
        present = [value for value in values if value is not None]
        table[name] = {
            "median": statistics.median(present) if present else None,
            "runs": values,
        }
    return table


def print_medians(table: dict[str, dict[str, Any]], say: Callable[[str], None]) -> None:
    width = max(20, *map(len, table))
    for name, row in table.items():
        median = row["median"]
        shown = f"{median:10.1f}" if median is not None else f"{'-':>10}"
        runs = ", ".join(f"{v:.1f}" if v is not None else "-" for v in row["runs"])
        say(f"  {name:<{width}} median {shown}   (runs: {runs})")


def print_json(
    settings: Settings, options: BenchOptions, results: list[dict[str, Any]], table: dict[str, Any]
) -> None:
    document = {
        "scenario": options.scenario,
        "database": settings.database_url.split("://")[0],
        "bus": "redis" if settings.redis_url else "in-process",
        "options": asdict(options) | {"server_src": str(options.server_src or "") or None},
        "medians": {name: row["median"] for name, row in table.items()},
        "runs": results,
    }
    json.dump(document, sys.stdout, indent=2)
    print()
