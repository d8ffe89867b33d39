"""Child processes that cannot outlive the bench, and what /proc says about a process.

trio.run_process forks from a worker thread, so a child cannot ask the kernel to
signal it when its parent dies (PR_SET_PDEATHSIG follows the forking *thread*,
and trio's threads come and go). Here the fork happens on the main thread and a
few lines of Python in the child set the death signal, raise the file limit and
exec the real command: a bench killed with SIGKILL still leaves no chatd behind.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

STOP_GRACE_S = 25.0  # a chatd drains within CHATD_DRAIN_TIMEOUT_S (20 s)

# argv: python -c GUARD <parent pid> <args of the real command...>
_GUARD = """\
import ctypes, os, resource, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the parent died before the line above ran
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def raise_file_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard one (thousands of sockets); returns the new limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Child:
    """A process started by open_child(); stdin/stdout are trio streams when piped."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdin: trio.lowlevel.FdStream | None = None
        self.stdout: trio.lowlevel.FdStream | None = None
        if popen.stdin is not None:
            self.stdin = trio.lowlevel.FdStream(os.dup(popen.stdin.fileno()))
            popen.stdin.close()
        if popen.stdout is not None:
            self.stdout = trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))
            popen.stdout.close()
        self._pidfd = os.pidfd_open(popen.pid)

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    async def wait(self) -> int:
        if self._popen.poll() is None:
            await trio.lowlevel.wait_readable(self._pidfd)  # readable once it has exited
        return self._popen.wait()

    async def stop(self, grace_s: float) -> None:
        """SIGTERM, then SIGKILL if it is still there after grace_s."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace_s):
                await self.wait()
        if self._popen.poll() is None:
            self._popen.kill()
            await self.wait()

    async def aclose_pipes(self) -> None:
        for stream in (self.stdin, self.stdout):
            if stream is not None:
                await stream.aclose()
        os.close(self._pidfd)


@asynccontextmanager
async def open_child(
    args: Sequence[str],
    *,
    env: dict[str, str],
    stdin: bool = False,
    stdout: bool = False,
    merge_stderr: bool = False,
    grace_s: float = STOP_GRACE_S,
    cwd: Path | None = None,
) -> AsyncIterator[Child]:
    """Run `python args…` (in `cwd`); on exit from the block, stop it (SIGTERM, then SIGKILL)."""
    # Popen on this (the main) thread, not in trio's thread pool: see the module docstring.
    popen = subprocess.Popen(  # noqa: ASYNC220 - a fork and exec, a millisecond
        [sys.executable, "-c", _GUARD, str(os.getpid()), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout else None,
        stderr=subprocess.STDOUT if merge_stderr else None,
        # Out of the terminal's process group: Ctrl-C reaches the bench alone, which then
        # stops its children in order (clients first, then the server, which drains).
        start_new_session=True,
    )
    child = Child(popen)
    try:
        yield child
    finally:
        with trio.CancelScope(shield=True):
            await child.stop(grace_s)
            await child.aclose_pipes()


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds (user + system, all threads) and resident memory of some processes."""

    cpu_s: float
    rss_bytes: int
    at_s: float  # time.monotonic() of the sample


def descendants(pid: int) -> list[int]:
    """pid and every process below it (a `serve --workers` supervisor and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def usage(pids: Sequence[int], at_s: float) -> Usage:
    cpu_ticks = rss_pages = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/statm", "rb") as statm:
                rss_pages += int(statm.read().split()[1])
        except OSError:
            continue  # exited: its CPU time is no longer readable here
        cpu_ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return Usage(cpu_ticks / _TICKS_PER_S, rss_pages * _PAGE_BYTES, at_s)


def machine_cpu_s() -> float:
    """CPU seconds all cores have been busy since boot (anyone's work, not only ours)."""
    with open("/proc/stat", "rb") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / _TICKS_PER_S


def cpu_percent(before: Usage, after: Usage) -> float:
    """100 = one core busy for the whole interval."""
    wall = after.at_s - before.at_s
    return 100.0 * (after.cpu_s - before.cpu_s) / wall if wall > 0 else 0.0
