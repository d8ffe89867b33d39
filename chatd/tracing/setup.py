"""Turning tracing on: once per process, from the settings, or by a test.

Off unless an OTLP/HTTP endpoint is configured (CHATD_OTEL_ENDPOINT, or the
standard OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
then spans go, in batches from a background thread, to that collector
(Jaeger's all-in-one takes OTLP on port 4318). The sampler is the SDK's
default (every trace, or as the parent said), which the standard
OTEL_TRACES_SAMPLER variables change.

The provider is this module's own, not OpenTelemetry's global one: the
global can be set only once per process, and tests install one per test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracer

import chatd
from chatd.config import Settings
from chatd.tracing.spans import INSTANCE_ATTRIBUTE, TRACE, instance_var

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
# At shutdown, what is still queued gets this long to reach the collector.
SHUTDOWN_S = 5.0


def traces_endpoint(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP URL spans are sent to; None: tracing stays off."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if settings.otel_endpoint:
        return _with_traces_path(settings.otel_endpoint)
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]  # the full URL, by the standard
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return _with_traces_path(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    return None


def _with_traces_path(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


class StampInstance(SpanProcessor):
    """Puts chatd.instance on every span: the instance of the task that started it."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        instance = instance_var.get()
        if instance is not None:
            span.set_attribute(INSTANCE_ATTRIBUTE, instance)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def provider_for(service_name: str, instance_id: str) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": service_name,
                "service.instance.id": instance_id,
                "service.version": chatd.__version__,
            }
        )
    )
    provider.add_span_processor(StampInstance())
    return provider


def configure(
    settings: Settings, instance_id: str, env: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """Turn tracing on if the settings ask for it and it is not on yet; the provider to
    shut down when the process is done, or None if there is nothing for the caller to do."""
    if TRACE.on:
        return None  # a test installed one, or another server in this process did
    url = traces_endpoint(settings, env)
    if url is None:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = provider_for(settings.otel_service_name, instance_id)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    _turn_on(provider)
    log.info("tracing: sending spans to %s as %s", url, settings.otel_service_name)
    return provider


@asynccontextmanager
async def tracing_for(settings: Settings, instance_id: str) -> AsyncIterator[None]:
    """Tracing as configured while the block runs; what is queued is sent at its end."""
    provider = configure(settings, instance_id)
    try:
        yield
    finally:
        if provider is not None:
            await shut_down(provider)


async def shut_down(provider: TracerProvider) -> None:
    """Stop recording and send what is queued, for SHUTDOWN_S at most."""
    _turn_off()
    with trio.move_on_after(SHUTDOWN_S, shield=True):
        # An unreachable collector would hold the thread for its retries: let it go.
        await trio.to_thread.run_sync(provider.shutdown, abandon_on_cancel=True)


def install(exporter: SpanExporter, service_name: str = "chatd") -> TracerProvider:
    """For tests: every span, as it ends, to this exporter (the SDK's InMemorySpanExporter),
    synchronously. Undo with uninstall(); servers started meanwhile leave it in place."""
    provider = provider_for(service_name, "test")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _turn_on(provider)
    return provider


def uninstall(provider: TracerProvider) -> None:
    _turn_off()
    provider.shutdown()


def _turn_on(provider: TracerProvider) -> None:
    TRACE.tracer = provider.get_tracer("chatd", chatd.__version__)
    TRACE.on = True


def _turn_off() -> None:
    TRACE.on = False
    TRACE.tracer = NoOpTracer()
