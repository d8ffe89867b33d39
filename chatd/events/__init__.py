"""The event stream: every committed change, published to a broker through an outbox.

event.py: what an event is and how it travels. The store writes events in the same
transaction as their change (chatd/store/outbox.py); the relay numbers and publishes
them (relay.py) through a transport (transport.py: RabbitMQ, or none); consumers follow
the stream from any event id (feed.py); `chatd events tail` prints it (tail.py).
"""
