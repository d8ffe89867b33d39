"""The client's subcommands of `chatd`: chat, send, rooms, register.

Where to connect and as whom comes from flags or, failing those, from
CHATD_URL, CHATD_EMAIL and CHATD_PASSWORD (read here, once). A missing
password is prompted for when there is a terminal to ask on.

Exit codes: 0 done, 1 the server refused or did not confirm, 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from chatd.client.api import DEFAULT_URL, ApiError, ChatApi
from chatd.client.terminal import chat, check_text, printable, send_one

COMMANDS = frozenset({"chat", "send", "rooms", "register"})
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """Something the user must supply or fix before anything is sent."""


@dataclass(frozen=True)
class Login:
    url: str
    email: str
    password: str


def add_client_commands(commands: Any) -> None:
    """Add the client's subcommands to `chatd`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"server URL (CHATD_URL; default {DEFAULT_URL})")
    common.add_argument("--email", help="account email (CHATD_EMAIL)")
    common.add_argument(
        "--password", help="account password (CHATD_PASSWORD; prompted for when unset)"
    )

    chat_cmd = commands.add_parser(
        "chat", parents=[common], help="join a room: print its messages, send each line typed"
    )
    chat_cmd.add_argument("room_id", type=int, metavar="ROOM_ID")
    chat_cmd.add_argument(
        "--history", type=int, default=20, help="recent messages shown first (default 20)"
    )

    send_cmd = commands.add_parser(
        "send", parents=[common], help="send one message; prints its id once the server has it"
    )
    send_cmd.add_argument("room_id", type=int, metavar="ROOM_ID")
    send_cmd.add_argument("text", metavar="TEXT", help='the message; "-" reads it from stdin')
    send_cmd.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for the server (default 15)"
    )

    rooms_cmd = commands.add_parser(
        "rooms", parents=[common], help="list the rooms you can see, or create one"
    )
    rooms_cmd.add_argument("--create", metavar="NAME", help="create a room; prints its id")
    rooms_cmd.add_argument("--private", action="store_true", help="with --create: members only")

    commands.add_parser("register", parents=[common], help="create an account")


def run_client_command(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    try:
        login = resolve_login(args, os.environ if env is None else env)
        if args.command == "send":
            args.text = sys.stdin.read().rstrip("\n") if args.text == "-" else args.text
            problem = check_text(args.text)
            if problem:
                raise UsageError(problem)
        return _run_until_interrupted(args, login)
    except UsageError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C at the password prompt
        return EXIT_INTERRUPTED


def _run_until_interrupted(args: argparse.Namespace, login: Login) -> int:
    try:
        return trio.run(_run_or_interrupted, args, login)
    except* KeyboardInterrupt:  # Ctrl-C before the watcher listened, or a second one
        pass
    return EXIT_INTERRUPTED


async def _run_or_interrupted(args: argparse.Namespace, login: Login) -> int:
    """_run(), or EXIT_INTERRUPTED once Ctrl-C has cancelled it.

    Ctrl-C cancels, rather than raising KeyboardInterrupt in whatever code the
    interpreter is running: trio-websocket, for one, holds a KeyboardInterrupt
    that lands while it is connecting until the server hangs up, and chat
    would run on. Cancellation is what every library is written to handle.
    """
    async with trio.open_nursery() as nursery:
        await nursery.start(_cancel_on_ctrl_c, nursery.cancel_scope)
        try:
            code = await _run(args, login)
        except ApiError as exc:  # here, before the nursery wraps it in a group
            print(f"chatd: {exc}", file=sys.stderr)
            code = EXIT_FAILED
        nursery.cancel_scope.cancel()  # the watcher
        return code
    return EXIT_INTERRUPTED


async def _cancel_on_ctrl_c(
    scope: trio.CancelScope, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Cancel scope at the first Ctrl-C (SIGINT).

    A process started with SIGINT ignored (a script's background job, nohup)
    keeps ignoring it, as Python does. Once the first has arrived, the
    receiver is closed: a second Ctrl-C during shutdown raises KeyboardInterrupt.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        task_status.started()
        return
    with trio.open_signal_receiver(signal.SIGINT) as ctrl_c:
        task_status.started()
        async for _ in ctrl_c:
            break
    scope.cancel()


def resolve_login(args: argparse.Namespace, env: Mapping[str, str]) -> Login:
    url = args.url or env.get("CHATD_URL") or DEFAULT_URL
    if "://" not in url:
        url = "http://" + url
    email = args.email or env.get("CHATD_EMAIL")
    if not email:
        raise UsageError("no account: pass --email or set CHATD_EMAIL")
    password = args.password or env.get("CHATD_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise UsageError("no password: pass --password or set CHATD_PASSWORD")
        password = getpass.getpass(f"Password for {email}: ")
    return Login(url, email, password)


async def _run(args: argparse.Namespace, login: Login) -> int:
    async with ChatApi(login.url) as api:
        if args.command == "register":
            user = await api.register(login.email, login.password)
            print(f"registered user {user['id']} ({user['email']})")
            return 0
        await api.login(login.email, login.password)
        if args.command == "rooms":
            return await _rooms(api, args)
        if args.command == "send":
            return await send_one(
                api, args.room_id, args.text, timeout_s=args.timeout, out=sys.stdout, err=sys.stderr
            )
        return await chat(
            api,
            args.room_id,
            history=max(0, args.history),
            stdin=sys.stdin,
            out=sys.stdout,
            err=sys.stderr,
        )


async def _rooms(api: ChatApi, args: argparse.Namespace) -> int:
    if args.create:
        room = await api.create_room(args.create, "private" if args.private else "public")
        print(room["id"])
        return 0
    for room in await api.rooms():
        print(f"{room['id']}\t{room['visibility']}\t{printable(room['name'])}")
    return 0
