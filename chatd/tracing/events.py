"""The spans of the event stream: the relay publishing, a consumer processing.

An outbox row keeps the traceparent of the span that recorded it (the writer's
"message.commit", or the store call of a REST change). The relay publishes each
event in a span continuing that trace ("relay.publish"), and hands the broker
that span's traceparent (the AMQP `traceparent` header); a consumer continues
it for each event it processes (say, "notifications.consume"). So a message's
trace goes on past the outbox to the notification it caused.

Both sides work in batches: the per-event spans are linked from one batch span
(the relay's is its store call, "store.publish_events").

Everything here runs only when tracing is on: callers check TRACE.on first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace

from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from chatd.events.event import Event
from chatd.tracing.spans import Attributes, links_to, span, start_span_from, traceparent_of


class EventSpans:
    """One span per event of a batch, each continuing that event's trace."""

    def __init__(self, name: str, events: Sequence[Event], kind: SpanKind) -> None:
        self._spans: dict[int, Span] = {}
        traced: list[Event] = []
        for event in events:
            one = start_span_from(event.traceparent, name, _attributes(event), kind=kind)
            self._spans[event.id] = one
            traced.append(replace(event, traceparent=traceparent_of(one)))
        # The events again, each carrying its own span's traceparent to pass on.
        self.events = traced

    def batch(self, name: str) -> contextlib.AbstractContextManager[Span]:
        """A span for the batch, current inside, linked to every event's span."""
        return span(
            name,
            {"messaging.batch.message_count": len(self.events)},
            links=links_to([event.traceparent for event in self.events]),
        )

    def of(self, event_id: int) -> Span | None:
        return self._spans.get(event_id)

    def add_event(self, event_id: int, name: str, attributes: Attributes) -> None:
        """Note on the span of event `event_id` something it caused (a notification)."""
        one = self._spans.get(event_id)
        if one is not None:
            one.add_event(name, attributes)

    def failed(self, exc: BaseException) -> None:
        for one in self._spans.values():
            one.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    def end(self) -> None:
        for one in self._spans.values():
            one.end()


def _attributes(event: Event) -> Attributes:
    attributes: dict[str, AttributeValue] = {
        "chatd.event.id": event.id,
        "chatd.event.type": event.type,
        "messaging.destination.name": event.routing_key,
    }
    if event.room_id is not None:
        attributes["chatd.room.id"] = event.room_id
    return attributes


def publish_traced(
    publish: Callable[[list[Event]], None], events: Sequence[Event], system: str | None
) -> None:
    """publish(events), each event in a "relay.publish" span continuing its trace, and
    handed over carrying that span's traceparent (the broker's message header).
    `system`: the broker, as OpenTelemetry's messaging.system ("rabbitmq"), if any."""
    traced = EventSpans("relay.publish", events, SpanKind.PRODUCER)
    if system is not None:
        for event in traced.events:
            one = traced.of(event.id)
            if one is not None:
                one.set_attribute("messaging.system", system)
    try:
        publish(traced.events)
    except Exception as exc:
        traced.failed(exc)
        raise
    finally:
        traced.end()
