"""`chatd admin`: the command-line front end of the admin API.

`chatd admin create-user EMAIL` works on the database directly (CHATD_DATABASE_URL):
it makes the first administrator, or promotes an existing user, and so needs no
server. Every other command calls the admin API as an administrator, logged in the
way the client commands log in (--url, --email, --password or CHATD_URL,
CHATD_EMAIL, CHATD_PASSWORD; a missing password is prompted for).

A password is never taken on the command line for create-user: it is prompted for
(twice) on a terminal, or read from stdin with --password-stdin.

Only argparse is imported here at first: the rest when a command runs.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Mapping
from typing import Any

EXIT_FAILED, EXIT_USAGE = 1, 2


def add_admin_command(commands: Any) -> None:
    """Add `admin` and its subcommands to `chatd`'s subparsers."""
    admin = commands.add_parser("admin", help="administer a chatd service (see docs/admin.md)")
    actions = admin.add_subparsers(dest="admin_command", required=True)

    create = actions.add_parser(
        "create-user",
        help="make EMAIL an administrator, creating the account if need be (database only)",
    )
    create.add_argument("email", metavar="EMAIL")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a new account's password from stdin (else prompted for on a terminal)",
    )

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="server URL (CHATD_URL; default http://127.0.0.1:8080)")
    common.add_argument("--email", help="administrator's email (CHATD_EMAIL)")
    common.add_argument(
        "--password", help="administrator's password (CHATD_PASSWORD; prompted for when unset)"
    )

    actions.add_parser("instances", parents=[common], help="every instance's statistics")
    connections = actions.add_parser(
        "connections", parents=[common], help="live connections on every instance"
    )
    connections.add_argument("--room", type=int, metavar="ROOM_ID", help="only in this room")
    connections.add_argument("--user", metavar="USER", help="only this user's")
    disconnect = actions.add_parser(
        "disconnect", parents=[common], help="close every socket of USER, on every instance"
    )
    disconnect.add_argument("user", metavar="USER", help="email, handle or user id")
    disconnect.add_argument(
        "--revoke", action="store_true", help="also end their sessions: they must log in again"
    )
    for name, text in (
        ("close-room", "close a room: its sockets close, nobody joins or sends until reopened"),
        ("reopen-room", "reopen a closed room"),
        ("purge-room", "delete every message of a room (the room and its members stay)"),
    ):
        room = actions.add_parser(name, parents=[common], help=text)
        room.add_argument("room_id", type=int, metavar="ROOM_ID")
        if name == "purge-room":
            room.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    for name, text in (("grant", "make USER an administrator"), ("revoke", "make USER not one")):
        who = actions.add_parser(name, parents=[common], help=text)
        who.add_argument("user", metavar="USER", help="email, handle or user id")
    audit = actions.add_parser("audit", parents=[common], help="the audit log, newest first")
    audit.add_argument("--limit", type=int, default=50, help="entries shown (default 50)")


def run_admin_command(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    import os

    import trio

    from chatd.client.api import ApiError
    from chatd.client.commands import UsageError, resolve_login
    from chatd.client.overview import Refused

    environ = os.environ if env is None else env
    try:
        if args.admin_command == "create-user":
            return create_user(args.email, password_stdin=args.password_stdin)
        if args.admin_command == "purge-room" and not args.yes and not _confirmed(args.room_id):
            print("chatd: not purged", file=sys.stderr)
            return EXIT_USAGE
        if args.admin_command == "audit" and not 1 <= args.limit <= 1000:
            raise UsageError("--limit is between 1 and 1000")
        login = resolve_login(args, environ)
        return trio.run(_call_api, args, login.url, login.email, login.password)
    except UsageError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ApiError, Refused) as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _confirmed(room_id: int) -> bool:
    if not sys.stdin.isatty():
        print("chatd: purge-room deletes every message: pass --yes", file=sys.stderr)
        return False
    answer = input(f"Delete every message of room {room_id}? Type the room id to confirm: ")
    return answer.strip() == str(room_id)


# -- create-user: the database, no server ------------------------------------------


