"""One message's trace across two instances: receive -> commit -> publish -> deliver.

Two servers run in this process, on one PostgreSQL database and one Redis, as two
instances of one service; one tracer provider records both (each span says which
instance it happened on: chatd.instance).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chatd.config import Settings
from tests.conftest import settings_for, start_server
from tests.notifications.helpers import wait_for_notifications
from tests.redisserver import RedisServer
from tests.tracing.conftest import named, only, settled

_prefixes = itertools.count(1)


def two_instances(
    database_url: str, redis: RedisServer, events_url: str = ""
) -> tuple[Settings, Settings]:
    base = replace(
        settings_for(database_url),
        redis_url=redis.url,
        redis_prefix=f"trace{next(_prefixes)}:",
        events_url=events_url,
    )
    return replace(base, instance_id="a"), replace(base, instance_id="b")


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None, (child.name, parent.name)
    return child.parent.span_id == parent.context.span_id


async def test_a_messages_trace_follows_it_to_both_instances(
    nursery: trio.Nursery,
    postgres_database: str,
    redis: RedisServer,
    spans: InMemorySpanExporter,
) -> None:
    settings_a, settings_b = two_instances(postgres_database, redis)
    api_a, _ = await start_server(nursery, settings_a)
    api_b, _ = await start_server(nursery, settings_b)
    alice, bob = await api_a.signup(), await api_b.signup()
    room = await api_a.create_room(alice)
    async with api_a.socket(alice, room["id"]) as on_a, api_b.socket(bob, room["id"]) as on_b:
        await on_a.send("hello, other instance", client_id="c1")
        sent = await on_a.message()
        received = await on_b.message()
    assert received["id"] == sent["id"] and received["text"] == "hello, other instance"
    await settled()

    message_id = sent["id"]
    receive = only(spans, "message.receive", chatd__room__id=room["id"])
    commit = only(spans, "message.commit", chatd__message__id=message_id)
    publish = only(spans, "message.publish", chatd__message__id=message_id)
    deliver_a = only(spans, "message.deliver", chatd__message__id=message_id, chatd__instance="a")
    deliver_b = only(spans, "message.deliver", chatd__message__id=message_id, chatd__instance="b")
    path = [receive, commit, publish, deliver_a, deliver_b]

    # One trace, begun by the socket that received the message.
    assert len({span.context.trace_id for span in path if span.context}) == 1
    assert receive.parent is None
    assert is_child(commit, receive)
    assert is_child(deliver_a, commit)  # A's own rooms get it straight from the writer
    assert is_child(publish, commit)
    assert is_child(deliver_b, publish)  # B's, from Redis: the context came with it

    instances = [(span.attributes or {}).get("chatd.instance") for span in path]
    assert instances == ["a", "a", "a", "a", "b"]
    for span in (commit, publish, deliver_a, deliver_b):
        assert span.attributes is not None
        assert span.attributes["chatd.message.id"] == message_id
        assert span.attributes["chatd.room.id"] == room["id"]
    assert receive.attributes is not None
    assert receive.attributes["user.id"] == alice.id
    assert commit.attributes is not None and commit.attributes["chatd.batch.size"] == 1
    assert deliver_a.attributes is not None and deliver_a.attributes["chatd.delivery.sockets"] == 1
    assert deliver_b.attributes is not None and deliver_b.attributes["chatd.delivery.sockets"] == 1
    assert publish.kind == SpanKind.PRODUCER and deliver_b.kind == SpanKind.CONSUMER

    # The writer's batch is a span of its own, linked to the message's commit, and the
    # store's transaction is inside it.
    batch = next(
        span
        for span in spans.get_finished_spans()
        if span.name == "writer.batch"
        and any(link.context.span_id == commit.context.span_id for link in span.links)
        if commit.context is not None
    )
    assert (batch.attributes or {}).get("chatd.batch.size") == 1
    append = only(spans, "store.append")
    assert is_child(append, batch)
    assert (append.attributes or {}).get("db.system.name") == "postgresql"
    await api_a.aclose()
    await api_b.aclose()


@pytest.fixture(params=["no broker", "rabbitmq"])
def stream_url(request: pytest.FixtureRequest) -> str:
    """The event stream without a broker (consumers read the outbox), or through RabbitMQ."""
    return "" if request.param == "no broker" else str(request.getfixturevalue("events_url"))


async def test_the_trace_goes_on_through_the_outbox_to_the_notification(
    nursery: trio.Nursery,
    postgres_database: str,
    redis: RedisServer,
    spans: InMemorySpanExporter,
    stream_url: str,
) -> None:
    settings_a, settings_b = two_instances(postgres_database, redis, stream_url)
    api_a, _ = await start_server(nursery, settings_a)
    api_b, _ = await start_server(nursery, settings_b)
    alice, bob, carol = await api_a.signup(), await api_b.signup(), await api_a.signup()
    room = await api_a.create_room(alice)
    joined = await api_a.http.post(f"/api/v1/rooms/{room['id']}/join", headers=carol.headers)
    assert joined.status_code in (200, 201, 204), joined.text
    async with api_a.socket(alice, room["id"]) as on_a, api_b.socket(bob, room["id"]) as on_b:
        await on_a.send(f"@{carol.id} have a look")
        sent = await on_a.message()
        await on_b.message()
    # Carol never connected: the notifications role (on whichever instance holds its
    # lease) records a mention for her.
    [mention] = await wait_for_notifications(api_b, carol, 1)
    assert mention["message_id"] == sent["id"]
    await settled()

    commit = only(spans, "message.commit", chatd__message__id=sent["id"])
    assert commit.context is not None
    in_trace = [
        span
        for span in spans.get_finished_spans()
        if span.context is not None and span.context.trace_id == commit.context.trace_id
    ]
    # One relay published the message's event, continuing the commit's trace.
    [relay] = [span for span in in_trace if span.name == "relay.publish"]
    assert is_child(relay, commit)
    assert relay.attributes is not None
    assert relay.attributes["chatd.event.type"] == "message.created"
    assert relay.attributes["messaging.destination.name"] == f"room.{room['id']}.message.created"
    assert relay.kind == SpanKind.PRODUCER
    if stream_url:
        assert relay.attributes["messaging.system"] == "rabbitmq"

    # The consumer continued it: from the broker's traceparent header (the relay's span),
    # or, with no broker, from the outbox row (the commit's).
    [consume] = [span for span in in_trace if span.name == "notifications.consume"]
    assert is_child(consume, relay if stream_url else commit)
    assert consume.attributes is not None
    assert consume.attributes["chatd.event.id"] == relay.attributes["chatd.event.id"]
    [noted] = consume.events
    assert noted.name == "notification"
    assert noted.attributes is not None
    assert noted.attributes["user.id"] == carol.id
    assert noted.attributes["chatd.notification.kind"] == "mention"
    assert noted.attributes["chatd.notification.id"] == mention["id"]
    assert named(spans, "notifications.batch")
    await api_a.aclose()
    await api_b.aclose()
