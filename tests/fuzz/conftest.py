"""A chatd of its own for the fuzzers: a `chatd serve` process on a free port, SQLite.

The fuzzers run in CI on a fixed budget (about a minute and a half in all);
CHATD_FUZZ_SCALE=N runs N times as many examples (CHATD_FUZZ_SCALE=20 for a
half-hour hunt). Hypothesis keeps failing examples in .hypothesis/ (it ignores
itself in git), so a rerun tries them first. `pytest -m "not fuzz"` leaves the
fuzzers out.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import trio
from hypothesis import HealthCheck, settings
from trio_websocket import open_websocket_url

from tests.helpers import PASSWORD, Socket

START_TIMEOUT_S = 30
SECRET = "fuzz-secret-that-is-long-enough-for-hs256"


def fuzz_scale() -> float:
    raw = os.environ.get("CHATD_FUZZ_SCALE", "1")
    try:
        return max(float(raw), 0.01)
    except ValueError:
        raise pytest.UsageError(f"CHATD_FUZZ_SCALE={raw!r} is not a number") from None


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for `examples` examples at scale 1, and no deadline: every
    example is a network round trip, and CI machines are shared."""
    return settings(
        max_examples=max(1, round(examples * fuzz_scale())),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@dataclass
class LiveServer:
    """A running `chatd serve`, its log so far, and an account with a valid token."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=2000))
    problems: list[str] = field(default_factory=list)  # ERROR and CRITICAL log lines
    access_token: str = ""  # the fuzzer's, who owns the rooms it makes
    other_user_id: int = 0  # a second account, for membership routes
    sent: list[str] = field(default_factory=list)  # what the latest example sent, for reports

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    def new_account(self, http: httpx.Client, email: str) -> tuple[int, str]:
        """A registered user's id and access token."""
        credentials = {"email": email, "password": PASSWORD}
        created = http.post("/api/v1/auth/register", json=credentials)
        assert created.status_code == 201, created.text
        tokens = http.post("/api/v1/auth/login", json=credentials).json()
        return created.json()["id"], tokens["access_token"]

    def seed_room(self, messages: int = 3) -> int:
        """A new public room of the fuzzer's, with the other account in it and a few
        messages (sent over a WebSocket: REST has no way to send)."""
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            room = http.post("/api/v1/rooms", json={"name": "fuzz"}, headers=self.auth).json()
            member = f"/api/v1/rooms/{room['id']}/members/{self.other_user_id}"
            assert http.put(member, headers=self.auth).status_code == 204

        async def send() -> None:
            url = f"{self.ws_base}/ws/rooms/{room['id']}"
            async with open_websocket_url(url, extra_headers=list(self.auth.items())) as ws:
                sender = Socket(ws)
                for i in range(messages):
                    await sender.send(f"seed {i}")
                    await sender.message()

        trio.run(send)
        return int(room["id"])

    def assert_healthy(self) -> None:
        """Still serving, and nothing logged at ERROR: a crash or a 500 logs there."""
        last = "\nafter an example that sent:\n" + "\n".join(self.sent) if self.sent else ""
        assert self.process.poll() is None, "chatd exited:\n" + "\n".join(self.log) + last
        assert not self.problems, "chatd logged errors:\n" + "\n".join(self.problems[:5]) + last

    def _read_log(self, listening: threading.Event) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if not listening.is_set() and (found := re.search(r"listening on (\S+)", line)):
                self.base_url = found.group(1).rstrip('",')
                listening.set()
            try:
                level = json.loads(line).get("level")
            except (ValueError, AttributeError):
                level = "ERROR" if "Traceback" in line else None
            if level in ("ERROR", "CRITICAL"):
                self.problems.append(line)


def server_env(database_url: str) -> dict[str, str]:
    limits_off = {  # the fuzzers test what handlers do with input, not how fast it may come
        f"CHATD_{name}": "0"
        for name in (
            "WS_SEND_PER_S",
            "WS_ABUSE_REFUSALS",
            "REST_USER_PER_S",
            "REST_ADDRESS_PER_S",
            "REGISTER_ADDRESS_PER_S",
            "LOGIN_ACCOUNT_FAILURES",
            "LOGIN_ADDRESS_FAILURES",
        )
    }
    return {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")} | {
        "CHATD_DATABASE_URL": database_url,
        "CHATD_JWT_SECRET": SECRET,
        "CHATD_BCRYPT_ROUNDS": "4",
        "CHATD_ACCESS_TOKEN_TTL_S": "86400",  # a long local run keeps a valid token
        "CHATD_LOG_FORMAT": "json",
        **limits_off,
    }


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'chatd.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "chatd", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=server_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer("", process)
    listening = threading.Event()
    reader = threading.Thread(target=server._read_log, args=(listening,), name="chatd-log")
    reader.start()
    try:
        if not listening.wait(START_TIMEOUT_S):
            raise RuntimeError("chatd did not start:\n" + "\n".join(server.log))
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            _, server.access_token = server.new_account(http, "fuzzer@example.com")
            server.other_user_id, _ = server.new_account(http, "other@example.com")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(START_TIMEOUT_S)
