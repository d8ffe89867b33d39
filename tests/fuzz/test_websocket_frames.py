"""Hypothesis-made bad frames against a live socket of a running chatd.

Each example opens a sender and a watcher in the same room, sends a few bad
frames (random bytes and text, random JSON, near misses of real frames, huge
numbers, deep nesting, oversized frames, binary frames that are not UTF-8), and
expects, in order: one error frame per bad frame, then a pong for a ping, then
a good message delivered to both sockets. Nothing bad may be stored or
broadcast, and the server must log no error.

pytest-trio runs an async test under @given as one trio.run per example; the
server is a separate process, shared by every example (tests/fuzz/conftest.py).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
import trio
from hypothesis import given, note
from hypothesis import strategies as st
from trio_websocket import open_websocket_url

from chatd.transport.http import MAX_JSON_DEPTH
from tests.fuzz.conftest import LiveServer, fuzz_settings
from tests.helpers import Socket

pytestmark = pytest.mark.fuzz

EXAMPLES = 300
MAX_FRAME_BYTES = 64 * 1024  # the server's default CHATD_MAX_FRAME_BYTES
MAX_TEXT_CHARS = 4000
ERROR_CODES = {
    "invalid_json",
    "invalid_frame",
    "unknown_type",
    "invalid_text",
    "text_too_long",
    "invalid_client_id",
    "frame_too_large",
    "frame_too_deep",
}
_serial = itertools.count(1)


# -- strategies: every frame they make is one the server must refuse -----------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Numbers no JSON library agrees on: past float range, past int()'s digit limit.
huge_numbers = st.sampled_from(
    ["1e400", "-1e400", "1" * 5000, "-0", "1E+999999999", "0." + "9" * 900]
)
TYPE_NEAR_MISSES = ["Message", "MESSAGE", "message ", " ping", "pong", "Ping", "typing\x00"]
type_near_misses = st.sampled_from([*TYPE_NEAR_MISSES, "messages", "", "x" * 99])
KNOWN_TYPES = ("message", "ping", "typing")
type_near_misses |= st.text(max_size=12).filter(lambda kind: kind not in KNOWN_TYPES)
bad_texts = st.one_of(
    st.sampled_from(["", " ", "\n\t ", "nul\x00inside"]),
    st.builds(lambda n: "x" * n, st.integers(MAX_TEXT_CHARS + 1, MAX_TEXT_CHARS + 50)),
    json_scalars.filter(lambda value: not isinstance(value, str)),
    st.lists(st.text(max_size=3), max_size=2),
)
bad_client_ids = st.one_of(
    st.just(""),
    st.builds(lambda n: "c" * n, st.integers(65, 80)),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.just({"id": 1}),
    st.just("nul\x00"),
)


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@st.composite
def near_miss_frames(draw: st.DrawFn) -> str | bytes:
    """A real frame's shape, one thing wrong."""
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return dumps({"type": draw(type_near_misses), "payload": {"text": "hi"}})
    if kind == 1:  # type that is not a string
        return dumps({"type": draw(json_values.filter(lambda v: not isinstance(v, str)))})
    if kind == 2:  # a message whose payload is not an object
        payload = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return dumps({"type": "message", "payload": payload})
    if kind == 3:
        return dumps({"type": "message", "payload": {"text": draw(bad_texts)}})
    if kind == 4:
        payload = {"text": "fine", "client_id": draw(bad_client_ids)}
        return dumps({"type": "message", "payload": payload})
    if kind == 5:  # lone surrogates, as JSON escapes (the only way to send them)
        where = draw(st.sampled_from(["text", "client_id"]))
        escaped = draw(st.sampled_from(["\\ud800", "\\udfff", "a\\udbff", "\\udc00\\ud800"]))
        text = escaped if where == "text" else "ok"
        client_id = f',"client_id":"{escaped}"' if where == "client_id" else ""
        return f'{{"type":"message","payload":{{"text":"{text}"{client_id}}}}}'
    if kind == 6:  # a number nobody can use where a string belongs
        field = draw(st.sampled_from(["type", "text", "client_id"]))
        number = draw(huge_numbers)
        if field == "type":
            return f'{{"type":{number}}}'
        other = '"text":"ok"' if field == "client_id" else '"client_id":"c"'
        return f'{{"type":"message","payload":{{"{field}":{number},{other}}}}}'
    # kind 7: a frame that is fine but for trailing junk
    return dumps({"type": "ping"}) + draw(st.sampled_from(["x", "}", ",", "{}", "\x00"]))


