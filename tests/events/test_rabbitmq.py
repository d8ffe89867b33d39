"""The RabbitMQ transport against a real broker: what the relay publishes is what a
subscription receives, in order; a broker restart needs no operator; a consumer that
falls behind leaves the backlog in the broker, not in our memory."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pika
import pytest
import trio

from chatd.config import Settings
from chatd.events.event import Event
from chatd.events.rabbitmq import PREFETCH, SUBSCRIPTION_BUFFER, RabbitPublisher
from chatd.events.transport import (
    PublishFailed,
    SubscriptionLost,
    open_publisher,
    open_subscription,
)
from chatd.model import RoomId, UserId
from tests.rabbitserver import RabbitServer

EXCHANGE = "chatd.events"


def events(first: int, count: int, room: int = 7) -> list[Event]:
    now = datetime.now(UTC)
    return [
        Event(
            id=i,
            type="message.created",
            version=1,
            room_id=RoomId(room),
            actor_id=UserId(1),
            occurred_at=now,
            data=json.dumps({"id": i, "text": f"m{i}"}),
            traceparent=f"00-{i:032x}-{i:016x}-01" if i % 2 else None,
        )
        for i in range(first, first + count)
    ]


def settings(url: str) -> Settings:
    return Settings(events_url=url, jwt_secret="x" * 40)


async def publish(publisher: RabbitPublisher, batch: list[Event]) -> None:
    await trio.to_thread.run_sync(publisher.publish, batch)


async def test_a_subscription_receives_what_its_keys_select_in_order(events_url: str) -> None:
    publisher = open_publisher(settings(events_url))
    assert isinstance(publisher, RabbitPublisher)
    with trio.fail_after(20):
        async with (
            open_subscription(settings(events_url), ["room.7.#"]) as room7,
            open_subscription(settings(events_url), ["room.*.message.created"]) as created,
        ):
            await publish(publisher, events(1, 5, room=7) + events(6, 3, room=8))
            got7 = [(await room7.receive()).event for _ in range(5)]
            got_all = [(await created.receive()).event for _ in range(8)]
    publisher.close()
    assert [e.id for e in got7] == [1, 2, 3, 4, 5]
    assert [e.id for e in got_all] == list(range(1, 9))
    assert [e.traceparent for e in got7] == [e.traceparent for e in events(1, 5)]
    assert got7[0].body()["data"] == {"id": 1, "text": "m1"}


async def test_messages_carry_the_event_id_type_and_trace_context(events_url: str) -> None:
    """What any AMQP client sees, without chatd's decoder."""
    raw = pika.BlockingConnection(pika.URLParameters(events_url))
    try:
        channel = raw.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, EXCHANGE, routing_key="room.7.message.created")
        publisher = RabbitPublisher(events_url, EXCHANGE)
        await publish(publisher, events(41, 1))
        publisher.close()
        method = props = body = None
        with trio.fail_after(10):
            while method is None:
                method, props, body = channel.basic_get(queue, auto_ack=True)
                await trio.sleep(0.02)  # a poll of the broker: basic_get does not wait
    finally:
        raw.close()
    assert method.routing_key == "room.7.message.created"
    assert props.message_id == "41"
    assert props.type == "message.created"
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2  # persistent: it survives a broker restart in a durable queue
    assert props.headers == {"traceparent": events(41, 1)[0].traceparent}
    assert json.loads(body)["id"] == 41


async def test_the_publisher_reconnects_after_a_broker_restart(rabbit: RabbitServer) -> None:
    url = rabbit.url()
    publisher = RabbitPublisher(url, EXCHANGE)
    with trio.fail_after(60):
        # A durable queue keeps what is published while no consumer is connected.
        async with open_subscription(settings(url), ["#"], queue="durable-test"):
            pass
        await publish(publisher, events(1, 3))
        assert publisher.health() == "connected"

        await trio.to_thread.run_sync(rabbit.stop)
        with pytest.raises(PublishFailed):
            await publish(publisher, events(4, 3))
        assert publisher.health().startswith("not connected")

        await trio.to_thread.run_sync(rabbit.start)
        await publish(publisher, events(4, 3))  # no operator: the next try connects again
        assert publisher.health() == "connected"

        await trio.to_thread.run_sync(rabbit.restart)
        await publish(publisher, events(7, 1))  # died while idle: noticed before sending

        async with open_subscription(settings(url), ["#"], queue="durable-test") as sub:
            got = [(await sub.receive()).event.id for _ in range(7)]
    publisher.close()
    assert got == [1, 2, 3, 4, 5, 6, 7]


