"""`chatd send` and `chatd chat` as subprocesses against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from chatd.config import Settings
from tests.conftest import start_server
from tests.helpers import PASSWORD, Account, Api
from tests.web.conftest import CuttableProxy

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


@pytest.fixture
def database_url(sqlite_database: str) -> str:
    """The client does not care which store the server uses: SQLite only here."""
    return sqlite_database


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
    room_id: int,
    env: dict[str, str],
    *,
    launcher: tuple[str, ...] = (),
    chatd: tuple[str, ...] = ("-m", "chatd"),
) -> AsyncIterator[Chat]:
    terminal = [sys.executable, "-c", AS_IN_A_TERMINAL]
    command = [*launcher, *terminal, *chatd, "chat", str(room_id)]
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            command,
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


async def test_send_prints_the_id_of_the_message_a_socket_receives(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(bob, room["id"]) as ws:
        done = await run_chatd(
            "send", str(room["id"]), "hello <b>from</b> the CLI", env=client_env(api.base_url, ann)
        )
        assert done.returncode == 0, done.stderr
        message = await ws.message()
    assert message["text"] == "hello <b>from</b> the CLI"
    assert message["user_id"] == ann.id and message["client_id"].startswith("cli-")
    assert done.stdout.decode() == f"{message['id']}\n"


@pytest.mark.parametrize(
    ("args", "env_change", "code", "says"),
    [
        (["send", "{room}", "x"], {"CHATD_PASSWORD": "wrong password!"}, 1, "wrong email"),
        (["send", "987654", "x"], {}, 1, "room 987654 does not exist"),
        (["send", "{room}", "   "], {}, 2, "cannot be empty"),
        (["send", "{room}", "y" * 4001], {}, 2, "at most 4000 characters"),
        (["send", "{room}", "x"], {"CHATD_EMAIL": ""}, 2, "CHATD_EMAIL"),
        (["send", "{room}", "x"], {"CHATD_URL": "http://127.0.0.1:9"}, 1, "cannot reach"),
        (["chat", "{room}"], {"CHATD_PASSWORD": ""}, 2, "CHATD_PASSWORD"),
    ],
)
async def test_failures_exit_non_zero_with_a_clear_message(
    api: Api, args: list[str], env_change: dict[str, str], code: int, says: str
) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    env = client_env(api.base_url, ann) | env_change
    done = await run_chatd(*[a.format(room=room["id"]) for a in args], env=env)
    assert done.returncode == code, done
    assert says in done.stderr.decode()
    assert done.stdout == b""


async def test_rooms_lists_and_creates(api: Api) -> None:
    ann = await api.signup()
    env = client_env(api.base_url, ann)
    created = await run_chatd("rooms", "--create", "from the cli", "--private", env=env)
    assert created.returncode == 0, created.stderr
    room_id = int(created.stdout)
    listed = await run_chatd("rooms", env=env)
    assert f"{room_id}\tprivate\tfrom the cli\n" in listed.stdout.decode()


async def test_register_then_send(api: Api) -> None:
    env = client_env(
        api.base_url, None, CHATD_EMAIL="newcomer@example.com", CHATD_PASSWORD=PASSWORD
    )
    registered = await run_chatd("register", env=env)
    assert registered.returncode == 0, registered.stderr
    assert "newcomer@example.com" in registered.stdout.decode()
    again = await run_chatd("register", env=env)
    assert again.returncode == 1 and "conflict" in again.stderr.decode()


async def test_chat_prints_the_room_and_sends_what_is_typed(
    api: Api, nursery: trio.Nursery
) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send("said before bob came")
        await ws.message()
        async with chatting(nursery, room["id"], client_env(api.base_url, bob)) as chat:
            assert await chat.text_of_next_message() == "said before bob came"  # history
            await chat.err.until("Ctrl-D quits")  # live from here
            await ws.send("<b>live</b>, two lines\nthe second")
            await ws.message()  # Ann's own echo
            assert await chat.text_of_next_message() == "<b>live</b>, two lines"
            assert await chat.out.next() == "    the second"
            # A terminal escape in a message is shown, not obeyed.
            await ws.send("\x1b[2Jwiped?")
            await ws.message()
            assert await chat.text_of_next_message() == "\\u001b[2Jwiped?"
            await chat.type("hello from the terminal")
            message = await ws.message()
            assert message["text"] == "hello from the terminal"
            assert message["user_id"] == bob.id and message["client_id"].startswith("cli-")
            assert await chat.text_of_next_message() == "hello from the terminal"  # the echo
            await chat.stdin.aclose()  # Ctrl-D
            with trio.fail_after(STEP_TIMEOUT_S):
                assert await chat.process.wait() == 0


async def test_chat_resumes_after_a_network_blip_and_resends_once(
    api: Api, nursery: trio.Nursery
) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    proxy = CuttableProxy(int(api.base_url.rsplit(":", 1)[1]))
    proxy_url: str = await nursery.start(proxy.run)
    async with (
        api.socket(ann, room["id"]) as ws,
        chatting(nursery, room["id"], client_env(proxy_url, bob)) as chat,
    ):
        await chat.err.until("Ctrl-D quits")
        # Bob's line reaches the server, but the echo that acknowledges it is lost...
        proxy.drop_replies()
        await chat.type("into the void")
        assert (await ws.message())["text"] == "into the void"
        # ...then the connection drops. Ann talks; Bob types while disconnected.
        proxy.cut()
        await chat.err.until("-- disconnected")
        missed = [f"missed {i}" for i in range(3)]
        for text in missed:
            await ws.send(text)
        assert [m["text"] for m in await ws.messages(3)] == missed
        await chat.type("typed while away")
        proxy.restore()
        await chat.err.until("-- reconnected")
        printed = [await chat.text_of_next_message() for _ in range(5)]
        assert printed == ["into the void", *missed, "typed while away"]
        assert (await ws.message())["text"] == "typed while away"
        await chat.stdin.aclose()
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 0
    stored = [m["text"] for m in await api.all_history(ann, room["id"])]
    assert stored == ["into the void", *missed, "typed while away"]


@pytest.mark.parametrize("runner", ["in a terminal", "from a background job"])
async def test_ctrl_c_ends_chat(api: Api, nursery: trio.Nursery, runner: str) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    launcher = () if runner == "in a terminal" else (sys.executable, "-c", LIKE_A_BACKGROUND_JOB)
    env = client_env(api.base_url, ann)
    async with chatting(nursery, room["id"], env, launcher=launcher) as chat:
        await chat.err.until("Ctrl-D quits")
        chat.process.send_signal(signal.SIGINT)
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 130


async def test_ctrl_c_ends_chat_as_the_socket_opens(api: Api, nursery: trio.Nursery) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    env = client_env(api.base_url, ann)
    chatd = ("-c", CTRL_C_AS_THE_SOCKET_OPENS)
    async with chatting(nursery, room["id"], env, chatd=chatd) as chat:
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 130


async def test_ctrl_c_ends_chat_while_it_reconnects(api: Api, nursery: trio.Nursery) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    proxy = CuttableProxy(int(api.base_url.rsplit(":", 1)[1]))
    proxy_url: str = await nursery.start(proxy.run)
    async with chatting(nursery, room["id"], client_env(proxy_url, ann)) as chat:
        await chat.err.until("Ctrl-D quits")
        proxy.cut()  # and refuse new connections: it keeps trying
        await chat.err.until("-- disconnected")
        chat.process.send_signal(signal.SIGINT)
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 130


async def test_send_refreshes_a_token_about_to_expire(
    nursery: trio.Nursery, settings_with: Callable[..., Settings]
) -> None:
    # Tokens live 3 s, well under the client's refresh margin: every call refreshes
    # first, each refresh spending the token before it. (Not 1 s: the server rounds
    # exp down to the second, so such a token may be dead on arrival.)
    api, _ = await start_server(nursery, settings_with(access_token_ttl_s=3))
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        done = await run_chatd("send", str(room["id"]), "fresh", env=client_env(api.base_url, ann))
        assert done.returncode == 0, done.stderr
        assert (await ws.message())["text"] == "fresh"
    await api.aclose()
