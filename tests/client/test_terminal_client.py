"""`chatd send` and `chatd chat` as subprocesses against a real server."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import pytest
import trio

from chatd.config import Settings
from tests.client.clients import (
    CTRL_C_AS_THE_SOCKET_OPENS,
    LIKE_A_BACKGROUND_JOB,
    STEP_TIMEOUT_S,
    chatting,
    client_env,
    run_chatd,
)
from tests.conftest import start_server
from tests.helpers import PASSWORD, Api
from tests.web.conftest import CuttableProxy


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
