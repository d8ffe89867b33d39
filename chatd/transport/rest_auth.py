"""/api/v1/auth and /api/v1/users: accounts, tokens and sessions."""

from __future__ import annotations

from quart import Blueprint, request

from chatd.errors import Unauthorized, WrongPassword
from chatd.model import User
from chatd.ratelimit.client import client_address
from chatd.service import Service
from chatd.transport.http import authenticate, json_object


def auth_routes(service: Service) -> Blueprint:
    bp = Blueprint("auth", __name__)
    accounts, limits = service.accounts, service.limits

    def address() -> str:
        headers = request.headers
        hops = service.settings.trusted_proxy_hops
        return client_address(headers.get("X-Forwarded-For"), request.remote_addr, hops)

    async def current_user() -> User:
        user_id = authenticate(service.settings.jwt_secret, request.headers, request.args)
        user = await service.store.user_by_id(user_id)
        if user is None:
            raise Unauthorized("the access token names a user that no longer exists")
        return user

    @bp.post("/api/v1/auth/register")
    async def register() -> tuple[dict[str, object], int]:
        await limits.register(address())  # before the bcrypt hash it would cost
        body = await json_object()
        user = await accounts.register(body.get("email"), body.get("password"))
        return user.to_json(), 201

    @bp.post("/api/v1/auth/login")
    async def login() -> dict[str, object]:
        body = await json_object()
        email, where = body.get("email"), address()
        await limits.login_allowed(where, email)
        try:
            pair = await accounts.login(email, body.get("password"))
        except Unauthorized:
            await limits.login_failed(where, email)  # 429 instead if that locked it
            raise
        await limits.login_succeeded(email)
        return pair.to_json()

    @bp.post("/api/v1/auth/refresh")
    async def refresh() -> dict[str, object]:
        body = await json_object()
        pair = await accounts.refresh(body.get("refresh_token"))
        return pair.to_json()

    @bp.post("/api/v1/auth/logout")
    async def logout() -> tuple[str, int]:
        body = await json_object()
        await accounts.logout(body.get("refresh_token"))
        return "", 204

    @bp.get("/api/v1/users/me")
    async def me() -> dict[str, object]:
        return (await current_user()).to_json()

    @bp.post("/api/v1/users/me/password")
    async def change_password() -> dict[str, object]:
        user = await current_user()
        body = await json_object()
        # Guessed like a login: whoever holds a stolen access token must not be able to
        # try passwords here without limit.
        where = address()
        await limits.login_allowed(where, user.email)
        try:
            pair = await accounts.change_password(
                user, body.get("current_password"), body.get("new_password")
            )
        except WrongPassword:
            await limits.login_failed(where, user.email)
            raise
        await limits.login_succeeded(user.email)
        return pair.to_json()

    return bp
