"""Just enough of the Prometheus text format to read a counter and a histogram."""

from __future__ import annotations

import math
import re

# name{labels} value, with the labels kept as one string
Samples = dict[tuple[str, str], float]
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LE = re.compile(r'le="([^"]+)"')


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not (match := _LINE.match(line)):
            continue
        name, labels, raw = match.groups()
        try:
            samples[name, labels or ""] = float(raw)
        except ValueError:
            continue
    return samples


def total(samples: Samples, name: str) -> float | None:
    """The sum over every label set (None: the server does not export it)."""
    values = [value for (sample, _), value in samples.items() if sample == name]
    return sum(values) if values else None


def buckets(samples: Samples, name: str) -> dict[float, float]:
    """Cumulative counts by upper bound, summed over label sets; {} if absent."""
    found: dict[float, float] = {}
    for (sample, labels), value in samples.items():
        if sample == f"{name}_bucket" and (match := _LE.search(labels)):
            bound = math.inf if match.group(1) == "+Inf" else float(match.group(1))
            found[bound] = found.get(bound, 0.0) + value
    return found


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """Estimate of quantile q of what was observed between two scrapes, interpolating
    linearly inside a bucket as PromQL's histogram_quantile does. None without data."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # above the highest finite bucket: all we can say
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower
