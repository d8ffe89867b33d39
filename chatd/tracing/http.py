"""REST request spans: a small ASGI wrapper around the Quart app, and a hook that names
each span after its route.

Added by create_app only when tracing is on: with it off, requests do not pass
through here at all. A request that carries a W3C `traceparent` header
continues the caller's trace.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from quart import Quart, Response, request

from chatd.tracing.spans import span_from

Scope = dict[str, Any]
Receive = Any
Send = Any


class TracedRequests:
    """One SERVER span per HTTP request, current while the app handles it (Quart's tasks
    for the request start inside it, and inherit it): method, path and status code."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with span_from(
            _header(scope, b"traceparent"), method, attributes, kind=SpanKind.SERVER
        ) as span:

            async def send_traced(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # a 4xx is the client's: not this span's failure
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self._app(scope, receive, send_traced)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def add_request_tracing(app: Quart) -> None:
    """Wrap the app, and name each request's span "METHOD /route/<template>" once the
    route is known: one name per route, not per room id."""
    app.asgi_app = TracedRequests(app.asgi_app)  # type: ignore[method-assign,assignment]

    @app.after_request
    async def name_span(response: Response) -> Response:
        if request.url_rule is not None:
            span = trace.get_current_span()
            span.set_attribute("http.route", request.url_rule.rule)
            span.update_name(f"{request.method} {request.url_rule.rule}")
        return response
