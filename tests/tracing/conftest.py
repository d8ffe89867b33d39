"""Tracing tests read what was recorded from the SDK's in-memory exporter.

Install it before starting a server: the app adds its request spans only when
tracing is on as it is created.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio.testing
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chatd.tracing.setup import install, uninstall


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test; every span, once ended, is in the exporter."""
    exporter = InMemorySpanExporter()
    provider = install(exporter)
    try:
        yield exporter
    finally:
        uninstall(provider)


async def settled() -> None:
    """Every task of the servers in this test is waiting: what they were doing has ended,
    and so have its spans (a client can read an answer before its span ends)."""
    await trio.testing.wait_all_tasks_blocked()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str, **attributes: object) -> ReadableSpan:
    """The one finished span of this name whose attributes have these values."""
    found = [
        span
        for span in named(exporter, name)
        if all(
            (span.attributes or {}).get(key.replace("__", ".")) == value
            for key, value in attributes.items()
        )
    ]
    assert len(found) == 1, [(s.name, dict(s.attributes or {})) for s in found]
    return found[0]
