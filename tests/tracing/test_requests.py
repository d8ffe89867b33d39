"""REST requests and WebSocket handshakes, as a tracing backend shows them."""

from __future__ import annotations

import trio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from trio_websocket import HandshakeError, open_websocket_url

from chatd.config import Settings
from chatd.store import open_store
from tests.conftest import start_server
from tests.tracing.conftest import named, only, settled

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


async def test_each_request_is_a_span_named_after_its_route_with_its_status(
    nursery: trio.Nursery, settings: Settings, spans: InMemorySpanExporter
) -> None:
    api, _ = await start_server(nursery, settings)
    alice = await api.signup()
    room = await api.create_room(alice)
    missing = await api.http.get("/api/v1/rooms/987654", headers=alice.headers)
    assert missing.status_code == 404
    await settled()  # a span ends once the server is done with the request, not before

    created = only(spans, "POST /api/v1/rooms")
    assert created.kind == SpanKind.SERVER
    assert created.attributes is not None
    assert created.attributes["http.request.method"] == "POST"
    assert created.attributes["http.route"] == "/api/v1/rooms"
    assert created.attributes["http.response.status_code"] == 201
    assert created.attributes["user.id"] == alice.id
    assert created.attributes["chatd.instance"]

    lookup = [
        span
        for span in named(spans, "GET /api/v1/rooms/<int:room_id>")
        if span.attributes and span.attributes["url.path"] == "/api/v1/rooms/987654"
    ]
    assert len(lookup) == 1
    assert lookup[0].attributes is not None
    assert lookup[0].attributes["http.response.status_code"] == 404
    assert lookup[0].status.status_code == StatusCode.UNSET  # the client's mistake, not ours

    # The store calls the request made are its children, in its trace.
    assert created.context is not None
    children = [
        span
        for span in spans.get_finished_spans()
        if span.parent is not None and span.parent.span_id == created.context.span_id
    ]
    assert "store.create_room" in {span.name for span in children}
    store_call = next(span for span in children if span.name == "store.create_room")
    assert store_call.kind == SpanKind.CLIENT
    assert store_call.attributes is not None
    assert store_call.attributes["db.system.name"] in ("sqlite", "postgresql")
    assert room["id"]


async def test_a_request_with_a_traceparent_continues_the_callers_trace(
    nursery: trio.Nursery, settings: Settings, spans: InMemorySpanExporter
) -> None:
    api, _ = await start_server(nursery, settings)
    reply = await api.http.get(
        "/healthz", headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    )
    assert reply.status_code == 200
    await settled()
    health = only(spans, "GET /healthz")
    assert health.context is not None and health.parent is not None
    assert f"{health.context.trace_id:032x}" == CALLER_TRACE
    assert f"{health.parent.span_id:016x}" == CALLER_SPAN

    # A malformed one starts a trace of its own rather than failing the request.
    reply = await api.http.get("/readyz", headers={"traceparent": "00-nonsense"})
    assert reply.status_code in (200, 503)
    await settled()
    ready = only(spans, "GET /readyz")
    assert ready.parent is None


async def test_each_websocket_handshake_is_a_span_accepted_or_refused(
    nursery: trio.Nursery, settings: Settings, spans: InMemorySpanExporter
) -> None:
    api, _ = await start_server(nursery, settings)
    alice = await api.signup()
    room = await api.create_room(alice)
    async with api.socket(alice, room["id"]) as ws:
        await ws.send("hello")
        await ws.message()
    await settled()

    accepted = only(spans, "ws.handshake", chatd__room__id=room["id"])
    assert accepted.kind == SpanKind.SERVER
    assert accepted.attributes is not None
    assert accepted.attributes["http.response.status_code"] == 101
    assert accepted.attributes["user.id"] == alice.id
    assert accepted.attributes["url.path"] == f"/ws/rooms/{room['id']}"
    # The room's access check ran inside it.
    assert accepted.context is not None
    inside = {
        span.name
        for span in spans.get_finished_spans()
        if span.parent is not None and span.parent.span_id == accepted.context.span_id
    }
    assert any(name.startswith("store.") for name in inside), inside

    # No token: refused with 401, and the span says so.
    with trio.fail_after(10):
        try:
            async with open_websocket_url(api.ws_url(room["id"])):
                raise AssertionError("a socket without a token was accepted")
        except HandshakeError:
            pass
    await settled()
    refused = [
        span
        for span in named(spans, "ws.handshake")
        if (span.attributes or {}).get("http.response.status_code") == 401
    ]
    assert len(refused) == 1
    await api.aclose()


async def test_a_rest_changes_event_continues_the_requests_trace(
    nursery: trio.Nursery, settings: Settings, spans: InMemorySpanExporter
) -> None:
    api, _ = await start_server(nursery, settings)
    alice = await api.signup()
    room = await api.create_room(alice)
    await settled()
    created = only(spans, "POST /api/v1/rooms")
    store_call = only(spans, "store.create_room")
    assert created.context is not None and store_call.context is not None

    # The outbox row was written in the store call's worker thread, which ran in a copy of
    # the request's context: the event (numbered by the relay) carries the store call's span.
    store = open_store(settings.database_url, pool_size=1)
    try:
        with trio.fail_after(10):
            while not (events := await store.events_after(0, 100)):  # noqa: ASYNC110
                await trio.sleep(0.05)
    finally:
        await store.aclose()
    [event] = [e for e in events if e.type == "room.created" and e.room_id == room["id"]]
    assert event.traceparent is not None
    _, trace_id, parent_id, _ = event.traceparent.split("-")
    assert (trace_id, parent_id) == (
        f"{created.context.trace_id:032x}",
        f"{store_call.context.span_id:016x}",
    )
    await api.aclose()


async def test_an_edit_through_rest_is_delivered_within_the_requests_trace(
    nursery: trio.Nursery, settings: Settings, spans: InMemorySpanExporter
) -> None:
    api, _ = await start_server(nursery, settings)
    alice = await api.signup()
    room = await api.create_room(alice)
    async with api.socket(alice, room["id"]) as ws:
        await ws.send("frist")
        sent = await ws.message()
        reply = await api.http.patch(
            f"/api/v1/rooms/{room['id']}/messages/{sent['id']}",
            json={"text": "first"},
            headers=alice.headers,
        )
        assert reply.status_code == 200, reply.text
        edited = await ws.expect("message_edited", message_id=sent["id"])
    await settled()

    request = only(spans, "PATCH /api/v1/rooms/<int:room_id>/messages/<int:message_id>")
    deliver = only(spans, "message.deliver", chatd__message__id=edited["id"])
    assert request.context is not None and deliver.parent is not None
    assert deliver.parent.span_id == request.context.span_id
    assert (deliver.attributes or {}).get("chatd.delivery.sockets") == 1
    await api.aclose()
