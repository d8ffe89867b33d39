"""The Quart-Trio application: routes, error rendering, request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from quart import Blueprint, Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from chatd.admin.routes import admin_routes
from chatd.errors import ChatdError
from chatd.service import Service
from chatd.tracing import TRACE
from chatd.tracing.http import add_request_tracing
from chatd.transport.admission import add_admission
from chatd.transport.context import add_request_context
from chatd.transport.ops import ops_routes
from chatd.transport.rest_auth import auth_routes
from chatd.transport.rest_messages import message_routes
from chatd.transport.rest_notifications import notification_routes
from chatd.transport.rest_people import people_routes
from chatd.transport.rest_rooms import room_routes
from chatd.transport.rest_search import search_routes
from chatd.transport.web import web_routes

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# On every HTTP answer unless its handler set the header (web.py gives pages their CSP
# and assets their no-cache): nothing is sniffed into a page, framed, or cached (answers
# carry tokens and private history), and no Referer carries a URL that may hold ?token=.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
# JSON and text answers are data: should one ever be opened as a page, nothing in it runs.
DATA_TYPES = frozenset({"application/json", "text/plain"})
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"


def routes_for(roles: frozenset[str]) -> list[Callable[[Service], Blueprint]]:
    """The blueprints of the roles this process plays (docs/operations.md); every role
    answers health, readiness and metrics. Another role's routes answer 404, as a
    misrouting load balancer would show."""
    found: list[Callable[[Service], Blueprint]] = [ops_routes]
    if "api" in roles:
        found += [
            auth_routes,
            room_routes,
            message_routes,
            people_routes,
            search_routes,
            web_routes,
            admin_routes,
        ]
    if "notifications" in roles:
        found.append(notification_routes)
    return found


def create_app(service: Service) -> QuartTrio:
    app = QuartTrio("chatd", static_folder=None)  # the web client serves its own assets
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    add_request_context(app)  # request ids in logs and X-Request-Id
    if TRACE.on:  # a span per request (docs/operations.md, "Tracing"); nothing when off
        add_request_tracing(app)
    add_admission(app, service)  # revoked tokens and rate limits (429 with Retry-After)
    for blueprint in routes_for(service.settings.roles):
        app.register_blueprint(blueprint(service))

    @app.errorhandler(ChatdError)
    async def chatd_error(
        exc: ChatdError,
    ) -> tuple[dict[str, dict[str, str]], int, dict[str, str]]:
        return exc.as_body(), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> tuple[dict[str, object], int, dict[str, str]]:
        # Unknown routes, wrong methods, oversized bodies: same error shape as ours.
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        # Its own headers but the body's type: a 405 says what is Allowed.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return {"error": {"code": code, "message": exc.description or exc.name}}, status, headers

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

    max_age = service.settings.hsts_max_age_s
    hsts = f"max-age={max_age}" if max_age > 0 else None  # CHATD_HSTS_MAX_AGE_S

    @app.after_request
    async def protect(response: Response) -> Response:
        headers = response.headers
        for name, value in SECURITY_HEADERS:
            headers.setdefault(name, value)
        if response.mimetype in DATA_TYPES:
            headers.setdefault("Content-Security-Policy", DATA_POLICY)
        if hsts is not None:
            headers["Strict-Transport-Security"] = hsts
        return response

    return app
