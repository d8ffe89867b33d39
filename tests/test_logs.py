"""Structured logs from a real `chatd serve`: JSON lines, request ids, no secrets."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from chatd.logs import JsonFormatter, TextFormatter, choose_format, rfc3339
from chatd.transport.context import clean_request_id

PASSWORD = "never-log-this-password-7f3a"
TEXT = "never log this message text 51c9"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass
class Chatd:
    process: subprocess.Popen[str]
    base_url: str = ""
    lines: list[str] = field(default_factory=list)


def _spawn(cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    environ |= {"CHATD_BCRYPT_ROUNDS": "4"} | env
    return subprocess.Popen(
        [sys.executable, "-m", "chatd", "serve", "--port", "0"],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@asynccontextmanager
async def chatd_serving(tmp_path: Path, **env: str) -> AsyncIterator[Chatd]:
    """`chatd serve` with stdout a pipe; on exit, SIGTERM and every line it printed."""
    process = _spawn(tmp_path, env)
    chatd = Chatd(process)
    assert process.stdout is not None
    stdout = process.stdout
    try:
        with trio.fail_after(30):
            while not chatd.base_url:
                line = await trio.to_thread.run_sync(stdout.readline)
                if not line:
                    raise AssertionError("chatd exited early:\n" + "".join(chatd.lines))
                chatd.lines.append(line)
                if match := re.search(r"listening on (http://[^\s\"]+)", line):
                    chatd.base_url = match.group(1)
        yield chatd
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            rest = await trio.to_thread.run_sync(stdout.read)
            assert await trio.to_thread.run_sync(process.wait) == 0
        chatd.lines += rest.splitlines(keepends=True)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stdout.close()


def parse(lines: list[str]) -> list[dict[str, Any]]:
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line, not just ours
        assert isinstance(entry, dict), line
        assert {"ts", "level", "logger", "event"} <= entry.keys(), line
        assert RFC3339_UTC.match(entry["ts"]), line
        entries.append(entry)
    return entries


def access_lines(entries: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("request_id") == request_id]


async def test_json_lines_with_request_and_user_ids_and_no_secrets(tmp_path: Path) -> None:
    async with (
        chatd_serving(tmp_path, CHATD_LOG_FORMAT="json") as chatd,
        httpx.AsyncClient(base_url=chatd.base_url, timeout=10) as http,
    ):
        registered = await http.post(
            "/api/v1/auth/register",
            json={"email": "logs@example.com", "password": PASSWORD},
            headers={"X-Request-Id": "client-chosen-id.1"},
        )
        assert registered.status_code == 201
        assert registered.headers["X-Request-Id"] == "client-chosen-id.1"
        user_id = registered.json()["id"]

        login = await http.post(
            "/api/v1/auth/login", json={"email": "logs@example.com", "password": PASSWORD}
        )
        tokens = login.json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        login_id = login.headers["X-Request-Id"]

        me = await http.get("/api/v1/users/me", headers=auth)
        me_id = me.headers["X-Request-Id"]
        # The same keep-alive connection, no token: the user id must not carry over.
        anonymous = await http.get("/api/v1/users/me")
        assert anonymous.status_code == 401
        anonymous_id = anonymous.headers["X-Request-Id"]
        assert len({login_id, me_id, anonymous_id}) == 3

        odd = await http.get("/healthz", headers={"X-Request-Id": 'a b"\\c\t' + "x" * 100})
        assert odd.headers["X-Request-Id"] == "abc" + "x" * 61

        room = await http.post("/api/v1/rooms", json={"name": "logged"}, headers=auth)
        ws_url = chatd.base_url.replace("http://", "ws://", 1)
        url = f"{ws_url}/ws/rooms/{room.json()['id']}?token={tokens['access_token']}"
        async with open_websocket_url(url, extra_headers=[("X-Request-Id", "ws-conn-1")]) as ws:
            await ws.send_message(json.dumps({"type": "message", "payload": {"text": TEXT}}))
            with trio.fail_after(10):
                while json.loads(await ws.get_message())["type"] != "message":
                    pass
        with pytest.raises(ConnectionRejected) as refused:
            bad_token = [("Authorization", "Bearer nope"), ("X-Request-Id", "ws-conn-2")]
            async with open_websocket_url(url.split("?")[0], extra_headers=bad_token):
                pass
        assert refused.value.status_code == 401
        assert (b"x-request-id", b"ws-conn-2") in refused.value.headers

    entries = parse(chatd.lines)
    output = "".join(chatd.lines)
    for secret in (PASSWORD, tokens["access_token"], tokens["refresh_token"], TEXT):
        assert secret not in output

    [register_line] = access_lines(entries, "client-chosen-id.1")
    assert register_line["event"] == "POST /api/v1/auth/register 201"
    assert register_line["status"] == 201 and "user_id" not in register_line
    [login_line] = access_lines(entries, login_id)
    assert login_line["path"] == "/api/v1/auth/login" and "user_id" not in login_line
    [me_line] = access_lines(entries, me_id)
    assert me_line["path"] == "/api/v1/users/me" and me_line["user_id"] == user_id
    [anonymous_line] = access_lines(entries, anonymous_id)
    assert anonymous_line["status"] == 401 and "user_id" not in anonymous_line
    opening, closed = access_lines(entries, "ws-conn-1")
    assert re.fullmatch(r"websocket /ws/rooms/\d+: opening", opening["event"])
    assert re.fullmatch(r"websocket /ws/rooms/\d+: closed after [\d.]+ s", closed["event"])
    assert closed["user_id"] == user_id  # known once the handshake authenticated
    assert access_lines(entries, "ws-conn-2")[-1]["event"].endswith(": refused 401")
    # Lines from outside any request carry no ids.
    [listening] = [e for e in entries if "listening on" in e["event"]]
    assert "request_id" not in listening and "user_id" not in listening


async def test_text_format_is_not_json(tmp_path: Path) -> None:
    async with (
        chatd_serving(tmp_path, CHATD_LOG_FORMAT="text") as chatd,
        httpx.AsyncClient(base_url=chatd.base_url) as http,
    ):
        reply = await http.get("/api/v1/nowhere", headers={"X-Request-Id": "text-1"})
        assert reply.status_code == 404
    assert chatd.lines
    for line in chatd.lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    assert any(" INFO chatd.server: chatd listening on " in line for line in chatd.lines)
    assert any("GET /api/v1/nowhere 404 [request_id=text-1]" in line for line in chatd.lines)


async def test_a_crash_is_logged_as_json_too(tmp_path: Path) -> None:
    url = "postgresql://nobody:db-password-9e1d@127.0.0.1:1/x"  # nothing listens on port 1
    env = {"CHATD_LOG_FORMAT": "json", "CHATD_DATABASE_URL": url}
    process = _spawn(tmp_path, env)
    with trio.fail_after(30):
        output, _ = await trio.to_thread.run_sync(process.communicate)
    assert process.returncode == 1
    entries = parse(output.splitlines())
    crash = entries[-1]
    assert crash["level"] == "CRITICAL" and "OperationalError" in crash["exc"]
    assert "Traceback" in crash["exc"]
    assert "db-password-9e1d" not in output


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            exc_info = sys.exc_info()
    return logging.LogRecord("chatd.test", logging.ERROR, __file__, 1, message, args, exc_info)


def test_json_carries_the_exception_and_stays_on_one_line() -> None:
    line = JsonFormatter().format(record("two\nlines %s", "ü", exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["event"] == "two\nlines ü"
    assert entry["level"] == "ERROR" and entry["logger"] == "chatd.test"
    assert "Traceback" in entry["exc"] and "ZeroDivisionError" in entry["exc"]


def test_text_puts_the_ids_after_the_message_before_the_traceback() -> None:
    rec = record("failed", exc=True)
    rec.request_id, rec.user_id = "r1", 7
    first, *rest = TextFormatter().format(rec).splitlines()
    assert first.endswith("ERROR chatd.test: failed [request_id=r1 user_id=7]")
    assert rest[0].startswith("Traceback")


def test_auto_is_text_on_a_terminal_and_json_elsewhere(tmp_path: Path) -> None:
    with (tmp_path / "file").open("w") as not_a_tty:
        assert choose_format("auto", not_a_tty) == "json"
        assert choose_format("text", not_a_tty) == "text"
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty:
        assert choose_format("auto", tty) == "text"
        assert choose_format("json", tty) == "json"
    os.close(leader)


def test_request_ids_are_cleaned_or_made_up() -> None:
    assert clean_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    assert clean_request_id("a\r\nb c") == "abc"
    assert len(clean_request_id("x" * 500)) == 64
    made_up = clean_request_id(None)
    assert re.fullmatch(r"[0-9a-f]{32}", made_up)
    assert clean_request_id("\n\t ") != clean_request_id("\n\t ")


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500Z"
