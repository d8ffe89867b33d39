"""A real `chatd serve` sends its spans over OTLP/HTTP to the configured collector, and
sends what it still holds when it stops."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import trio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chatd.tracing.setup import SHUTDOWN_S
from tests.processes import instance_env, run_instance


class Collector:
    """An OTLP/HTTP collector of the least kind: every POST's body, parsed."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.received = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += await stream.receive_some(65536)
        self.paths.append(lines[0].split(" ")[1])
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.requests.append(request)
        self.received.set()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await stream.aclose()

    def spans(self, where: Callable[[str, dict[str, object]], bool]) -> list[str]:
        """Names of the spans received whose (service name, span attributes) match."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        if where(str(resource["service.name"]), _attributes(span.attributes)):
                            found.append(span.name)
        return found

    def resources(self) -> list[dict[str, object]]:
        return [
            _attributes(resource_spans.resource.attributes)
            for request in self.requests
            for resource_spans in request.resource_spans
        ]


def _attributes(values: object) -> dict[str, object]:
    found: dict[str, object] = {}
    for kv in values:  # type: ignore[attr-defined]
        value = kv.value
        found[kv.key] = (
            getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
        )
    return found


async def test_a_server_sends_its_spans_to_the_collector_and_the_rest_when_it_stops(
    nursery: trio.Nursery, sqlite_database: str
) -> None:
    collector = Collector()
    [listener] = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), collector.handle, 0)
    port = listener.socket.getsockname()[1]
    env = instance_env(
        sqlite_database,
        settings={
            "CHATD_OTEL_ENDPOINT": f"http://127.0.0.1:{port}",
            "CHATD_OTEL_SERVICE_NAME": "chatd-under-test",
            "CHATD_INSTANCE_ID": "export-1",
            # No batch falls due while the test runs: spans leave only when it stops.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
        },
    )
    instance = await nursery.start(run_instance, env, ())
    alice = await instance.api.signup()
    assert alice.id
    assert not collector.requests

    # What it held goes out on the way down.
    instance.terminate()
    with trio.fail_after(SHUTDOWN_S + 20):
        await instance.process.wait()
    assert instance.process.returncode == 0, instance.log
    assert collector.paths and set(collector.paths) == {"/v1/traces"}
    registered = collector.spans(
        lambda service, attributes: (
            service == "chatd-under-test"
            and attributes.get("chatd.instance") == "export-1"
            and attributes.get("http.response.status_code") == 201
        )
    )
    assert registered == ["POST /api/v1/auth/register"]
    [resource, *_] = collector.resources()
    assert resource["service.instance.id"] == "export-1"
    assert resource["service.version"]
