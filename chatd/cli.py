"""The `chatd` command: serve, migrate, bench; the client: chat, dm, send, rooms,
search, unread, register; and admin (chatd/admin/cli.py)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import replace

import trio

from chatd.admin.cli import add_admin_command, run_admin_command
from chatd.bench.options import add_bench_arguments
from chatd.client.commands import COMMANDS as CLIENT_COMMANDS
from chatd.client.commands import add_client_commands, run_client_command
from chatd.config import ConfigError, Settings
from chatd.events.tail import add_events_commands
from chatd.logs import setup_logging

# The server and the bench are imported only by the commands that run them: the
# client commands (`chatd chat`) start in a fraction of the time without them.

log = logging.getLogger("chatd")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatd", description="Real-time chat server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the server (migrates first)")
    serve_cmd.add_argument("--host", help="address to bind (CHATD_HOST)")
    serve_cmd.add_argument("--port", type=int, help="port to bind, 0 for any (CHATD_PORT)")
    serve_cmd.add_argument("--no-migrate", action="store_true", help="skip pending migrations")
    serve_cmd.add_argument(
        "--role",
        help='what to serve: "all" (default) or some of api,ws,notifications (CHATD_ROLE)',
    )
    serve_cmd.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (needs Redis)"
    )
    # Set by --workers: the listening socket to share, and who supervises this worker.
    serve_cmd.add_argument("--inherit-fd", type=int, help=argparse.SUPPRESS)
    serve_cmd.add_argument("--supervisor-pid", type=int, help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    bench_cmd = commands.add_parser(
        "bench", help="load-test a chatd started on loopback (uses CHATD_* settings; never :8080)"
    )
    add_bench_arguments(bench_cmd)
    add_client_commands(commands)
    add_admin_command(commands)
    add_events_commands(commands)
    args = parser.parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_client_command(args)
    if args.command == "admin":  # imports what it needs as it runs
        return run_admin_command(args)

    # CHATD_LOG_FORMAT, CHATD_LOG_LEVEL; a bench keeps stdout for its results (--json),
    # an events tail for the events
    setup_logging(stream=sys.stderr if args.command in ("bench", "events") else None)
    logging.getLogger("yoyo").setLevel(logging.WARNING)  # one line per SQL statement otherwise
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 2

    if args.command == "bench":
        from chatd.bench.run import bench_command

        return bench_command(settings, args)
    if args.command == "events":
        from chatd.events.tail import events_command

        return events_command(settings, args)

    from chatd.server import serve
    from chatd.store.migrate import apply_migrations
    from chatd.supervisor import WorkersNeedRedis, supervise

    if args.command == "migrate":
        applied = apply_migrations(settings.database_url)
        print(f"applied {len(applied)} migration(s)" if applied else "database is up to date")
        return 0

    if args.host:
        settings = replace(settings, host=args.host)
    if args.port is not None:
        settings = replace(settings, port=args.port)
    if args.role:
        try:
            settings = replace(settings, role=args.role)
        except ConfigError as exc:
            print(f"chatd: {exc}", file=sys.stderr)
            return 2
    if not args.no_migrate:
        apply_migrations(settings.database_url)
    with contextlib.suppress(KeyboardInterrupt):
        if args.workers > 1:
            try:
                trio.run(supervise, settings, args.workers)
            except WorkersNeedRedis as exc:
                print(f"chatd: {exc}", file=sys.stderr)
                return 2
        else:
            trio.run(
                lambda: serve(
                    settings,
                    shutdown_on_signal=True,
                    inherit_fd=args.inherit_fd,
                    supervisor_pid=args.supervisor_pid,
                )
            )
    return 0
