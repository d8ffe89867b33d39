"""serve(): the service and the HTTP server in one nursery tree."""

from __future__ import annotations

import logging
import os
import resource
import signal
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from hypercorn.config import Config

from chatd.config import Settings
from chatd.drain import HTTP_GRACE_S, drain
from chatd.memory import settle_collector
from chatd.service import INSTANCE_ID, open_service
from chatd.tracing.setup import tracing_for
from chatd.transport import frontdoor
from chatd.transport.app import create_app
from chatd.transport.roles import refuse_websocket
from chatd.transport.websocket.flusher import Flusher
from chatd.transport.ws import RoomSockets

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096


def hypercorn_config(settings: Settings, inherit_fd: int | None = None) -> Config:
    config = Config()
    # A worker of `serve --workers` accepts on the socket its supervisor opened.
    config.bind = [
        f"fd://{inherit_fd}" if inherit_fd is not None else f"{settings.host}:{settings.port}"
    ]
    # Hypercorn's default backlog is 100: a reconnect storm (every client of an instance
    # that went away) would see SYNs dropped and retried a second later. The kernel caps
    # this at net.core.somaxconn.
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = HTTP_GRACE_S  # after our own drain, for in-flight requests
    return config


def raise_open_files_limit() -> None:
    """Every socket is a file descriptor: take all the kernel allows this process.
    (A common default soft limit is 1,024, far below what one instance holds.)"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s received: shutting down", signal.Signals(signum).name)
            return


async def until_orphaned(parent_pid: int, period_s: float = 1.0) -> None:
    """Returns once this process's parent has died (it was re-parented).

    A `serve --workers N` worker must not outlive its supervisor, or it would keep
    serving the port unsupervised. Polled rather than PR_SET_PDEATHSIG: trio starts
    processes from worker threads, and that signal fires when the forking thread
    ends, not the process.
    """
    while os.getppid() == parent_pid:  # noqa: ASYNC110 (the kernel tells nobody: ask it)
        await trio.sleep(period_s)
    log.warning("the supervisor (pid %s) is gone: shutting down", parent_pid)


async def until_told_to_stop(supervisor_pid: int | None) -> None:
    """A signal, or for a worker of `serve --workers N` also its supervisor's death."""
    async with trio.open_nursery() as nursery:

        async def first_wins(wait: Callable[[], Awaitable[None]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(first_wins, until_signalled)
        if supervisor_pid is not None:
            nursery.start_soon(first_wins, partial(until_orphaned, supervisor_pid))


async def serve(
    settings: Settings,
    *,
    shutdown_on_signal: bool = False,
    inherit_fd: int | None = None,
    supervisor_pid: int | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled (or signalled); started() with the base URL, e.g. port 0."""
    raise_open_files_limit()
    async with (
        # Once per process (a second in-process server finds it on); flushed at the end.
        tracing_for(settings, settings.instance_id or INSTANCE_ID),
        open_service(settings) as service,
        trio.open_nursery() as nursery,
    ):
        app = create_app(service)
        flusher = Flusher()
        await nursery.start(flusher.run)

        async def drain_on_signal() -> None:
            await until_told_to_stop(supervisor_pid)
            await drain(service)  # then the server stops listening and finishes requests

        async def listen(task_status: trio.TaskStatus[list[str]]) -> None:
            await frontdoor.serve(
                app,
                hypercorn_config(settings, inherit_fd),
                # Another role's process answers WebSocket upgrades 404 (transport/roles.py).
                RoomSockets(service, flusher) if "ws" in settings.roles else refuse_websocket,
                shutdown_trigger=drain_on_signal if shutdown_on_signal else None,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()  # the server has shut down: so does the Flusher

        binds: list[str] = await nursery.start(listen)
        settle_collector()  # everything made so far lives as long as the process
        log.info(
            "chatd listening on %s (database: %s; roles: %s)",
            binds[0],
            _dialect(settings),
            ",".join(sorted(settings.roles)),
        )
        task_status.started(binds[0])


def _dialect(settings: Settings) -> str:
    return "sqlite" if settings.sqlite_path else "postgresql"
