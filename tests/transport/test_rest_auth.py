"""Accounts over HTTP: register, login, refresh rotation, /users/me, bearer checks."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from chatd.auth.tokens import issue_access_token
from chatd.closecodes import SESSION_ENDED
from chatd.config import Settings
from chatd.model import UserId
from chatd.store import open_store
from tests.conftest import start_server
from tests.helpers import PASSWORD, Api, Socket

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
    # The email as typed; the handle (what others mention) is its local part, in one case.
    assert user == {"id": user["id"], "email": "Ann@Example.com", "handle": "ann"}

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


# -- sessions: logout and password changes -------------------------------------


async def refresh(api: Api, token: str) -> int:
    reply = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": token})
    return reply.status_code


async def test_logout_ends_that_login_and_only_that_one(api: Api) -> None:
    account = await api.signup()
    other_login = await api.login(account.email)
    rotated = await api.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    current = rotated.json()["refresh_token"]
    reply = await api.http.post("/api/v1/auth/logout", json={"refresh_token": current})
    assert reply.status_code == 204 and reply.content == b""
    assert await refresh(api, current) == 401
    assert await refresh(api, account.refresh_token) == 401
    assert await refresh(api, other_login["refresh_token"]) == 200  # another device stays
    # Logging out twice, or with a token never issued, is no error; without one it is.
    for token in (current, "never-issued"):
        again = await api.http.post("/api/v1/auth/logout", json={"refresh_token": token})
        assert again.status_code == 204
    assert_error(await api.http.post("/api/v1/auth/logout", json={}), 422, "validation_error")


async def change_password(
    api: Api, access_token: str, current: object, new: object
) -> httpx.Response:
    return await api.http.post(
        "/api/v1/users/me/password",
        json={"current_password": current, "new_password": new},
        headers={"Authorization": f"Bearer {access_token}"},
    )


async def test_a_password_change_ends_every_other_session(api: Api) -> None:
    account = await api.signup()
    room = await api.create_room(account)
    laptop = await api.login(account.email)
    # The phone's access token was issued a while ago (in an earlier second than the change).
    phone_access = issue_access_token(
        UserId(account.id), SECRET, datetime.now(UTC) - timedelta(seconds=5), 900
    )
    assert (await me(api, phone_access)).status_code == 200

    reply = await change_password(api, account.access_token, PASSWORD, "a brand new password")
    assert reply.status_code == 200, reply.text
    fresh = reply.json()
    assert set(fresh) == {"access_token", "refresh_token", "token_type", "expires_in"}

    # Every refresh token issued before is dead, the caller's own included.
    for token in (account.refresh_token, laptop["refresh_token"]):
        assert await refresh(api, token) == 401
    assert_error(await me(api, phone_access), 401, "unauthorized")  # refused before its expiry
    # and no WebSocket opens with it either:
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(api.ws_url(room["id"], token=phone_access)):
            pass
    assert refused.value.status_code == 401
    assert (await me(api, fresh["access_token"])).status_code == 200
    assert await refresh(api, fresh["refresh_token"]) == 200
    # The old password no longer logs in; the new one does.
    wrong = await api.http.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert_error(wrong, 401)
    await api.login(account.email, "a brand new password")


async def test_another_instance_refuses_the_old_access_tokens_soon_after(
    nursery: trio.Nursery, settings: Settings
) -> None:
    a, _ = await start_server(nursery, settings)
    b, _ = await start_server(nursery, settings)  # the same database, no Redis
    account = await a.signup()
    earlier = issue_access_token(
        UserId(account.id), SECRET, datetime.now(UTC) - timedelta(seconds=5), 900
    )
    assert (await me(b, earlier)).status_code == 200
    reply = await change_password(a, account.access_token, PASSWORD, "a brand new password")
    assert reply.status_code == 200
    # B learns from the store, which it reads every couple of seconds.
    with trio.fail_after(10):
        while (await me(b, earlier)).status_code == 200:  # noqa: ASYNC110
            await trio.sleep(0.05)  # another instance's state: nothing to wait on but asking
    assert_error(await me(b, earlier), 401)
    assert (await me(b, reply.json()["access_token"])).status_code == 200
    await a.aclose()
    await b.aclose()


async def test_a_password_change_closes_the_sockets_signed_in_before_it_everywhere(
    nursery: trio.Nursery, settings: Settings
) -> None:
    a, _ = await start_server(nursery, settings)
    b, _ = await start_server(nursery, settings)  # the same database, no Redis
    account = await a.signup()
    room = await a.create_room(account)
    earlier = issue_access_token(
        UserId(account.id), SECRET, datetime.now(UTC) - timedelta(seconds=5), 900
    )
    async with (
        open_websocket_url(a.ws_url(room["id"], token=earlier)) as here,
        open_websocket_url(b.ws_url(room["id"], token=earlier)) as elsewhere,
    ):
        reply = await change_password(a, account.access_token, PASSWORD, "a brand new password")
        assert reply.status_code == 200
        fresh = reply.json()["access_token"]
        async with open_websocket_url(a.ws_url(room["id"], token=fresh)) as signed_in_after:
            # Closed at once here, and on B once it has read the change from the store.
            for stolen in (here, elsewhere):
                with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await stolen.get_message()
                assert closed.value.reason.code == SESSION_ENDED
            still_open = Socket(signed_in_after)
            await still_open.send_raw(json.dumps({"type": "ping"}))
            await still_open.expect("pong")
    await a.aclose()
    await b.aclose()


async def test_a_password_change_needs_the_current_password(api: Api) -> None:
    account = await api.signup()
    reply = await change_password(api, account.access_token, "not my password", "new password!")
    assert_error(reply, 403, "wrong_password")
    assert_error(await change_password(api, account.access_token, PASSWORD, "short"), 422)
    assert_error(await change_password(api, "garbage", PASSWORD, "new password!"), 401)
    # Nothing changed: the login and its refresh token still work.
    assert await refresh(api, account.refresh_token) == 200
    await api.login(account.email)


async def test_guessing_the_current_password_is_locked_out_like_a_login(
    nursery: trio.Nursery, settings: Settings
) -> None:
    api, _ = await start_server(nursery, replace(settings, login_account_failures=2))
    account = await api.signup()
    assert_error(await change_password(api, account.access_token, "guess 1", "new password!"), 403)
    locked = await change_password(api, account.access_token, "guess 2", "new password!")
    assert_error(locked, 429, "rate_limited")
    assert int(locked.headers["Retry-After"]) == 60
    # The account is locked for logins too: the guesses were against its password.
    login = await api.http.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert_error(login, 429, "rate_limited")
    await api.aclose()


async def me(api: Api, access_token: str) -> httpx.Response:
    return await api.http.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {access_token}"}
    )
