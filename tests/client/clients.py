"""Running the real `chatd` client program against a real server, for tests/client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from tests.helpers import PASSWORD, Account

STEP_TIMEOUT_S = 20
# A terminal's shell runs its foreground job with SIGINT at the default disposition.
# A test runner started as a script's background job (`pytest &`, nohup) ignores
# SIGINT and its children inherit that, so a chat started from it cannot hear Ctrl-C
# (which is how test_ctrl_c_ends_chat once waited out its 20 s): start it as a
# terminal would.
AS_IN_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)
# What such a runner does to its children, to show the above keeps Ctrl-C working.
LIKE_A_BACKGROUND_JOB = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
# `chatd` with Ctrl-C pressed at the worst moment there was: while trio-websocket
# opens the connection, which held the KeyboardInterrupt until the server hung up.
# The signal is sent from the task that connects, so it is handled right there.
CTRL_C_AS_THE_SOCKET_OPENS = """
import os, runpy, signal, sys
import trio_websocket._impl as websocket
connect = websocket.connect_websocket
async def connect_then_ctrl_c(*args, **kwargs):
    connection = await connect(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)
    return connection
websocket.connect_websocket = connect_then_ctrl_c
sys.argv = ["chatd", *sys.argv[1:]]
runpy.run_module("chatd", run_name="__main__")
"""


def client_env(url: str, who: Account | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env.update(CHATD_URL=url, PYTHONUNBUFFERED="1", **extra)
    if who is not None:
        env.update(CHATD_EMAIL=who.email, CHATD_PASSWORD=PASSWORD)
    return env


async def run_chatd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(STEP_TIMEOUT_S):
        return await trio.run_process(
            [sys.executable, "-m", "chatd", *args],
            env=env,
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


class Lines:
    """Lines from a child's pipe, each awaited with a time limit."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        with trio.fail_after(STEP_TIMEOUT_S):
            while b"\n" not in self._buffer:
                chunk = await self._stream.receive_some()
                if not chunk:
                    raise EOFError(f"the pipe closed; unread: {self._buffer!r}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def until(self, fragment: str) -> list[str]:
        """Lines up to and including the first that contains fragment."""
        seen = [await self.next()]
        while fragment not in seen[-1]:
            seen.append(await self.next())
        return seen


class Chat:
    def __init__(self, process: trio.Process) -> None:
        assert process.stdin and process.stdout and process.stderr
        self.process = process
        self.stdin = process.stdin
        self.out = Lines(process.stdout)
        self.err = Lines(process.stderr)

    async def type(self, line: str) -> None:
        await self.stdin.send_all(line.encode() + b"\n")

    async def text_of_next_message(self) -> str:
        line = await self.out.next()
        assert line.startswith("[") and "] user " in line, line
        return line.split(": ", 1)[1]


@asynccontextmanager
async def chatting(
    nursery: trio.Nursery,
    room_id: int | None,
    env: dict[str, str],
    *,
    launcher: tuple[str, ...] = (),
    chatd: tuple[str, ...] = ("-m", "chatd"),
    command: tuple[str, ...] = (),
) -> AsyncIterator[Chat]:
    """`chatd chat ROOM_ID` running (or, given, `chatd <command>`), as in a terminal."""
    terminal = [sys.executable, "-c", AS_IN_A_TERMINAL]
    args = command or ("chat", str(room_id))
    command_line = [*launcher, *terminal, *chatd, *args]
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            command_line,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    )
    try:
        yield Chat(process)
    finally:
        if process.returncode is None:
            process.kill()
