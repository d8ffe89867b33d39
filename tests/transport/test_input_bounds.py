"""What chatd refuses to read: oversized and deeply nested input, text that is not text,
out-of-range numbers, WebSocket handshakes from other sites' pages. Each refusal is a
4xx in the error shape (REST, handshakes) or an error frame on a socket that stays open.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionRejected, open_websocket_url

from chatd.config import ConfigError, Settings
from chatd.errors import ValidationFailed
from chatd.transport.http import MAX_JSON_DEPTH, too_deep
from chatd.transport.openapi import ROOM_NAME_PATTERN
from chatd.transport.rest_rooms import room_name
from tests.conftest import start_server
from tests.helpers import PASSWORD, Account, Api, Socket


@pytest.fixture
def database_url(sqlite_database: str) -> str:
    """Everything here is refused before the store is asked: SQLite is enough."""
    return sqlite_database


def assert_error(reply: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def nested(depth: int, inner: object = 1) -> Any:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


async def pong(ws: Socket) -> None:
    """The socket still answers: a ping gets its pong."""
    await ws.send_raw('{"type": "ping"}')
    assert (await ws.next_frame())["type"] == "pong"


# -- WebSocket frames -----------------------------------------------------------------


async def test_an_oversized_frame_is_refused_unread_and_the_socket_stays(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        # Not JSON at all, and past the limit: the size is what is reported, so the
        # frame was measured, not parsed. A client_id inside it is not read either.
        await ws.send_raw("{" + "x" * 70_000)
        assert (await ws.error())["code"] == "frame_too_large"
        oversized = {"type": "message", "payload": {"text": "y" * 70_000, "client_id": "big-1"}}
        await ws.send_raw(json.dumps(oversized))
        error = await ws.error()
        assert error["code"] == "frame_too_large" and "client_id" not in error
        await pong(ws)
        await ws.send("still here")
        assert (await ws.message())["text"] == "still here"


async def test_deeply_nested_frames_get_an_error_frame_quickly(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        for frame in (
            "[" * 60_000,  # unclosed, just under the frame size limit
            "[" * 30_000 + "]" * 30_000,
            '{"a":' * 10_000 + "1" + "}" * 10_000,
            json.dumps({"type": "message", "payload": {"text": "hi", "x": nested(20)}}),
        ):
            started = time.perf_counter()
            await ws.send_raw(frame)
            assert (await ws.error())["code"] == "frame_too_deep", frame[:40]
            assert time.perf_counter() - started < 2.0
        await pong(ws)


async def test_nesting_within_the_limit_and_brackets_in_text_are_fine(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        # The frame object and its payload are two levels; extras may go to the limit.
        extra = nested(MAX_JSON_DEPTH - 2)
        frame = {"type": "message", "payload": {"text": "deep enough", "extra": extra}}
        await ws.send_raw(json.dumps(frame))
        assert (await ws.message())["text"] == "deep enough"
        brackets = "[[[[{{{{" * 400 + ']]]]}}}} \\" "'
        await ws.send(brackets)  # brackets in a string are text, however many
        assert (await ws.message())["text"] == brackets


async def test_an_unencodable_client_id_in_a_refused_send_does_not_break_anything(
    api: Api,
) -> None:
    """Regression: the error frame named the client_id "\\ud800", which cannot be encoded;
    the exception escaped the connection's task and stopped the whole server."""
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_raw('{"type":"message","payload":{"text":"","client_id":"\\ud800"}}')
        error = await ws.error()
        assert error["code"] == "invalid_text" and "client_id" not in error
        await ws.send_raw('{"type":"message","payload":{"text":"","client_id":"ok-1"}}')
        assert (await ws.error())["client_id"] == "ok-1"  # a valid one is still named
        await pong(ws)
    # The server is still up for everyone.
    async with api.socket(bob, room["id"]) as other:
        await pong(other)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "' + "x" * 5000 + '"}', "invalid_frame"),  # not echoed back at length
        ("1" * 5000, "invalid_json"),  # past Python's digit limit for int()
        ('{"type": "message", "payload": {"text": "x", "client_id": 1e400}}', "invalid_client_id"),
        ('{"type": "message", "payload": {"text": NaN}}', "invalid_text"),
    ],
)
async def test_odd_values_get_an_error_frame(api: Api, frame: str, code: str) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_raw(frame)
        error = await ws.error()
        assert error["code"] == code and len(error["message"]) < 200, error
        await pong(ws)