def create_user(email: str, *, password_stdin: bool) -> int:
    import getpass
    import logging

    import trio

    from chatd.auth.accounts import normalize_email, validate_password
    from chatd.config import ConfigError, Settings
    from chatd.errors import ChatdError
    from chatd.store.migrate import apply_migrations

    logging.getLogger("yoyo").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        address = normalize_email(email)
    except (ConfigError, ChatdError) as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    apply_migrations(settings.database_url)  # a first administrator on a new database

    def ask_password() -> str:
        if password_stdin:
            return sys.stdin.readline().rstrip("\r\n")
        if not sys.stdin.isatty():
            raise ValueError("no password: type it on a terminal or pass --password-stdin")
        first = getpass.getpass(f"New password for {address}: ")
        if getpass.getpass("Again: ") != first:
            raise ValueError("the passwords differ")
        return first

    async def run() -> int:
        from chatd.auth.passwords import hash_password
        from chatd.model import AuditEntry
        from chatd.store import open_store

        store = open_store(settings.database_url, pool_size=1)
        try:
            password_hash = None
            if await store.credentials(address) is None:
                try:
                    secret = validate_password(ask_password())
                except (ValueError, ChatdError) as exc:
                    print(f"chatd: {exc}", file=sys.stderr)
                    return EXIT_USAGE
                password_hash = await hash_password(secret, settings.bcrypt_rounds)
            audit = AuditEntry(
                actor_id=None,
                action="user.create_admin",
                target_type="user",
                target_id=None,
                detail={"via": "chatd admin create-user"},
                instance=f"cli@{socket.gethostname()}",
            )
            user, created = await store.make_admin(address, password_hash, audit)
        finally:
            await store.aclose()
        what = "created administrator" if created else "made administrator"
        print(f"{what} {user.id} ({user.email})")
        return 0

    return trio.run(run)


# -- everything else: the admin API ---------------------------------------------------


async def _call_api(args: argparse.Namespace, url: str, email: str, password: str) -> int:
    from chatd.admin.client import AdminApi
    from chatd.client.overview import find_user

    command = args.admin_command
    api = AdminApi(url)
    async with api:
        await api.login(email, password)
        if command == "instances":
            for report in await api.instances():
                print(instance_line(report))
        elif command == "connections":
            user_id = None if args.user is None else await find_user(api, args.user)
            found = await api.connections(room_id=args.room, user_id=user_id)
            for instance in found["instances"]:
                more = " (list truncated)" if instance["truncated"] else ""
                print(f"{instance['instance_id']}: {instance['connections']} connection(s){more}")
                for live in instance["items"]:
                    print(
                        f"  user {live['user_id']} room {live['room_id']}"
                        f" since {live['connected_at']} from {live['address'] or '?'}"
                    )
        elif command == "disconnect":
            user_id = await find_user(api, args.user)
            await api.disconnect(user_id, revoke_sessions=args.revoke)
            ended = "; their sessions are revoked" if args.revoke else ""
            print(f"disconnected user {user_id} everywhere{ended}")
        elif command in ("close-room", "reopen-room"):
            room = await api.room_action(args.room_id, command.removesuffix("-room"))
            done = "closed" if command == "close-room" else "reopened"
            print(f"{done} room {room['id']} ({room['name'] or room['kind']})")
        elif command == "purge-room":
            purged = await api.purge_room(args.room_id)
            print(
                f"purged room {purged['room_id']}: {purged['deleted_messages']} message(s)"
                f" deleted, up to id {purged['up_to']}"
            )
        elif command in ("grant", "revoke"):
            user_id = await find_user(api, args.user)
            result = await api.set_admin(user_id, command == "grant")
            state = "an administrator" if result["admin"] else "not an administrator"
            print(f"user {user_id} is {state}{'' if result['changed'] else ' (already)'}")
        else:  # audit
            for entry in await api.audit(limit=args.limit):
                print(audit_line(entry))
    return 0


def instance_line(report: dict[str, Any]) -> str:
    messages = report["messages"]
    lag = report["event_loop_lag_s"]
    lag_text = "?" if lag is None else f"{lag * 1000:.1f} ms"
    return (
        f"{report['instance_id']} [{','.join(report['roles'])}] pid {report['pid']}"
        f" v{report['version']}: {report['connections']} connection(s),"
        f" {report['rooms_active']} room(s), messages {messages['received']} received"
        f" / {messages['persisted']} persisted / {messages['delivered']} delivered,"
        f" loop lag {lag_text}, rss {report['rss_bytes'] / 2**20:.0f} MiB,"
        f" as of {report['age_s']:.1f} s ago"
    )


def audit_line(entry: dict[str, Any]) -> str:
    actor = "command line" if entry["actor_id"] is None else f"user {entry['actor_id']}"
    target = f"{entry['target_type']} {entry['target_id']}"
    detail = " ".join(f"{k}={v}" for k, v in entry["detail"].items())
    return f"{entry['id']} {entry['at']} {actor}: {entry['action']} {target} {detail}".rstrip()
