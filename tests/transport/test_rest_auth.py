"""Accounts over HTTP: register, login, refresh rotation, /users/me, bearer checks."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import trio

from chatd.config import Settings
from chatd.store import open_store
from tests.conftest import start_server
from tests.helpers import PASSWORD, Api

SECRET = "test-secret-that-is-long-enough-for-hs256"


def assert_error(reply, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body


async def test_register_login_and_me(api: Api) -> None:
    reply = await api.http.post(
        "/api/v1/auth/register", json={"email": "Ann@Example.com", "password": PASSWORD}
    )
    assert reply.status_code == 201
    user = reply.json()
    assert user == {"id": user["id"], "email": "Ann@Example.com"}  # as typed

    tokens = await api.login("ann@example.com")  # any case logs in
    assert tokens["token_type"] == "bearer"
    assert 0 < tokens["expires_in"] <= 3600
    assert tokens["refresh_token"] and tokens["access_token"].count(".") == 2

    me = await api.http.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200 and me.json() == user


async def test_passwords_are_stored_as_bcrypt_hashes(api: Api, settings: Settings) -> None:
    await api.signup("hash@example.com")
    store = open_store(settings.database_url)
    try:
        found = await store.credentials("hash@example.com")
    finally:
        await store.aclose()
    assert found is not None
    stored = found[1]
    assert stored.startswith("$2b$") and PASSWORD not in stored


async def test_duplicate_email_is_409_and_changes_nothing(api: Api) -> None:
    await api.signup("dup@example.com")
    reply = await api.http.post(
        "/api/v1/auth/register", json={"email": "DUP@example.com", "password": "another-pass"}
    )
    assert_error(reply, 409, "conflict")
    await api.login("dup@example.com")  # the original password still works


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@b", "password": PASSWORD},
        {"email": "two@@example.com", "password": PASSWORD},
        {"email": "ok@example.com", "password": "short"},
        {"email": "ok@example.com", "password": 12345678},
        {"email": "ok@example.com"},
        {"password": PASSWORD},
        {"email": "ok@example.com", "password": "x" * 2000},
    ],
)
async def test_bad_registration_is_422(api: Api, body: dict[str, object]) -> None:
    assert_error(await api.http.post("/api/v1/auth/register", json=body), 422, "validation_error")
    # Nothing was created: the address is still free.
    reply = await api.http.post(
        "/api/v1/auth/register", json={"email": "ok@example.com", "password": PASSWORD}
    )
    assert reply.status_code == 201


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"text"'])
async def test_a_body_that_is_not_a_json_object_is_400(api: Api, raw: bytes) -> None:
    reply = await api.http.post(
        "/api/v1/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(reply, 400, "invalid_json")


async def test_wrong_credentials_are_401(api: Api) -> None:
    await api.signup("ann@example.com")
    for body in (
        {"email": "ann@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": PASSWORD},
    ):
        assert_error(await api.http.post("/api/v1/auth/login", json=body), 401)


async def test_a_quick_retry_of_a_spent_refresh_token_is_refused_but_not_fatal(
    api: Api,
) -> None:
    account = await api.signup()
    first = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    retry = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert_error(retry, 401)
    # Within the grace period the login survives: the rotated token still works.
    rotated = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}
    )
    assert rotated.status_code == 200


async def test_refresh_rotates_and_a_replayed_token_revokes_the_login(
    nursery: trio.Nursery, settings: Settings
) -> None:
    api, _ = await start_server(nursery, replace(settings, refresh_replay_grace_s=0))
    account = await api.signup()
    first = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != account.refresh_token
    me = await api.http.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert me.json()["id"] == account.id

    replay = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert_error(replay, 401)
    # The replay revoked the family: the token issued by the rotation is dead too.
    stolen = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_error(stolen, 401)
    # A new login starts a new family.
    fresh = await api.login(account.email)
    again = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert again.status_code == 200
    await api.aclose()


async def test_refresh_with_garbage_is_401_and_missing_is_422(api: Api) -> None:
    assert_error(await api.http.post("/api/v1/auth/refresh", json={"refresh_token": "nope"}), 401)
    assert_error(await api.http.post("/api/v1/auth/refresh", json={}), 422)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(valid: str, user_id: int) -> dict[str, str]:
    now = datetime.now(UTC)
    header, _, signature = valid.split(".")
    return {
        "expired": jwt.encode(
            {"sub": str(user_id), "exp": now - timedelta(minutes=1), "typ": "access"},
            SECRET,
            algorithm="HS256",
        ),
        "tampered": f"{header}.{_b64({'sub': '999', 'exp': 2**40, 'typ': 'access'})}.{signature}",
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}."
        f"{_b64({'sub': str(user_id), 'exp': 2**40, 'typ': 'access'})}.",
        "wrong-secret": jwt.encode(
            {"sub": str(user_id), "exp": 2**40, "typ": "access"},
            "some-other-secret-that-is-long-enough",
            algorithm="HS256",
        ),
        "garbage": "garbage",
    }


async def test_protected_routes_refuse_missing_and_bad_tokens(api: Api) -> None:
    account = await api.signup()
    routes = [("GET", "/api/v1/users/me"), ("GET", "/api/v1/rooms"), ("POST", "/api/v1/rooms")]
    for method, path in routes:
        assert_error(await api.http.request(method, path, json={"name": "x"}), 401, "unauthorized")
        for name, token in _bad_tokens(account.access_token, account.id).items():
            reply = await api.http.request(
                method, path, json={"name": "x"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert reply.status_code == 401, (name, path, reply.text)
    # Nothing was created by the refused POSTs.
    rooms = await api.http.get("/api/v1/rooms", headers=account.headers)
    assert rooms.json()["items"] == []