async def test_binary_frames_must_hold_utf8(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_raw('{"type": "ping"}'.encode("utf-16"))
        assert (await ws.error())["code"] == "invalid_json"
        await ws.send_raw(b'{"type": "message", "payload": {"text": "\xc3\x28"}}')
        assert (await ws.error())["code"] == "invalid_json"
        await ws.send_raw(b'{"type": "ping"}')
        assert (await ws.next_frame())["type"] == "pong"


@pytest.mark.parametrize("since", ["-1", "abc", "1e3", "9" * 30, "9" * 5000])
async def test_a_bad_since_is_refused_with_422(api: Api, since: str) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    url = f"{api.ws_base}/ws/rooms/{room['id']}?since={since}&token={ann.access_token}"
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(url):
            pass
    assert refused.value.status_code == 422
    body = json.loads(refused.value.body or b"{}")
    assert body["error"]["code"] == "validation_error"


def depth_of(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


def brackets_outside_strings(text: str) -> int:
    """How deep json.loads goes into `text`, valid or cut short, the slow way."""
    depth = deepest = 0
    for char in re.sub(r'"[^"\\]*(?:\\.[^"\\]*)*"?', "", text, flags=re.DOTALL):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


# Strings full of brackets, quotes and backslashes: the characters the check must see past.
json_values = st.recursive(
    st.none() | st.integers() | st.text('[]{}"\\ab\n'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text('[{"\\x', max_size=3), inner)
    ),
    max_leaves=40,
)


@given(json_values, st.integers(0, 6), st.data())
def test_the_depth_check_refuses_exactly_what_nests_too_deep(
    value: object, limit: int, data: st.DataObject
) -> None:
    """JSON within the limit is never refused (brackets in text do not count), deeper JSON
    always is, and so is any cut-short frame whose parse would go deeper."""
    text = json.dumps(value)
    assert too_deep(text, limit) == (depth_of(value) > limit)
    cut = text[: data.draw(st.integers(0, len(text)))]
    if brackets_outside_strings(cut) > limit:
        assert too_deep(cut, limit)


# -- WebSocket Origin ----------------------------------------------------------------


async def connect_from(api: Api, who: Account, room_id: int, origin: str | None) -> int:
    """The handshake's status for a page from `origin` (None: a client that sends none)."""
    headers = [("Authorization", f"Bearer {who.access_token}")]
    if origin is not None:
        headers.append(("Origin", origin))
    try:
        async with open_websocket_url(api.ws_url(room_id), extra_headers=headers) as ws:
            await pong(Socket(ws))
            return 101
    except ConnectionRejected as refused:
        if refused.status_code == 403:
            body = json.loads(refused.body or b"{}")
            assert body["error"]["code"] == "forbidden", body
            assert "CHATD_ALLOWED_ORIGINS" in body["error"]["message"]
        return refused.status_code


@pytest.fixture
async def served(
    nursery: trio.Nursery, settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[Api]:
    api, _ = await start_server(nursery, replace(settings, allowed_origins=request.param))
    try:
        yield api
    finally:
        await api.aclose()


@pytest.mark.parametrize("served", [""], indirect=True)
async def test_by_default_only_the_server_s_own_pages_may_open_sockets(served: Api) -> None:
    api = served
    ann = await api.signup()
    room = await api.create_room(ann)
    own = api.base_url  # http://127.0.0.1:PORT, as the web client served here sends it
    assert await connect_from(api, ann, room["id"], None) == 101  # terminal client, bench
    assert await connect_from(api, ann, room["id"], own) == 101
    assert await connect_from(api, ann, room["id"], own.upper() + "/") == 101
    port = own.rsplit(":", 1)[1]
    for foreign in (
        "https://evil.example",
        f"http://evil.example:{port}",
        "http://127.0.0.1:1",  # the same host, another port: another origin
        "null",  # a sandboxed frame or a file:// page
        f"{own}, https://evil.example",  # two Origin values
    ):
        assert await connect_from(api, ann, room["id"], foreign) == 403, foreign


@pytest.mark.parametrize(
    "served", ["https://chat.example.com, http://Other.example:8080"], indirect=True
)
async def test_listed_origins_are_let_in_besides_the_server_s_own(served: Api) -> None:
    api = served
    ann = await api.signup()
    room = await api.create_room(ann)
    for allowed in (
        "https://chat.example.com",
        "https://chat.example.com:443",
        "http://other.example:8080",
        api.base_url,
    ):
        assert await connect_from(api, ann, room["id"], allowed) == 101, allowed
    for refused in ("http://chat.example.com", "https://chat.example.com.evil.example"):
        assert await connect_from(api, ann, room["id"], refused) == 403, refused


@pytest.mark.parametrize("served", ["*"], indirect=True)
async def test_a_star_lets_every_origin_in(served: Api) -> None:
    ann = await served.signup()
    room = await served.create_room(ann)
    for origin in ("https://anything.example", "null"):
        assert await connect_from(served, ann, room["id"], origin) == 101


def test_a_malformed_allowed_origin_stops_chatd_from_starting() -> None:
    env = {"CHATD_JWT_SECRET": "s" * 40}
    for good in ("", "*", "https://chat.example.com,http://localhost:8080"):
        assert Settings.from_env(env | {"CHATD_ALLOWED_ORIGINS": good}).allowed_origins == good
    for bad in ("chat.example.com", "https://chat.example.com/app", "https://"):
        with pytest.raises(ConfigError, match="CHATD_ALLOWED_ORIGINS"):
            Settings.from_env(env | {"CHATD_ALLOWED_ORIGINS": bad})


# -- REST bodies ----------------------------------------------------------------------


async def test_a_body_past_64_kib_is_413_with_or_without_content_length(api: Api) -> None:
    body = json.dumps({"email": "big@example.com", "password": "p" * 70_000}).encode()
    reply = await api.http.post("/api/v1/auth/register", content=body)
    assert_error(reply, 413, "request_entity_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    reply = await api.http.post("/api/v1/auth/register", content=chunks())
    assert reply.request.headers.get("transfer-encoding") == "chunked"
    assert_error(reply, 413, "request_entity_too_large")
    # Nothing was created, and a body at a sane size goes through.
    ok = {"email": "big@example.com", "password": PASSWORD}
    assert (await api.http.post("/api/v1/auth/register", json=ok)).status_code == 201


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 60_000,
        b'{"email": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        json.dumps({"name": "deep", "visibility": nested(MAX_JSON_DEPTH + 1)}).encode(),
    ],
)
async def test_a_deeply_nested_body_is_400(api: Api, raw: bytes) -> None:
    ann = await api.signup()
    for path, headers in (("/api/v1/auth/register", {}), ("/api/v1/rooms", ann.headers)):
        reply = await api.http.post(path, content=raw, headers=headers)
        assert "deeper" in assert_error(reply, 400, "invalid_json")["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"email": "\xff@example.com", "password": "long enough"}',  # not UTF-8 (was a 500)
        b'{"email": "s\\ud800@example.com", "password": "long enough"}',  # a lone surrogate
        b'{"email": "ok@example.com", "password": "long enough \\udfff"}',
    ],
)
async def test_a_body_that_is_not_unicode_text_is_400(api: Api, raw: bytes) -> None:
    for path in ("/api/v1/auth/register", "/api/v1/auth/login"):
        assert_error(await api.http.post(path, content=raw), 400, "invalid_json")


