"""serve(): the service and the HTTP server in one nursery tree."""

from __future__ import annotations

import logging
import signal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from chatd.config import Settings
from chatd.drain import HTTP_GRACE_S, drain
from chatd.service import open_service
from chatd.transport.app import create_app

log = logging.getLogger(__name__)

# Frames between max_frame_bytes and this get an error frame; past it the socket closes.
HARD_FRAME_LIMIT = 4 * 1024 * 1024


def hypercorn_config(settings: Settings, inherit_fd: int | None = None) -> Config:
    config = Config()
    # A worker of `serve --workers` accepts on the socket its supervisor opened.
    config.bind = [
        f"fd://{inherit_fd}" if inherit_fd is not None else f"{settings.host}:{settings.port}"
    ]
    config.websocket_max_message_size = max(HARD_FRAME_LIMIT, settings.max_frame_bytes * 2)
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = HTTP_GRACE_S  # after our own drain, for in-flight requests
    return config


async def until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("%s received: shutting down", signal.Signals(signum).name)
            return


async def serve(
    settings: Settings,
    *,
    shutdown_on_signal: bool = False,
    inherit_fd: int | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled (or signalled); started() with the base URL, e.g. port 0."""
    async with open_service(settings) as service, trio.open_nursery() as nursery:
        app = create_app(service)

        async def drain_on_signal() -> None:
            await until_signalled()
            await drain(service)  # then Hypercorn stops listening and finishes requests

        binds: list[str] = await nursery.start(
            lambda task_status: hypercorn_serve(
                app,
                hypercorn_config(settings, inherit_fd),
                shutdown_trigger=drain_on_signal if shutdown_on_signal else None,
                task_status=task_status,
            )
        )
        log.info("chatd listening on %s (database: %s)", binds[0], _dialect(settings))
        task_status.started(binds[0])


def _dialect(settings: Settings) -> str:
    return "sqlite" if settings.sqlite_path else "postgresql"