@st.composite
def deep_frames(draw: st.DrawFn) -> str:
    depth = draw(st.integers(MAX_JSON_DEPTH + 1, 30_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    closed = draw(st.booleans())
    inner = opener * depth + "1" + (closer * depth if closed else "")
    if draw(st.booleans()):  # deep inside an otherwise good message
        return '{"type":"message","payload":{"text":"hi","extra":' + inner + "}}"
    return inner


@st.composite
def oversized_frames(draw: st.DrawFn) -> str | bytes:
    size = draw(st.integers(MAX_FRAME_BYTES + 1, MAX_FRAME_BYTES + 4096))
    text = "y" * size
    frame = dumps({"type": "message", "payload": {"text": text, "client_id": "big"}})
    return frame.encode() if draw(st.booleans()) else frame


@st.composite
def not_utf8_binary(draw: st.DrawFn) -> bytes:
    """JSON that would be fine, sent as a binary frame with bytes that are not UTF-8."""
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    return b'{"type":"message","payload":{"text":"' + bad + b'"}}'


def acceptable(frame: str | bytes) -> bool:
    """Whether random generation happened on a frame the server should take (skipped)."""
    try:
        value = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("type") in KNOWN_TYPES


random_frames = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    json_values.map(dumps),
    json_values.map(lambda value: dumps(value).encode()),
).filter(lambda frame: not acceptable(frame))

# Near misses reach furthest into the handler: they get three shares of the examples.
bad_frames = st.one_of(
    near_miss_frames(),
    near_miss_frames(),
    near_miss_frames(),
    random_frames,
    deep_frames(),
    oversized_frames(),
    not_utf8_binary(),
)


# -- the property --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_room(live_server: LiveServer) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]]]:
    """A room of its own (the API fuzzer may delete rooms), a sender and a watcher."""
    with httpx.Client(base_url=live_server.base_url, timeout=10) as http:
        _, sender_token = live_server.new_account(http, "ws-sender@example.com")
        _, watcher_token = live_server.new_account(http, "ws-watcher@example.com")
        sender = {"Authorization": f"Bearer {sender_token}"}
        room = http.post("/api/v1/rooms", json={"name": "frames"}, headers=sender).json()
    return (
        int(room["id"]),
        [("Authorization", f"Bearer {sender_token}")],
        [("Authorization", f"Bearer {watcher_token}")],
    )


@given(frames=st.lists(bad_frames, min_size=1, max_size=4))
@fuzz_settings(examples=EXAMPLES)
async def test_every_bad_frame_gets_an_error_and_the_socket_stays_usable(
    live_server: LiveServer,
    fuzz_room: tuple[int, list[tuple[str, str]], list[tuple[str, str]]],
    frames: list[str | bytes],
) -> None:
    room_id, sender_auth, watcher_auth = fuzz_room
    url = f"{live_server.ws_base}/ws/rooms/{room_id}"
    good = f"good {next(_serial)}"
    live_server.assert_healthy()  # a frame of an earlier example may have stopped it
    live_server.sent = [repr(frame[:200]) for frame in frames]
    with trio.fail_after(30):
        async with (
            open_websocket_url(url, extra_headers=watcher_auth) as watching,
            open_websocket_url(url, extra_headers=sender_auth) as sending,
        ):
            sender, watcher = Socket(sending), Socket(watching)
            for frame in frames:
                note(f"frame {frame[:200]!r}")
                await sender.send_raw(frame)
                error = await sender.error()
                assert error["code"] in ERROR_CODES, (frame[:80], error)
                assert error["message"], error
            await sender.send_raw('{"type":"ping"}')
            assert (await sender.next_frame())["type"] == "pong"
            await sender.send(good, client_id=good)
            echoed = await sender.message()
            assert echoed["text"] == good and echoed["client_id"] == good
            # The watcher's first message is the good one: nothing bad was broadcast.
            assert (await watcher.message())["text"] == good
    live_server.assert_healthy()
