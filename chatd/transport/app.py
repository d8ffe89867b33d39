"""The Quart-Trio application: routes, error rendering, request metrics."""

from __future__ import annotations

import logging
import time

from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from chatd.errors import ChatdError
from chatd.service import Service
from chatd.transport.context import add_request_context
from chatd.transport.ops import ops_routes
from chatd.transport.rest_auth import auth_routes
from chatd.transport.rest_rooms import room_routes
from chatd.transport.web import web_routes

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def create_app(service: Service) -> QuartTrio:
    app = QuartTrio("chatd", static_folder=None)  # the web client serves its own assets
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    add_request_context(app)  # request ids in logs and X-Request-Id
    for blueprint in (ops_routes, auth_routes, room_routes, web_routes):
        app.register_blueprint(blueprint(service))

    @app.errorhandler(ChatdError)
    async def chatd_error(exc: ChatdError) -> tuple[dict[str, dict[str, str]], int]:
        return exc.as_body(), exc.status

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[dict[str, object], int]:
        # Unknown routes, wrong methods, oversized bodies: same error shape as ours.
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        return {"error": {"code": code, "message": exc.description or exc.name}}, status

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> tuple[dict[str, dict[str, str]], int]:
        log.exception("unhandled error")
        return ChatdError("something went wrong on our side").as_body(), 500

    @app.after_request
    async def count(response: Response) -> Response:
        # The route template, not the path: one series per route, not per room id.
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        metrics = service.metrics
        metrics.http_requests.labels(rule, request.method, str(response.status_code)).inc()
        started_at = g.get("started_at")  # set by the request context (context.py)
        if started_at is not None:
            elapsed = time.perf_counter() - started_at
            metrics.http_request_duration.labels(rule, request.method).observe(elapsed)
        return response

    return app
