"""/api/v1/auth and /api/v1/users: accounts and tokens."""

from __future__ import annotations

from quart import Blueprint, request

from chatd.errors import Unauthorized
from chatd.service import Service
from chatd.transport.http import authenticate, json_object


def auth_routes(service: Service) -> Blueprint:
    bp = Blueprint("auth", __name__)
    accounts = service.accounts

    @bp.post("/api/v1/auth/register")
    async def register() -> tuple[dict[str, object], int]:
        body = await json_object()
        user = await accounts.register(body.get("email"), body.get("password"))
        return user.to_json(), 201

    @bp.post("/api/v1/auth/login")
    async def login() -> dict[str, object]:
        body = await json_object()
        pair = await accounts.login(body.get("email"), body.get("password"))
        return pair.to_json()

    @bp.post("/api/v1/auth/refresh")
    async def refresh() -> dict[str, object]:
        body = await json_object()
        pair = await accounts.refresh(body.get("refresh_token"))
        return pair.to_json()

    @bp.get("/api/v1/users/me")
    async def me() -> dict[str, object]:
        user_id = authenticate(service.settings.jwt_secret, request.headers, request.args)
        user = await service.store.user_by_id(user_id)
        if user is None:
            raise Unauthorized("the access token names a user that no longer exists")
        return user.to_json()

    return bp
