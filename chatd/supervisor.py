"""`chatd serve --workers N`: one listening socket, N worker processes sharing it.

Each worker is a whole chatd instance (its own nursery tree, hub and bus
connection); the kernel spreads accepted connections across them. Workers
talk through Redis exactly like instances on different hosts, so one
machine uses all its cores with no sticky sessions.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from functools import partial

import trio

from chatd.config import Settings
from chatd.server import until_signalled

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX_S = 10.0
STOP_GRACE_S = 25.0  # below Kubernetes' default 30 s termination grace period


class WorkersNeedRedis(ValueError):
    pass


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def supervise(settings: Settings, workers: int) -> None:
    if not settings.redis_url:
        raise WorkersNeedRedis(
            "--workers needs CHATD_REDIS_URL: without Redis each worker would be a chat of its own"
        )
    sock = listening_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    # One secret for all: a token issued by one worker must be good at every other.
    env = dict(os.environ, CHATD_JWT_SECRET=settings.jwt_secret)
    log.info("chatd listening on http://%s:%s (%d workers)", host, port, workers)
    async with trio.open_nursery() as nursery:
        for index in range(workers):
            nursery.start_soon(_keep_running, index, sock.fileno(), env)
        await until_signalled()
        nursery.cancel_scope.cancel()
    sock.close()


async def _keep_running(index: int, fd: int, env: dict[str, str]) -> None:
    """Run worker `index`, restarting it (with backoff) if it dies."""
    failures = 0
    while True:
        started = trio.current_time()
        result = await trio.run_process(
            [sys.executable, "-m", "chatd", "serve", "--no-migrate", "--inherit-fd", str(fd)],
            pass_fds=(fd,),
            env=env,
            check=False,
            deliver_cancel=partial(_stop, index),
        )
        failures = 0 if trio.current_time() - started > 60 else failures + 1
        delay = min(RESTART_BACKOFF_MAX_S, 0.5 * 2**failures)
        log.warning(
            "worker %d exited with %s; restarting in %.1f s", index, result.returncode, delay
        )
        await trio.sleep(delay)


async def _stop(index: int, process: trio.Process) -> None:
    process.terminate()  # SIGTERM: the worker shuts down gracefully
    with trio.move_on_after(STOP_GRACE_S):
        await process.wait()
        return
    log.warning("worker %d did not stop within %s s; killing it", index, STOP_GRACE_S)
    process.kill()
