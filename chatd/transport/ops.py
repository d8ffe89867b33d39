"""Health, readiness, metrics and the API description."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from chatd.errors import ChatdError
from chatd.service import Service
from chatd.transport.openapi import document

READY_TIMEOUT_S = 2.0


def ops_routes(service: Service) -> Blueprint:
    bp = Blueprint("ops", __name__)
    api_document = document(service.settings.group_dm_max)

    @bp.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "instance": service.instance_id}

    @bp.get("/readyz")
    async def readyz() -> tuple[dict[str, Any], int]:
        checks: dict[str, str] = {}
        try:
            await service.store.ping(READY_TIMEOUT_S)
            checks["database"] = "ok"
        except ChatdError as exc:
            checks["database"] = exc.message
        if service.settings.redis_url:
            checks["redis"] = service.bus.health()
        # Only the database decides readiness. Every instance shares one Redis:
        # failing them all when it blips would turn "no cross-instance delivery
        # for a while" (which heals itself, gaps refilled) into a total outage.
        if service.draining.is_set():
            return {"status": "draining", "checks": checks}, 503
        ready = checks["database"] == "ok"
        degraded = ready and any(value != "ok" for value in checks.values())
        status = "degraded" if degraded else "ready" if ready else "unavailable"
        return {"status": status, "checks": checks}, 200 if ready else 503

    @bp.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), content_type=service.metrics.content_type)

    @bp.get("/api/v1/openapi.json")
    async def openapi() -> dict[str, Any]:
        return api_document

    return bp