async def test_a_consumer_that_falls_behind_leaves_the_backlog_in_the_broker(
    events_url: str, rabbit_server: RabbitServer
) -> None:
    total = 3000
    publisher = RabbitPublisher(events_url, EXCHANGE)
    vhost = events_url.rsplit("/", 1)[1]
    with trio.fail_after(60):
        async with open_subscription(settings(events_url), ["#"], queue="slow") as sub:
            for first in range(1, total + 1, 500):
                await publish(publisher, events(first, 500))

            # Nobody receives: the thread fills the channel, holds what the broker sent
            # ahead, and the broker stops at PREFETCH unacknowledged deliveries.
            def queue_state() -> tuple[int, int]:
                out = rabbit_server.ctl(
                    "list_queues", "-p", vhost, "-q", "--no-table-headers",
                    "name", "messages_ready", "messages_unacknowledged",
                )  # fmt: skip
                for line in out.splitlines():
                    name, ready, unacked = line.split()
                    if name == "slow":
                        return int(ready), int(unacked)
                raise AssertionError(out)

            ready, unacked = await trio.to_thread.run_sync(queue_state)
            while ready + unacked < total or unacked < PREFETCH:
                await trio.sleep(0.1)  # rabbitmqctl's figures lag a little behind
                ready, unacked = await trio.to_thread.run_sync(queue_state)
            assert unacked == PREFETCH
            assert ready == total - PREFETCH

            # Then it catches up, in order, acknowledging as it goes.
            got = []
            for _ in range(total):
                delivery = await sub.receive()
                got.append(delivery.event.id)
                sub.ack(delivery.tag)
            assert got == list(range(1, total + 1))
            while await trio.to_thread.run_sync(queue_state) != (0, 0):  # noqa: ASYNC110
                await trio.sleep(0.1)
    publisher.close()
    assert total > SUBSCRIPTION_BUFFER + PREFETCH  # the test would show nothing otherwise


async def test_a_subscription_ends_with_its_block_and_reports_a_lost_broker(
    rabbit: RabbitServer,
) -> None:
    url = rabbit.url()

    def connections() -> list[str]:
        return rabbit.ctl("list_connections", "-q", "--no-table-headers", "name").split()

    with trio.fail_after(60):
        async with open_subscription(settings(url), ["#"]) as sub:
            assert await trio.to_thread.run_sync(connections)
            await trio.to_thread.run_sync(rabbit.kill)
            with pytest.raises(SubscriptionLost):
                await sub.receive()
        with pytest.raises(SubscriptionLost):
            async with open_subscription(settings(url), ["#"]):
                pass  # pragma: no cover - the broker is down
        await trio.to_thread.run_sync(rabbit.start)
        async with open_subscription(settings(url), ["#"]):
            pass
        # The block's end closed the connection: its thread is done.
        while await trio.to_thread.run_sync(connections):  # noqa: ASYNC110
            await trio.sleep(0.1)  # the broker's list lags the close a little


async def test_unacknowledged_deliveries_of_a_durable_queue_come_again(events_url: str) -> None:
    publisher = RabbitPublisher(events_url, EXCHANGE)
    s = settings(events_url)
    with trio.fail_after(20):
        async with open_subscription(s, ["#"], queue="svc"):
            pass
        await publish(publisher, events(1, 4))
        async with open_subscription(s, ["#"], queue="svc") as sub:
            first = await sub.receive()
            second = await sub.receive()
            sub.ack(first.tag)  # the consumer crashes before finishing with the second
        async with open_subscription(s, ["#"], queue="svc") as sub:
            again = [(await sub.receive()).event.id for _ in range(3)]
    publisher.close()
    assert (first.event.id, second.event.id) == (1, 2)
    assert again == [2, 3, 4]


async def test_an_unknown_broker_scheme_is_a_config_error() -> None:
    from chatd.config import ConfigError

    with pytest.raises(ConfigError, match="CHATD_EVENTS_URL"):
        open_publisher(replace(settings("amqp://x"), events_url="kafka://broker:9092"))
    assert open_publisher(replace(settings("amqp://x"), events_url="")).health() == "no broker"
