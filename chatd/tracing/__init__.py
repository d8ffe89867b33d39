"""OpenTelemetry tracing (docs/operations.md, "Tracing"): off unless configured.

spans.py has what traced code calls (and the TRACE switch it reads first);
setup.py turns tracing on, once per process; http.py traces REST requests.
"""

from chatd.tracing.spans import (
    NO_SPAN,
    TRACE,
    annotate,
    context_of,
    current_traceparent,
    ended_on_exit,
    links_to,
    redis_span,
    serve_as,
    span,
    span_from,
    start_span_from,
    store_span,
    traced_redis,
    traceparent_of,
    untraced,
)

__all__ = [
    "NO_SPAN",
    "TRACE",
    "annotate",
    "context_of",
    "current_traceparent",
    "ended_on_exit",
    "links_to",
    "redis_span",
    "serve_as",
    "span",
    "span_from",
    "start_span_from",
    "store_span",
    "traced_redis",
    "traceparent_of",
    "untraced",
]
