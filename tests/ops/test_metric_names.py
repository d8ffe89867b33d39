"""Every series the alerts and the dashboard query is one chatd really exports."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from chatd.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
QUERIED = [ROOT / "ops/prometheus/alerts.yml", ROOT / "ops/grafana/dashboards/chatd.json"]
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def exported_series() -> set[str]:
    metrics = Metrics()
    # Labelled families export nothing until a label set is used: use one of each.
    metrics.http_requests.labels("/x", "GET", "200").inc()
    metrics.http_request_duration.labels("/x", "GET").observe(0.1)
    names = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_alerts_and_dashboard_use_only_exported_series() -> None:
    queried = {name for path in QUERIED for name in re.findall(r"chatd_[a-z_]+", path.read_text())}
    assert queried, "no chatd series found in the ops files"
    assert queried <= exported_series(), queried - exported_series()