async def test_a_surrogate_pair_escape_is_ordinary_text(api: Api) -> None:
    reply = await api.http.post(
        "/api/v1/auth/register",
        content=b'{"email": "pair@example.com", "password": "emoji \\ud83d\\ude00 ok"}',
    )
    assert reply.status_code == 201, reply.text
    await api.login("pair@example.com", "emoji \U0001f600 ok")


# -- REST fields and parameters -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "x" * 101,
        "tab\there",
        "del\x7f",
        "c1\x85inside",
        "line\u2028sep",
        "Trojan \u202egnp.exe",
        "isolate \u2066x\u2069",
        "zero\u200bwidth",
        "bom\ufeff",
    ],
)
async def test_a_room_name_that_hides_what_it_says_is_422(api: Api, name: str) -> None:
    ann = await api.signup()
    reply = await api.http.post("/api/v1/rooms", json={"name": name}, headers=ann.headers)
    assert_error(reply, 422, "validation_error")
    room = await api.create_room(ann, "fine")
    reply = await api.http.patch(
        f"/api/v1/rooms/{room['id']}", json={"name": name}, headers=ann.headers
    )
    assert_error(reply, 422, "validation_error")


@pytest.mark.parametrize(
    "name",
    [
        "x" * 100,
        "👩\u200d👩\u200d👧 family",  # joined by ZWJ
        "שלום עולם",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with a ZWNJ
        "mark\u200fed",
        "日本語",
    ],
)
async def test_room_names_in_any_script_are_kept_as_typed(api: Api, name: str) -> None:
    ann = await api.signup()
    assert (await api.create_room(ann, name))["name"] == name


