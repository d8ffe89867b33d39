"""The spans of a message's path: receive -> commit -> publish -> deliver.

A socket's "message.receive" span puts its traceparent on the Draft. The
writer commits drafts in batches: each traced draft gets a "message.commit"
span continuing its trace, and the batch a "writer.batch" span (the store
call below it) linked to them. The committed message (a TracedMessage)
carries its commit span's traceparent: the room tasks of this instance continue it
("message.deliver"), and so does the bus ("message.publish"), whose own
traceparent travels to the other instances beside the message, where their
rooms continue it. So one trace shows every instance a message reached.

Everything here runs only when tracing is on: callers check TRACE.on first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from chatd.errors import ChatdError
from chatd.model import Appended, Draft, Message, RoomId, TracedMessage
from chatd.tracing.spans import (
    TRACE,
    Attributes,
    current_traceparent,
    links_to,
    span,
    start_span_from,
    traceparent_of,
)


class CommitSpans:
    """The spans of one batch of drafts the writer commits.

    `drafts` are the batch's drafts, each traced one now carrying its commit span's
    traceparent: the store writes that into the message's outbox row.
    """

    def __init__(self, drafts: Sequence[Draft]) -> None:
        self._size = len(drafts)
        self._spans: list[Span | None] = []
        self.drafts: list[Draft] = []
        for draft in drafts:
            if draft.traceparent is None:
                self._spans.append(None)
                self.drafts.append(draft)
                continue
            commit = start_span_from(
                draft.traceparent,
                "message.commit",
                {"chatd.room.id": draft.room_id, "chatd.batch.size": self._size},
            )
            self._spans.append(commit)
            self.drafts.append(replace(draft, traceparent=traceparent_of(commit)))

    def batch(self) -> contextlib.AbstractContextManager[Span]:
        """The batch's own span, current around the store call."""
        traceparents = [draft.traceparent for draft in self.drafts]
        return span("writer.batch", {"chatd.batch.size": self._size}, links=links_to(traceparents))

    def outcomes(self, outcomes: list[Appended | ChatdError]) -> list[Appended | ChatdError]:
        """What became of the drafts, each message now carrying its commit span's
        traceparent (the bus and the rooms continue from there)."""
        return [self._outcome(index, outcome) for index, outcome in enumerate(outcomes)]

    def _outcome(self, index: int, outcome: Appended | ChatdError) -> Appended | ChatdError:
        commit = self._spans[index]
        if commit is None:
            return outcome
        if isinstance(outcome, ChatdError):
            commit.set_status(Status(StatusCode.ERROR, outcome.code))
            return outcome
        commit.set_attribute("chatd.message.id", outcome.message.id)
        if not outcome.fresh:
            commit.set_attribute("chatd.message.resent", True)  # the original, sent again
        message = TracedMessage.of(outcome.message, self.drafts[index].traceparent)
        return Appended(message, outcome.fresh)

    def failed(self, code: str) -> None:
        """The batch failed: nothing of it was committed."""
        for commit in self._spans:
            if commit is not None:
                commit.set_status(Status(StatusCode.ERROR, code))

    def end(self) -> None:
        for commit in self._spans:
            if commit is not None:
                commit.end()


class PublishSpans:
    """The spans of one batch the Redis bus sends: one "message.publish" per traced message,
    continuing its commit, and "redis.publish" for the round trip, linked to them."""

    def __init__(self, batch: Sequence[object], channel: Callable[[RoomId], str]) -> None:
        self._size = len(batch)
        self._spans: dict[int, tuple[Span, str | None]] = {}
        for event in batch:
            if isinstance(event, TracedMessage) and event.traceparent is not None:
                publish = start_span_from(
                    event.traceparent,
                    "message.publish",
                    {
                        "chatd.message.id": event.id,
                        "chatd.room.id": event.room_id,
                        "messaging.system": "redis",
                        "messaging.operation.type": "send",
                        "messaging.destination.name": channel(event.room_id),
                    },
                    kind=SpanKind.PRODUCER,
                )
                self._spans[id(event)] = (publish, traceparent_of(publish))

    def traceparents(self, messages: Sequence[Message]) -> list[str | None] | None:
        """What the bus carries beside these messages; None if none of them is traced."""
        found = [self._spans.get(id(message), (None, None))[1] for message in messages]
        return found if any(found) else None

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Around the pipeline: its span is current inside; every span ends at the exit,
        failed if the pipeline raised (the bus retries the batch with new spans)."""
        traceparents = [traceparent for _, traceparent in self._spans.values()]
        attributes: Attributes = {
            "db.system.name": "redis",
            "messaging.batch.message_count": self._size,
        }
        try:
            with span(
                "redis.publish", attributes, kind=SpanKind.CLIENT, links=links_to(traceparents)
            ):
                yield
        except Exception as exc:
            for publish, _ in self._spans.values():
                publish.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            for publish, _ in self._spans.values():
                publish.end()


def record_delivery(message: Message, sockets: int, started_ns: int) -> None:
    """A room offered this message (a TracedMessage) to `sockets` local sockets, starting
    at started_ns."""
    traceparent = message.traceparent if isinstance(message, TracedMessage) else None
    start_span_from(
        traceparent,
        "message.deliver",
        {
            "chatd.message.id": message.id,
            "chatd.room.id": message.room_id,
            "chatd.delivery.sockets": sockets,
        },
        kind=SpanKind.CONSUMER,
        start_time=started_ns,
    ).end()


def in_current_trace(message: Message) -> Message:
    """The message, carrying the current span's traceparent (a REST edit's request), so
    that its publish and its deliveries join that trace. As it is when tracing is off."""
    if not TRACE.on:
        return message
    return TracedMessage.of(message, current_traceparent())
