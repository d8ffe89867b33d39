"""Every HTTP answer tells browsers how to treat it: never sniffed, framed or cached,
no Referer; HSTS only when the operator says TLS is in front."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import trio

from chatd.config import Settings
from tests.conftest import start_server
from tests.helpers import Api


@pytest.fixture
def database_url(sqlite_database: str) -> str:
    """Headers do not depend on the store: SQLite only."""
    return sqlite_database


def assert_protected(reply: httpx.Response) -> None:
    headers = reply.headers
    assert headers["x-content-type-options"] == "nosniff", reply.url
    assert headers["x-frame-options"] == "DENY", reply.url
    assert headers["referrer-policy"] == "no-referrer", reply.url


async def test_api_answers_are_data_that_is_never_cached(api: Api) -> None:
    reply = await api.http.post(
        "/api/v1/auth/register", json={"email": "h@example.com", "password": "long enough"}
    )
    tokens = await api.http.post(
        "/api/v1/auth/login", json={"email": "h@example.com", "password": "long enough"}
    )
    assert "access_token" in tokens.json()
    who = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    answers = [
        reply,
        tokens,
        await api.http.get("/api/v1/users/me", headers=who),
        await api.http.get("/api/v1/rooms", headers=who),
        await api.http.get("/api/v1/rooms/424242", headers=who),  # a 404
        await api.http.get("/api/v1/rooms"),  # a 401
        await api.http.post("/api/v1/auth/login", content=b"x" * 70_000),  # a 413
        await api.http.delete("/api/v1/auth/login"),  # a 405
        await api.http.get("/no/such/page"),
        await api.http.get("/api/v1/openapi.json"),
        await api.http.get("/metrics"),
        await api.http.get("/healthz"),
    ]
    for answer in answers:
        assert_protected(answer)
        assert answer.headers["cache-control"] == "no-store", answer.url
        # Data, not a page: if it is ever opened as one, nothing in it may load or run.
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in answer.headers


async def test_the_web_client_keeps_its_own_policy_and_caching(api: Api) -> None:
    for path in ("/", "/assets/app.js", "/assets/style.css"):
        reply = await api.http.get(path)
        assert reply.status_code == 200
        assert_protected(reply)
        assert reply.headers["cache-control"] == "no-cache"  # revalidated with its ETag
    page = (await api.http.get("/")).headers["content-security-policy"]
    # Scripts, styles and the socket from this server only; nothing inline; never framed.
    assert "default-src 'self'" in page and "connect-src 'self'" in page
    assert "frame-ancestors 'none'" in page
    assert "unsafe-inline" not in page and "unsafe-eval" not in page


async def test_hsts_is_sent_only_when_configured(nursery: trio.Nursery, settings: Settings) -> None:
    api, _ = await start_server(nursery, replace(settings, hsts_max_age_s=31_536_000))
    try:
        for path in ("/", "/healthz", "/api/v1/rooms"):
            reply = await api.http.get(path)
            assert reply.headers["strict-transport-security"] == "max-age=31536000"
    finally:
        await api.aclose()
