"""RabbitMQ: the event stream's first broker, through pika's BlockingConnection.

Topology: one durable topic exchange (CHATD_EVENTS_EXCHANGE, "chatd.events"). Each
event is one persistent message, routed by Event.routing_key (room.<id>.<type>, or
global.<type>), with message_id = the event id, type = the event type, a traceparent
header when the change was traced, and the JSON of Event.encode() as its body.
Consumers bind a queue to keys: "#" is everything, "room.7.#" one room,
"room.*.message.created" every new message.

Why pika on threads: the AMQP clients most used from Python (aio-pika, aiormq) need
asyncio; of those that run on AnyIO, and so on Trio, one hung with several confirms
pending and the other could not be cancelled safely. pika is the reference client,
maintained, and a BlockingConnection on one thread does what the relay needs: a
transaction per batch (tx_select/tx_commit), which measured 5.8k events/s against
1k/s with publisher confirms, and no duplicates across a broker restart or kill.

Each connection lives on one thread: the relay's worker thread calls publish(), and a
subscription owns a thread of its own that hands deliveries to Trio through a bounded
channel. pika's objects are never touched from another thread, except through
add_callback_threadsafe (acks, wake-ups), which is what it is for.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions
import trio

from chatd.events.event import Event
from chatd.events.transport import Delivery, PublishFailed, SubscriptionLost

log = logging.getLogger(__name__)
# pika logs each failed connection attempt at ERROR, with tracebacks, several lines per
# try: an outage would flood the log. The relay and the feed say it once per outage.
logging.getLogger("pika").setLevel(logging.CRITICAL)

# The broker and we each close a connection that was silent for two of these.
HEARTBEAT_S = 30
# A broker short of memory or disk blocks publishers until it recovers: give up after
# this long (PublishFailed) rather than hold the relay's transaction open indefinitely.
BLOCKED_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
# Deliveries the broker sends ahead of our acks; with the subscription's channel, the
# most a consumer that falls behind holds in memory. The rest wait in the broker.
PREFETCH = 256
SUBSCRIPTION_BUFFER = 256
# How often a subscription's thread looks for a stop request when nothing wakes it.
IDLE_POLL_S = 0.2
# ... and retries handing deliveries to a consumer whose channel was full.
FULL_POLL_S = 0.02
STOP_WAIT_S = 2.0
BROKER_ERRORS = (pika.exceptions.AMQPError, OSError)


def connection_parameters(url: str, name: str) -> pika.URLParameters:
    """The URL's parameters, with chatd's timeouts where the URL does not set its own."""
    params = pika.URLParameters(url)
    query = url.partition("?")[2]
    if "heartbeat" not in query:
        params.heartbeat = HEARTBEAT_S
    if "blocked_connection_timeout" not in query:
        params.blocked_connection_timeout = BLOCKED_TIMEOUT_S
    if "socket_timeout" not in query:
        params.socket_timeout = CONNECT_TIMEOUT_S
    if "stack_timeout" not in query:
        params.stack_timeout = CONNECT_TIMEOUT_S * 2
    params.connection_attempts = 1  # the caller retries, with its own backoff
    params.client_properties = {"connection_name": name}
    return params


def _declare_exchange(channel: Any, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RabbitPublisher:
    """The relay's publisher: one batch per AMQP transaction, all of it or none.

    Connects on the first publish and again on the next one after any failure, so a
    broker restart needs nothing from an operator: the relay's retry is the reconnect.
    """

    def __init__(self, url: str, exchange: str) -> None:
        self._params = connection_parameters(url, "chatd relay")
        self._exchange = exchange
        self._connection: Any = None
        self._channel: Any = None
        self._status = "not connected yet"

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            self._keep_alive()
            return
        channel = self._ready_channel()
        try:
            for event in events:
                channel.basic_publish(
                    self._exchange,
                    event.routing_key,
                    event.encode().encode(),
                    pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=str(event.id),
                        type=event.type,
                        timestamp=int(event.occurred_at.timestamp()),
                        headers={"traceparent": event.traceparent} if event.traceparent else None,
                    ),
                )
            channel.tx_commit()
        except BROKER_ERRORS as exc:
            # The commit may or may not have reached the broker: the relay publishes the
            # batch again, and consumers skip the ids they have.
            self._drop(exc)
            raise PublishFailed(f"RabbitMQ: {_reason(exc)}") from exc

    def _ready_channel(self) -> Any:
        if self._connection is not None:
            # Find out now whether the connection died while idle (a broker restart):
            # nothing is sent yet, so a fresh connection costs the batch nothing.
            self._keep_alive()
        if self._channel is None:
            try:
                self._connection = pika.BlockingConnection(self._params)
                self._channel = self._connection.channel()
                _declare_exchange(self._channel, self._exchange)
                self._channel.tx_select()
            except BROKER_ERRORS as exc:
                self._drop(exc)
                raise PublishFailed(f"RabbitMQ: cannot connect: {_reason(exc)}") from exc
            log.info("relay connected to RabbitMQ at %s", self._params.host)
            self._status = "connected"
        return self._channel

    def _keep_alive(self) -> None:
        """Answer heartbeats and notice a closed connection; never raises."""
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(time_limit=0)
        except BROKER_ERRORS as exc:
            self._drop(exc)

    def _drop(self, exc: BaseException) -> None:
        self._status = f"not connected: {_reason(exc)}"
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                connection.close()

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._status = "closed"
        if connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                connection.close()

    def health(self) -> str:
        return self._status


class RabbitSubscription:
    """A queue bound to the exchange, consumed on a thread of its own.

    run() owns the thread: it returns started once the queue is bound (what the broker
    routes from then on is kept for us), and the thread stops when run() is cancelled.
    Deliveries reach receive() in the broker's order through a bounded channel: when the
    consumer falls behind, the thread stops taking them, the broker stops sending past
    PREFETCH unacknowledged ones, and the rest wait in the queue, not in our memory.
    """

    def __init__(
        self,
        url: str,
        exchange: str,
        binding_keys: Sequence[str],
        queue: str | None,
        buffer: int = SUBSCRIPTION_BUFFER,
    ) -> None:
        self._params = connection_parameters(url, f"chatd consumer {queue or '(tail)'}")
        self._exchange = exchange
        self._keys = tuple(binding_keys) or ("#",)
        self._queue = queue
        self._send, self._recv = trio.open_memory_channel[Delivery](buffer)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._connection: Any = None  # set by the thread while it is connected
        self._channel: Any = None
        self._ack_upto = 0  # the highest tag the consumer is done with...
        self._acked = 0  # ... and the highest the broker was told of
        self._ack_scheduled = False
        self._error: BaseException | None = None

    async def receive(self) -> Delivery:
        try:
            return await self._recv.receive()
        except trio.EndOfChannel:
            raise SubscriptionLost(
                f"RabbitMQ: {_reason(self._error) if self._error else 'unsubscribed'}"
            ) from self._error

    def ack(self, tag: int) -> None:
        if tag <= self._ack_upto:
            return
        self._ack_upto = tag
        connection = self._connection
        if connection is None or self._ack_scheduled:
            return  # the scheduled callback reads _ack_upto when it runs
        self._ack_scheduled = True
        # If the connection is gone, the broker delivers the unacknowledged ones again
        # (to a durable queue's next consumer), and the feed skips them by id.
        with contextlib.suppress(*BROKER_ERRORS):
            connection.add_callback_threadsafe(self._send_acks)

    def _send_acks(self) -> None:
        """(thread) Tell the broker of everything up to the newest tag done, at once."""
        self._ack_scheduled = False
        upto = self._ack_upto
        if upto > self._acked:
            self._channel.basic_ack(delivery_tag=upto, multiple=True)
            self._acked = upto

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until cancelled or the connection is lost (then receive() raises
        SubscriptionLost). Raises SubscriptionLost if it cannot subscribe at all."""
        started = False

        def mark_started() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            await trio.to_thread.run_sync(self._consume, mark_started, abandon_on_cancel=True)
        except BROKER_ERRORS as exc:
            self._error = exc
            if not started:
                raise SubscriptionLost(f"RabbitMQ: cannot subscribe: {_reason(exc)}") from exc
            log.warning("event subscription lost: %s", _reason(exc))
        finally:
            self._stop.set()
            self._wake()
            self._send.close()
            with trio.move_on_after(STOP_WAIT_S, shield=True):
                await trio.to_thread.run_sync(self._stopped.wait)

    def _wake(self) -> None:
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                connection.add_callback_threadsafe(lambda: None)

    def _consume(self, mark_started: Any) -> None:
        """(thread) Connect, declare, bind, then move deliveries to Trio until stopped."""
        pending: deque[Delivery] = deque()
        connection = None
        try:
            connection = pika.BlockingConnection(self._params)
            channel = connection.channel()
            channel.basic_qos(prefetch_count=PREFETCH)
            _declare_exchange(channel, self._exchange)
            if self._queue:
                queue = channel.queue_declare(self._queue, durable=True).method.queue
            else:
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            for key in self._keys:
                channel.queue_bind(queue, self._exchange, routing_key=key)

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                headers = props.headers or {}
                try:
                    event = Event.decode(body, headers.get("traceparent"))
                except ValueError as exc:
                    # Not an event of ours (someone else published to the exchange):
                    # nobody can ever use it, so it is not delivered again.
                    log.warning("skipped a message that is not an event: %s", exc)
                    ch.basic_ack(delivery_tag=method.delivery_tag)
                    return
                pending.append(Delivery(event, method.delivery_tag))

            channel.basic_consume(queue, on_message)
            self._connection, self._channel = connection, channel
            trio.from_thread.run_sync(mark_started)
            while not self._stop.is_set():
                if not pending:
                    connection.process_data_events(time_limit=IDLE_POLL_S)
                elif trio.from_thread.run_sync(self._offer, pending):
                    connection.process_data_events(time_limit=0)
                else:
                    # The consumer is behind. Keep answering heartbeats (and sending its
                    # acks) while it catches up; the broker sends nothing past PREFETCH.
                    connection.process_data_events(time_limit=FULL_POLL_S)
        except trio.RunFinishedError:
            pass  # Trio is gone: nobody is left to hand deliveries to
        finally:
            self._connection = None
            if connection is not None:
                with contextlib.suppress(*BROKER_ERRORS):
                    connection.close()
            self._stopped.set()

    def _offer(self, pending: deque[Delivery]) -> int:
        """(Trio) Move what fits into the channel; how many moved. The thread waits for
        this call, so nothing else touches `pending` meanwhile."""
        moved = 0
        try:
            while pending:
                self._send.send_nowait(pending[0])
                pending.popleft()
                moved += 1
        except trio.WouldBlock:
            pass
        except trio.ClosedResourceError:
            self._stop.set()  # run() is over: the thread ends
        return moved
