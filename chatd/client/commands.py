"""The client's subcommands of `chatd`: chat, dm, send, rooms, search, unread,
notifications, register.

Where to connect and as whom comes from flags or, failing those, from
CHATD_URL, CHATD_EMAIL and CHATD_PASSWORD (read here, once). A missing
password is prompted for when there is a terminal to ask on.

Output meant for people is marked up (bold) only on a terminal, and not
when NO_COLOR is set.

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

from chatd.client import overview
from chatd.client.api import DEFAULT_URL, ApiError, ChatApi
from chatd.client.overview import Refused, find_user, room_line
from chatd.client.terminal import chat, check_text, send_one

COMMANDS = frozenset(
    {"chat", "dm", "send", "rooms", "search", "unread", "notifications", "register"}
)
SEARCH_LIMIT_MAX = 1000
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """Something the user must supply or fix before anything is sent."""


@dataclass(frozen=True)
class Login:
    url: str
    email: str
    password: str
    emphasis: bool  # bold on a terminal


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {raw}")
    return value


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
    history_help = "recent messages shown first (default 20)"
    chat_cmd.add_argument("--history", type=int, default=20, help=history_help)

    dm_cmd = commands.add_parser(
        "dm", parents=[common], help="open the DM with someone, then chat in it as `chat` does"
    )
    dm_cmd.add_argument("who", metavar="WHO", help="their email, handle (ann, @ann) or user id")
    dm_cmd.add_argument("--history", type=int, default=20, help=history_help)

    search_cmd = commands.add_parser(
        "search", parents=[common], help="find messages holding every word, newest first"
    )
    search_cmd.add_argument("query", nargs="+", metavar="WORD")
    search_cmd.add_argument("--room", type=int, metavar="ROOM_ID", help="only in this room")
    search_cmd.add_argument(
        "--limit", type=_positive, default=20, help="matches shown at most (default 20)"
    )

    commands.add_parser(
        "unread",
        parents=[common],
        help="your rooms and DMs with unread messages, and how many mention you",
    )

    notes_cmd = commands.add_parser(
        "notifications",
        parents=[common],
        help="your unread mentions and DMs missed while offline, newest first",
    )
    notes_cmd.add_argument("--all", action="store_true", help="read ones too")
    notes_cmd.add_argument("--read", action="store_true", help="then mark them read")

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
    kind = rooms_cmd.add_mutually_exclusive_group()
    kind.add_argument(
        "--private", action="store_true", help="with --create: members only, added by admins"
    )
    kind.add_argument(
        "--invite", action="store_true", help="with --create: members only, any member invites"
    )

    commands.add_parser("register", parents=[common], help="create an account")


def run_client_command(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    try:
        login = resolve_login(args, os.environ if env is None else env)
        if args.command == "send":
            args.text = sys.stdin.read().rstrip("\n") if args.text == "-" else args.text
            problem = check_text(args.text)
            if problem:
                raise UsageError(problem)
        if args.command == "search":
            args.query = " ".join(args.query).strip()
            if not args.query:
                raise UsageError("nothing to search for")
            if args.limit > SEARCH_LIMIT_MAX:
                raise UsageError(f"--limit is at most {SEARCH_LIMIT_MAX}")
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
        except (ApiError, Refused) as exc:  # here, before the nursery wraps it in a group
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
    emphasis = sys.stdout.isatty() and not env.get("NO_COLOR")
    return Login(url, email, password, emphasis)


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
        if args.command == "search":
            return await overview.search(
                api,
                args.query,
                room_id=args.room,
                limit=args.limit,
                out=sys.stdout,
                err=sys.stderr,
                emphasis=login.emphasis,
            )
        if args.command == "unread":
            return await overview.unread(api, out=sys.stdout)
        if args.command == "notifications":
            from chatd.client.notifications import notifications

            return await notifications(
                api, everything=args.all, mark_read=args.read, out=sys.stdout
            )
        if args.command == "dm":
            room_id = int((await api.open_dm(await find_user(api, args.who)))["id"])
        else:
            room_id = args.room_id
        return await chat(
            api,
            room_id,
            history=max(0, args.history),
            stdin=sys.stdin,
            out=sys.stdout,
            err=sys.stderr,
            emphasis=login.emphasis,
        )


async def _rooms(api: ChatApi, args: argparse.Namespace) -> int:
    if args.create:
        visibility = "private" if args.private else "invite" if args.invite else "public"
        room = await api.create_room(args.create, visibility)
        print(room["id"])
        return 0
    for room in await api.rooms(kind="room"):
        print(room_line(room))
    return 0