TRICKY = " \t\n\x00\x1f\x7f\x85\xa0a\u200b\u200c\u200d\u200e\u2028\u202e\u2066\u3000\ufeff"


tricky_texts = st.text(st.sampled_from(TRICKY) | st.characters(exclude_categories=["Cs"]))
# Around the length limit too: whitespace on either side does not count.
around_the_limit = st.builds(
    lambda before, length, after: before + "x" * length + after,
    st.text(" \t\n\x85", max_size=3),
    st.integers(97, 103),
    st.text(" \t\n\x85", max_size=3),
)


@given(tricky_texts | around_the_limit)
def test_the_documented_room_name_pattern_is_what_the_server_accepts(name: str) -> None:
    """Clients that check names against /api/v1/openapi.json agree with the server."""
    try:
        room_name(name)
        accepted = True
    except ValidationFailed:
        accepted = False
    assert accepted == (re.search(ROOM_NAME_PATTERN, name) is not None), repr(name)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"email": "a" * 64 + "@" + "b" * 185 + ".com", "password": PASSWORD}, 201),  # 254
        ({"email": "a" * 64 + "@" + "b" * 186 + ".com", "password": PASSWORD}, 422),  # 255
        ({"email": "a" * 65 + "@example.com", "password": PASSWORD}, 422),
        ({"email": "len@example.com", "password": "p" * 1024}, 201),
        ({"email": "len@example.com", "password": "p" * 1025}, 422),
        ({"email": "len@example.com", "password": "p" * 7}, 422),
        ({"email": "len@example.com", "password": "nul\x00inside"}, 422),
    ],
)
async def test_email_and_password_lengths(api: Api, body: dict[str, str], status: int) -> None:
    reply = await api.http.post("/api/v1/auth/register", json=body)
    assert reply.status_code == status, reply.text


async def test_a_login_with_huge_credentials_is_just_wrong(api: Api) -> None:
    await api.signup("huge@example.com")
    for body in (
        {"email": "huge@example.com", "password": "p" * 60_000},
        {"email": "e" * 60_000, "password": PASSWORD},
    ):
        reply = await api.http.post("/api/v1/auth/login", json=body)
        assert_error(reply, 401, "unauthorized")


BAD_PAGES = [
    *[("rooms", query) for query in ("cursor=-1", "cursor=abc", f"cursor={2**63}", "after=x")],
    *[("messages", query) for query in ("before=0", f"before={2**63}", "before=1.5")],
    *[
        (where, query)
        for where in ("rooms", "messages")
        for query in ("limit=0", "limit=201", "limit=-1", "limit=1e3", "limit=" + "9" * 5000)
    ],
]


@pytest.mark.parametrize(("where", "query"), BAD_PAGES)
async def test_out_of_range_page_parameters_are_422(api: Api, where: str, query: str) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    path = "/api/v1/rooms" if where == "rooms" else f"/api/v1/rooms/{room['id']}/messages"
    assert_error(await api.http.get(f"{path}?{query}", headers=ann.headers), 422)
