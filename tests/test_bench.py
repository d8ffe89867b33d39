"""`chatd bench`: a short fanout and a short soak end to end (completeness only, never
timing), and the cheap readers its clients rely on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from chatd.bench.client import WebSocket, encode_frame
from chatd.bench.prom import buckets, parse_metrics, quantile, total
from chatd.bench.soak import Reading, memory_trend
from chatd.bench.stats import histogram, percentile_ms
from chatd.bench.wire import frame_type, read_message


def bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    """`chatd bench … --json` on a scratch SQLite database: its one run, once it passed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env["CHATD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'bench.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "chatd", "bench", *args, "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [run] = json.loads(proc.stdout)["runs"]
    return run  # type: ignore[no-any-return]


def test_a_short_fanout_delivers_every_message_to_every_client(tmp_path: Path) -> None:
    run = bench(tmp_path, "--scenario", "fanout", "--rooms", "2", "--clients", "5",
                "--rate", "100", "--step-s", "2", "--settle-s", "3")  # fmt: skip
    [step] = run["steps"]
    # 100 deliveries/s over 10 sockets: each of the 2 senders sends 10 a second.
    assert step["messages_sent"] > 0
    assert step["deliveries_expected"] == step["messages_sent"] * 5
    assert step["deliveries"] == step["deliveries_expected"]
    assert (step["lost"], step["gaps"], step["duplicates"], step["unsent"]) == (0, 0, 0, 0)


def test_a_short_soak_loses_nothing_while_sockets_come_and_go(tmp_path: Path) -> None:
    # 12 sockets that stay ~1 s each: dozens of resumes with ?since= and of newcomers.
    run = bench(tmp_path, "--scenario", "soak", "--rooms", "3", "--clients", "4",
                "--rate", "60", "--duration-s", "6", "--churn-s", "1", "--warmup-s", "2",
                "--max-growth-mib", "64")  # fmt: skip
    assert run["acked"] > 0 and run["reconnects"] > 0 and run["newcomers"] > 0
    assert (run["lost"], run["duplicates"], run["errors"]) == (0, 0, 0)
    assert run["caught_up"] and run["sockets_left_on_server"] == 0
    assert run["rss_growth_mib"] is not None and len(run["samples"]) > 10


def test_memory_growth_is_read_after_the_warm_up_and_past_single_peaks() -> None:
    flat = [Reading(t, 100.0 + (50.0 if t == 30 else 0.0), None, None) for t in range(0, 61, 5)]
    trend = memory_trend(flat, warmup_s=10)
    assert (trend["rss_start_mib"], trend["rss_end_mib"], trend["rss_growth_mib"]) == (
        100.0, 100.0, 0.0,
    )  # fmt: skip
    leaking = [Reading(t, 50.0 + t / 6, None, None) for t in range(0, 121, 10)]  # 10 MiB/min
    trend = memory_trend(leaking, warmup_s=0)
    assert trend["rss_slope_mib_per_min"] == 10.0
    assert trend["rss_growth_mib"] is not None and trend["rss_growth_mib"] > 10


def test_message_frames_are_read_without_json_and_with_it() -> None:
    compact = (
        b'{"type":"message","payload":{"id":7,"room_id":1,"user_id":3,'
        b'"text":"a \\"client_id\\":\\"9.9.9","created_at":"2026-01-01T00:00:00Z",'
        b'"client_id":"2.123456789.4"}}'
    )
    spaced = json.dumps(json.loads(compact)).encode()  # another server's layout
    assert read_message(compact) == read_message(spaced) == (7, 2, 123456789)
    foreign = b'{"type":"message","payload":{"id":8,"text":"hi"}}'
    assert read_message(foreign) == (8, -1, 0)
    assert read_message(b'{"type":"presence","payload":{"user_id":3}}') is None
    assert frame_type(b'{"type": "error", "payload": {}}') == "error"


def test_the_frame_parser_splits_joins_and_waits_for_the_rest() -> None:
    ours, theirs = socket.socketpair()
    try:
        ws = WebSocket(ours, b"")
        big = b"x" * 70_000
        stream = (
            bytes((0x81, 5)) + b"hello"
            + bytes((0x01, 3)) + b"par" + bytes((0x80, 2)) + b"ts"  # fragmented
            + bytes((0x81, 127)) + len(big).to_bytes(8, "big") + big
        )  # fmt: skip
        assert ws.feed(stream[:-10]) == [b"hello", b"parts"]
        assert ws.feed(stream[-10:]) == [big]
        theirs.sendall(bytes((0x88, 2)) + (1013).to_bytes(2, "big"))
        assert ws.read_nowait() == []
        assert ws.closed is not None and ws.closed.code == 1013
    finally:
        ours.close()
        theirs.close()


def test_client_frames_are_masked() -> None:
    frame = encode_frame(b"hello")
    assert frame[0] == 0x81 and frame[1] == 0x80 | 5
    mask, masked = frame[2:6], frame[6:]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(masked)) == b"hello"


def test_histograms_keep_percentiles_within_one_percent() -> None:
    hist = histogram(range(1, 100_001))  # 1 us .. 100 ms
    p99 = percentile_ms(hist, 0.99)
    assert p99 is not None and abs(p99 - 99.0) / 99.0 < 0.01


def test_a_quantile_is_read_from_prometheus_buckets() -> None:
    before = parse_metrics(
        'lag_bucket{le="0.01"} 10\nlag_bucket{le="0.1"} 10\nlag_bucket{le="+Inf"} 10\n'
    )
    after = parse_metrics(
        "# TYPE lag histogram\n"
        'lag_bucket{le="0.01"} 60\nlag_bucket{le="0.1"} 110\nlag_bucket{le="+Inf"} 110\n'
        "persisted_total 42.0\n"
    )
    assert total(after, "persisted_total") == 42.0
    assert quantile(0.5, buckets(before, "lag"), buckets(after, "lag")) == 0.01
    assert quantile(0.99, {}, buckets(after, "lag")) is not None
