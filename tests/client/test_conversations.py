"""`chatd dm`, `chatd search`, `chatd unread`, and how `chatd chat` shows edits,
deletions and reactions: the real client program against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import trio

from tests.client.clients import STEP_TIMEOUT_S, chatting, client_env, run_chatd
from tests.helpers import Account, Api


def handle(who: Account) -> str:
    return who.email.split("@")[0].casefold()


async def call(
    api: Api, who: Account, method: str, path: str, status: int, body: Any = None
) -> Any:
    reply = await api.http.request(
        method, f"/api/v1{path}", json=body, headers=who.headers, timeout=10
    )
    assert reply.status_code == status, reply.text
    return reply.json() if reply.content else None


async def say(api: Api, who: Account, room_id: int, *texts: str) -> list[dict[str, Any]]:
    """Send these messages over a socket of who's; their echoes, once all are stored."""
    sent = []
    async with api.socket(who, room_id) as ws:
        for text in texts:
            await ws.send(text)
            sent.append(await ws.expect("message", text=text))
    return sent


def lines(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


# -- chatd dm


@pytest.mark.parametrize("form", ["email", "handle", "@handle", "id"])
async def test_dm_finds_the_person_and_chats_with_them(
    api: Api, nursery: trio.Nursery, form: str
) -> None:
    ann, bob = await api.signup(), await api.signup()
    who = {
        "email": ann.email,
        "handle": handle(ann).upper(),  # any case
        "@handle": f"@{handle(ann)}",
        "id": str(ann.id),
    }[form]
    env = client_env(api.base_url, bob)
    async with chatting(nursery, None, env, command=("dm", who)) as chat:
        header = (await chat.err.until("Ctrl-D quits"))[-1]
        assert f"-- DM with {handle(ann)} (#" in header, header
        # The DM bob's client opened is the one between them: ann finds it (200).
        dm = await call(api, ann, "POST", "/dms", 200, {"user_id": bob.id})
        assert dm["kind"] == "dm" and sorted(dm["member_ids"]) == sorted([ann.id, bob.id])
        assert f"(#{dm['id']})" in header
        async with api.socket(ann, dm["id"]) as ws:
            await ws.send("hi bob")
            await ws.expect("message", text="hi bob")
            assert await chat.text_of_next_message() == "hi bob"
            await chat.type("hi ann")
            await ws.expect("message", text="hi ann", user_id=bob.id)
            assert await chat.text_of_next_message() == "hi ann"  # the echo
        await chat.stdin.aclose()
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 0


async def test_dm_says_whom_it_cannot_find(api: Api) -> None:
    ann = await api.signup()
    await api.signup("twin@one.example")
    await api.signup("twin@two.example")
    await api.signup("twinkle@example.com")
    env = client_env(api.base_url, ann)

    nobody = await run_chatd("dm", "nobody-like-that", env=env)
    assert nobody.returncode == 1 and nobody.stdout == b""
    assert "no user has the handle nobody-like-that" in nobody.stderr.decode()

    # Handles are email local parts: two people can share one. The client will not guess.
    twins = await run_chatd("dm", "twin@one.example", env=env)
    assert twins.returncode == 1
    assert "several users have the handle twin" in twins.stderr.decode()

    near = await run_chatd("dm", "twi", env=env)
    assert near.returncode == 1
    assert "handles starting so: twin, twinkle" in near.stderr.decode()  # what it might have been

    no_one = await run_chatd("dm", "987654", env=env)
    assert no_one.returncode == 1 and "987654" in no_one.stderr.decode()


# -- chatd chat: edits, deletions, reactions


async def test_chat_shows_edits_deletions_and_reactions_as_they_happen(
    api: Api, nursery: trio.Nursery
) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    rid = room["id"]
    [first] = await say(api, ann, rid, "first words\nand a second line")
    message = f"/rooms/{rid}/messages/{first['id']}"
    async with chatting(nursery, rid, client_env(api.base_url, bob)) as chat:
        assert await chat.text_of_next_message() == "first words"
        assert await chat.out.next() == "    and a second line"
        await chat.err.until("Ctrl-D quits")

        await call(api, ann, "PATCH", message, 200, {"text": "better words"})
        line = await chat.out.next()
        assert line.startswith("[") and line.endswith(
            f'] user {ann.id} edited message {first["id"]} ("first words"): better words'
        ), line

        await call(api, bob, "PUT", f"{message}/reactions/👍", 200)
        line = await chat.out.next()
        expected = f'user {bob.id} reacted 👍 to message {first["id"]} ("better words") (1)'
        assert line.endswith(expected), line
        await call(api, bob, "DELETE", f"{message}/reactions/👍", 200)
        line = await chat.out.next()
        assert line.endswith(f"user {bob.id} took back 👍 on message {first['id']} "
                             '("better words") (0 left)'), line  # fmt: skip

        await call(api, ann, "DELETE", message, 204)
        line = await chat.out.next()
        assert line.endswith(f'user {ann.id} deleted message {first["id"]} ("better words")')

        await chat.stdin.aclose()
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 0


async def test_chat_notes_who_joins_and_what_changes(api: Api, nursery: trio.Nursery) -> None:
    ann, bob, cat = await api.signup(), await api.signup(), await api.signup()
    room = await api.create_room(ann, "lobby")
    rid = room["id"]
    await call(api, bob, "POST", f"/rooms/{rid}/join", 200)
    async with chatting(nursery, rid, client_env(api.base_url, bob)) as chat:
        await chat.err.until("Ctrl-D quits")
        await call(api, cat, "POST", f"/rooms/{rid}/join", 200)
        assert (await chat.err.until(f"user {cat.id}"))[-1] == f"-- user {cat.id} joined"
        await call(api, ann, "PUT", f"/rooms/{rid}/members/{bob.id}/role", 200, {"role": "admin"})
        assert (await chat.err.until(f"user {bob.id}"))[-1] == f"-- user {bob.id} is now an admin"
        await call(api, ann, "PATCH", f"/rooms/{rid}", 200, {"name": "hall"})
        changed = (await chat.err.until("room changed"))[-1]
        assert changed == f"-- room changed: name hall, visibility public, owner user {ann.id}"
        await call(api, cat, "POST", f"/rooms/{rid}/leave", 204)
        assert (await chat.err.until(f"user {cat.id}"))[-1] == f"-- user {cat.id} left"
        await chat.stdin.aclose()
        with trio.fail_after(STEP_TIMEOUT_S):
            assert await chat.process.wait() == 0


async def test_chat_history_shows_messages_as_they_are_now(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    rid = room["id"]
    kept, gone, _ = await say(api, ann, rid, "keep me", "drop me", "plain")
    await call(api, ann, "PATCH", f"/rooms/{rid}/messages/{kept['id']}", 200, {"text": "kept"})
    for who in (ann, bob):
        await call(api, who, "PUT", f"/rooms/{rid}/messages/{kept['id']}/reactions/🎉", 200)
    await call(api, bob, "PUT", f"/rooms/{rid}/messages/{kept['id']}/reactions/👀", 200)
    await call(api, ann, "DELETE", f"/rooms/{rid}/messages/{gone['id']}", 204)

    shown = lines(await run_chatd("chat", str(rid), env=client_env(api.base_url, bob)))
    texts = [line.split(f"] user {ann.id}: ", 1)[1] for line in shown]
    assert texts == ["kept (edited)  [🎉 2, 👀 1]", "(deleted)", "plain"]


# -- chatd search


async def test_search_prints_matches_newest_first_with_the_words_marked(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    ops = await api.create_room(ann, "ops")
    elsewhere = await api.create_room(bob, "elsewhere")
    finished, _, failed = await say(
        api, ann, ops["id"], "deploy finished on staging", "nothing here", "Deployment\tfailed"
    )
    [other] = await say(api, bob, elsewhere["id"], "deploy\nelsewhere too")
    env = client_env(api.base_url, ann)

    found = lines(await run_chatd("search", "deploy", env=env))
    assert found == [
        f"elsewhere (#{elsewhere['id']})\t{other['id']}\t{handle(bob)}\t[deploy] ↵ elsewhere too",
        f"ops (#{ops['id']})\t{failed['id']}\t{handle(ann)}\t[Deployment] failed",
        f"ops (#{ops['id']})\t{finished['id']}\t{handle(ann)}\t[deploy] finished on staging",
    ]

    in_ops = lines(await run_chatd("search", "FIN", "dep", "--room", str(ops["id"]), env=env))
    assert in_ops == [
        f"ops (#{ops['id']})\t{finished['id']}\t{handle(ann)}\t[deploy] [finished] on staging"
    ]

    limited = await run_chatd("search", "deploy", "--limit", "1", env=env)
    assert len(lines(limited)) == 1
    assert "more matches" in limited.stderr.decode()

    nothing = await run_chatd("search", "zebra", env=env)
    assert lines(nothing) == []
    assert "no message matches zebra" in nothing.stderr.decode()

    refused = await run_chatd("search", "...", env=env)
    assert refused.returncode == 1 and "validation_error" in refused.stderr.decode()


async def test_search_on_a_terminal_marks_matches_in_bold(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann, "ops")
    await say(api, ann, room["id"], "deploy finished")
    main, terminal = os.openpty()
    try:
        with trio.fail_after(STEP_TIMEOUT_S):
            done = await trio.run_process(
                [sys.executable, "-m", "chatd", "search", "deploy"],
                env={k: v for k, v in client_env(api.base_url, ann).items() if k != "NO_COLOR"},
                stdin=b"",
                stdout=terminal,
                capture_stderr=True,
                check=False,
            )
        assert done.returncode == 0, done.stderr
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
        if terminal >= 0:
            os.close(terminal)
    assert "\t\x1b[1mdeploy\x1b[0m finished" in shown.decode()


# -- chatd unread


async def test_unread_lists_rooms_and_dms_with_unread_messages_and_mentions(
    api: Api, nursery: trio.Nursery
) -> None:
    ann, bob = await api.signup(), await api.signup()
    lobby = await api.create_room(ann, "lobby")
    quiet = await api.create_room(ann, "quiet")
    for room in (lobby, quiet):
        await call(api, bob, "POST", f"/rooms/{room['id']}/join", 200)
    await say(api, ann, lobby["id"], "hello", f"@{handle(bob)} look at this")
    dm = await call(api, ann, "POST", "/dms", 201, {"user_id": bob.id})
    await say(api, ann, dm["id"], "psst")
    env = client_env(api.base_url, bob)

    assert lines(await run_chatd("unread", env=env)) == [
        f"{lobby['id']}\t2 unread\t1 mention\tlobby",
        f"{dm['id']}\t1 unread\t0 mentions\tDM with {handle(ann)}",
    ]
    # What `chatd chat` has shown counts as read.
    lines(await run_chatd("chat", str(lobby["id"]), env=env))
    assert lines(await run_chatd("unread", env=env)) == [
        f"{dm['id']}\t1 unread\t0 mentions\tDM with {handle(ann)}"
    ]
    [psst] = (await api.history(bob, dm["id"]))["items"]
    await call(api, bob, "POST", f"/rooms/{dm['id']}/read", 200, {"message_id": psst["id"]})
    assert lines(await run_chatd("unread", env=env)) == []  # all read: nothing
