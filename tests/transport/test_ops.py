"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import trio
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from chatd.config import Settings
from chatd.service import open_service
from chatd.store.migrate import apply_migrations
from chatd.transport.app import create_app
from chatd.transport.openapi import document
from tests.conftest import skip_or_fail, start_server
from tests.helpers import Api
from tests.pgserver import PgServer, missing_binaries_reason


def metric_values(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def test_healthz_and_readyz(api: Api) -> None:
    health = await api.http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PgServer]:
    """A server of this module's own, so stopping it disturbs no other test."""
    reason = missing_binaries_reason()
    if reason:
        skip_or_fail(f"PostgreSQL fault tests need a server: {reason}")
    server = PgServer.start_new()
    try:
        server.create_database("chatd")
        apply_migrations(server.url("chatd"))
        yield server
    finally:
        server.destroy()


async def test_readyz_reports_a_database_outage_and_recovery(
    nursery: trio.Nursery, own_pg: PgServer
) -> None:
    settings = Settings(port=0, database_url=own_pg.url("chatd"), jwt_secret="x" * 32)
    api, _ = await start_server(nursery, settings)
    assert (await api.http.get("/readyz")).status_code == 200
    await trio.to_thread.run_sync(own_pg.stop)
    try:
        down = await api.http.get("/readyz")
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert down.json()["checks"]["database"] != "ok"
        assert (await api.http.get("/healthz")).status_code == 200  # alive, just not ready
    finally:
        await trio.to_thread.run_sync(own_pg.start)
    back = await api.http.get("/readyz")
    assert back.status_code == 200, back.text
    await api.aclose()


async def test_metrics_count_connections_and_messages(api: Api) -> None:
    before = metric_values((await api.http.get("/metrics")).text)
    assert before["chatd_messages_received_total"] == 0
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        during = metric_values((await api.http.get("/metrics")).text)
        assert during["chatd_ws_connections_active"] == 1
        assert during["chatd_rooms_active"] == 1
        for text in ("a", "b", "c"):
            await ws.send(text)
        await ws.messages(3)
    reply = await api.http.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    after = metric_values(reply.text)
    assert after["chatd_messages_received_total"] == 3
    assert after["chatd_messages_persisted_total"] == 3
    assert after["chatd_messages_delivered_total"] == 3
    assert after["chatd_ws_connections_total"] == 1
    assert "chatd_http_requests_total" in reply.text


def test_openapi_document_is_valid_and_lists_every_rest_route(settings: Settings) -> None:
    spec = document()
    validate(spec)  # raises on an invalid OpenAPI 3.1 document

    async def rules() -> set[tuple[str, str]]:
        async with open_service(settings) as service:
            app = create_app(service)
            found = set()
            for rule in app.url_map.iter_rules():
                if not rule.rule.startswith("/api/v1/") or rule.rule.endswith("openapi.json"):
                    continue
                path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <int:id>: {id}
                for method in rule.methods or ():
                    if method not in ("HEAD", "OPTIONS"):
                        found.add((path, method.lower()))
            return found

    served = trio.run(rules)
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert served == documented


def schema_for(name: str) -> dict[str, Any]:
    spec = document()
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


async def test_responses_match_the_openapi_schemas(api: Api) -> None:
    def check(body: Any, name: str) -> None:
        jsonschema.validate(body, schema_for(name))

    api_doc = (await api.http.get("/api/v1/openapi.json")).json()
    assert api_doc["openapi"].startswith("3.")
    reply = await api.http.post(
        "/api/v1/auth/register", json={"email": "doc@example.com", "password": "long enough"}
    )
    check(reply.json(), "User")
    tokens = await api.login("doc@example.com", "long enough")
    check(tokens, "TokenPair")
    who = {"Authorization": f"Bearer {tokens['access_token']}"}
    room = (await api.http.post("/api/v1/rooms", json={"name": "r"}, headers=who)).json()
    check(room, "Room")
    check((await api.http.get("/api/v1/rooms", headers=who)).json(), "RoomPage")
    check((await api.http.get("/api/v1/users/me", headers=who)).json(), "User")
    check(
        (await api.http.get(f"/api/v1/rooms/{room['id']}/members", headers=who)).json(),
        "MemberList",
    )
    me = (await api.http.get("/api/v1/users/me", headers=who)).json()
    from tests.helpers import Account

    account = Account(me["id"], me["email"], tokens["access_token"], tokens["refresh_token"])
    async with api.socket(account, room["id"]) as ws:
        await ws.send("documented", client_id="c1")
        check(await ws.message(), "Message")
    check(await api.history(account, room["id"]), "MessagePage")
    check((await api.http.get("/api/v1/rooms/999999", headers=who)).json(), "Error")


async def test_a_send_during_a_database_outage_fails_loudly_and_loses_nothing(
    nursery: trio.Nursery, own_pg: PgServer
) -> None:
    settings = Settings(
        port=0, database_url=own_pg.url("chatd"), jwt_secret="x" * 32, db_timeout_s=1
    )
    api, _ = await start_server(nursery, settings)
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send("before")
        before = await ws.message()
        await trio.to_thread.run_sync(own_pg.stop)
        try:
            await ws.send("during", client_id="retry-me")
            error = await ws.error()
            assert error["code"] == "store_unavailable"
            assert error["client_id"] == "retry-me"
        finally:
            await trio.to_thread.run_sync(own_pg.start)
        # Same socket, same client_id: the client retries on each error frame
        # (each waits up to db_timeout_s) until the pool has reconnected.
        for _ in range(20):
            await ws.send("during", client_id="retry-me")
            reply = await ws.next_frame()
            if reply["type"] == "message":
                break
            assert reply["payload"]["code"] == "store_unavailable"
        assert reply["payload"]["id"] == before["id"] + 1
    history = await api.all_history(ann, room["id"])
    assert [m["text"] for m in history] == ["before", "during"]
    await api.aclose()
