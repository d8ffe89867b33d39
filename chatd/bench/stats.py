"""Latency histograms that workers can send to the parent and the parent can add up.

A latency in microseconds keeps its 7 most significant bits (under 1 % error),
so a step of a million deliveries travels as a few hundred (bucket, count) pairs.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping

SIGNIFICANT_BITS = 7


def bucket_of(micros: int) -> int:
    shift = max(0, micros.bit_length() - SIGNIFICANT_BITS)
    return (micros >> shift) << shift


def histogram(latencies_us: Iterable[int]) -> Counter[int]:
    exact = Counter(latencies_us)  # counted in C; far fewer distinct values than samples
    buckets: Counter[int] = Counter()
    for micros, count in exact.items():
        buckets[bucket_of(max(0, micros))] += count
    return buckets


def merge(histograms: Iterable[Mapping[int, int]]) -> Counter[int]:
    merged: Counter[int] = Counter()
    for each in histograms:
        merged.update(each)
    return merged


def percentile_ms(hist: Mapping[int, int], q: float) -> float | None:
    """The q-th quantile (0..1) in milliseconds; None for an empty histogram."""
    count = sum(hist.values())
    if not count:
        return None
    rank = max(1, round(q * count))
    seen = 0
    for micros in sorted(hist):
        seen += hist[micros]
        if seen >= rank:
            return micros / 1000
    return max(hist) / 1000


def median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None
