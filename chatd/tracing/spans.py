"""The helpers every traced place calls, and the switch they read first.

Tracing is off unless setup.py turned it on. Hot paths read `TRACE.on` before
they build anything (an attribute dict, a closure, a context): when it is off,
that one attribute read is the whole cost. The helpers check it too, so a
place that is not hot may call them without looking.

Context travels as W3C traceparent text ("00-<trace id>-<span id>-<flags>"):
on Draft and TracedMessage, on the bus ("tp"), in the outbox's traceparent column,
in AMQP headers and in HTTP's traceparent header.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

Attributes = Mapping[str, AttributeValue]

# Set on every span (setup.py stamps it): the instance the span happened on. A context
# variable, not the process's resource, because tests run two instances in one process.
INSTANCE_ATTRIBUTE = "chatd.instance"
instance_var: ContextVar[str | None] = ContextVar("chatd_instance", default=None)

_PROPAGATOR = TraceContextTextMapPropagator()
# What a disabled span() returns: entered any number of times, it yields a span that
# records nothing, so callers may set attributes on it without looking.
NO_SPAN: contextlib.AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)


class Switch:
    """Whether this process records spans, and with which tracer (setup.py sets both)."""

    __slots__ = ("on", "tracer")

    def __init__(self) -> None:
        self.on = False
        self.tracer: Tracer = trace.NoOpTracer()


TRACE = Switch()


def serve_as(instance_id: str) -> None:
    """Spans started from here on, in this task and the tasks it starts, belong to this
    instance (the service calls it first thing)."""
    instance_var.set(instance_id)


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """A span, current inside the block: a child of the current span, if any."""
    if not TRACE.on:
        return NO_SPAN
    return TRACE.tracer.start_as_current_span(name, kind=kind, attributes=attributes, links=links)


def span_from(
    traceparent: str | None,
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """A span continuing a remote trace (a root one when `traceparent` is None or bad),
    current inside the block."""
    if not TRACE.on:
        return NO_SPAN
    return TRACE.tracer.start_as_current_span(
        name, context=context_of(traceparent), kind=kind, attributes=attributes, links=links
    )


def start_span_from(
    traceparent: str | None,
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] | None = None,
    start_time: int | None = None,
) -> Span:
    """A started span continuing `traceparent`, not made current: whoever holds it ends
    it (span.end()), e.g. once a batch it is part of has committed. `start_time`: when
    it began (time.time_ns()), if that was earlier."""
    if not TRACE.on:
        return INVALID_SPAN
    return TRACE.tracer.start_span(
        name,
        context=context_of(traceparent),
        kind=kind,
        attributes=attributes,
        links=links,
        start_time=start_time,
    )


def context_of(traceparent: str | None) -> otel_context.Context:
    """A context whose parent is the span `traceparent` names: an empty one (a new trace)
    when it is None or malformed: it may come from a client or another process."""
    if not traceparent:
        return otel_context.Context()
    return _PROPAGATOR.extract({"traceparent": traceparent}, context=otel_context.Context())


def current_traceparent() -> str | None:
    """The current span's traceparent, to carry along; None when tracing is off or no
    span is current."""
    if not TRACE.on:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def traceparent_of(span: Span) -> str | None:
    """This span's traceparent (it need not be current)."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent")


def links_to(traceparents: Iterable[str | None]) -> list[Link]:
    """Links to the spans these traceparents name, for a span that serves many traces
    (a batch); None and malformed ones are skipped."""
    links = []
    for traceparent in traceparents:
        if traceparent:
            span_context = trace.get_current_span(context_of(traceparent)).get_span_context()
            if span_context.is_valid:
                links.append(Link(span_context))
    return links


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (nothing when tracing is off)."""
    if TRACE.on:
        trace.get_current_span().set_attributes(attributes)


def untraced() -> None:
    """The rest of this task belongs to no trace: what it starts later are new traces.

    A Trio task inherits its spawner's context, current span included; a long-lived task
    (a room) spawned while a short span was current (a handshake) would otherwise hang
    everything it ever does below that span.
    """
    if TRACE.on:
        otel_context.attach(otel_context.Context())


@contextlib.contextmanager
def ended_on_exit(spans: list[Span]) -> Iterator[list[Span]]:
    """End these spans when the block ends, marked as failed if it raised an Exception."""
    try:
        yield spans
    except Exception as exc:
        for one in spans:
            one.record_exception(exc)
            one.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for one in spans:
            one.end()


# The dialects' names (store/postgres.py, store/sqlite.py) as OpenTelemetry's db.system.name.
_DB_SYSTEMS = {"postgres": "postgresql", "sqlite": "sqlite"}


def store_span(fn: Callable[..., Any], dialect: str) -> contextlib.AbstractContextManager[Span]:
    """A span for one store call (a transaction in a worker thread), named after the store
    method that made it: "store.append", "store.room", ..."""
    operation = operation_name(fn.__qualname__)
    return span(
        f"store.{operation}",
        {"db.system.name": _DB_SYSTEMS.get(dialect, dialect), "db.operation.name": operation},
        kind=SpanKind.CLIENT,
    )


@functools.lru_cache(maxsize=512)
def operation_name(qualname: str) -> str:
    """The method a store function belongs to: "SqlStore.room.<locals>.find" is "room",
    "SqlStore._append" is "append"."""
    return qualname.split(".<locals>", 1)[0].rsplit(".", 1)[-1].lstrip("_")


def redis_span(
    what: str, command: str, room_id: int | None = None
) -> contextlib.AbstractContextManager[Span]:
    """A span for one Redis round trip: "redis.<what>" (say, "redis.presence.refresh"),
    `command` as OpenTelemetry's db.operation.name ("PIPELINE" for several)."""
    if not TRACE.on:
        return NO_SPAN
    attributes: dict[str, AttributeValue] = {
        "db.system.name": "redis",
        "db.operation.name": command,
    }
    if room_id is not None:
        attributes["chatd.room.id"] = room_id
    return TRACE.tracer.start_as_current_span(
        f"redis.{what}", kind=SpanKind.CLIENT, attributes=attributes
    )


P = ParamSpec("P")
R = TypeVar("R")


def traced_redis(
    what: str, command: str
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorates an async method that makes one Redis round trip: a redis_span() per call
    when tracing is on; the method as it is, one flag check later, when it is off."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            if not TRACE.on:
                return await fn(*args, **kwargs)
            with redis_span(what, command):
                return await fn(*args, **kwargs)

        return traced

    return decorate
