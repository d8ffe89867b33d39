"""`chatd serve --workers N`: one listening socket, N worker processes sharing it.

Each worker is a whole chatd instance (its own nursery tree, hub and bus
connection); the kernel spreads accepted connections across them. Workers
talk through Redis exactly like instances on different hosts, so one
machine uses all its cores with no sticky sessions.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
from functools import partial

import trio
from prometheus_client import multiprocess

from chatd.config import Settings
from chatd.metrics import MULTIPROC_ENV
from chatd.server import LISTEN_BACKLOG, until_signalled

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
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


async def supervise(settings: Settings, workers: int) -> None:
    if not settings.redis_url:
        raise WorkersNeedRedis(
            "--workers needs CHATD_REDIS_URL: without Redis each worker would be a chat of its own"
        )
    sock = listening_socket(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    metrics_dir = tempfile.mkdtemp(prefix="chatd-metrics-")
    env = dict(
        os.environ,
        # One secret for all: a token issued by one worker must be good at every other.
        CHATD_JWT_SECRET=settings.jwt_secret,
        # `serve --role` reaches the workers too.
        CHATD_ROLE=settings.role,
        # Each worker's metrics go to files here; /metrics on any worker sums them.
        **{MULTIPROC_ENV: metrics_dir},
    )
    log.info("chatd listening on http://%s:%s (%d workers)", host, port, workers)
    try:
        async with trio.open_nursery() as nursery:
            for index in range(workers):
                nursery.start_soon(_keep_running, index, sock.fileno(), env, metrics_dir)
            await until_signalled()
            nursery.cancel_scope.cancel()
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


async def _keep_running(index: int, fd: int, env: dict[str, str], metrics_dir: str) -> None:
    """Run worker `index`, restarting it (with backoff) if it dies."""
    failures = 0
    command = [sys.executable, "-m", "chatd", "serve", "--no-migrate", "--inherit-fd", str(fd)]
    command += ["--supervisor-pid", str(os.getpid())]  # the worker stops if we die
    while True:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    command,
                    pass_fds=(fd,),
                    env=env,
                    check=False,
                    deliver_cancel=partial(_stop, index),
                )
            )
        # Its live gauges (connections, rooms) must stop counting in the sum.
        multiprocess.mark_process_dead(process.pid, metrics_dir)  # type: ignore[no-untyped-call]
        failures = 0 if trio.current_time() - started > 60 else failures + 1
        delay = min(RESTART_BACKOFF_MAX_S, 0.5 * 2**failures)
        log.warning(
            "worker %d exited with %s; restarting in %.1f s", index, process.returncode, delay
        )
        await trio.sleep(delay)


async def _stop(index: int, process: trio.Process) -> None:
    process.terminate()  # SIGTERM: the worker shuts down gracefully
    with trio.move_on_after(STOP_GRACE_S):
        await process.wait()
        return
    log.warning("worker %d did not stop within %s s; killing it", index, STOP_GRACE_S)
    process.kill()
