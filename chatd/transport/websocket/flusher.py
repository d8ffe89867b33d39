"""The Flusher: one task that writes every connection's queued frames, coalesced.

A room offers a message to each member (a list append) and tells the
Flusher which connections went from idle to busy. The Flusher runs once
the rooms have yielded, so each connection's frames of that moment go out
in one non-blocking send: one syscall per connection per pass, whatever
the number of messages, and no task step per connection at all.
"""

from __future__ import annotations

import trio

from chatd.transport.websocket.connection import Connection


class Flusher:
    def __init__(self) -> None:
        self._due: list[Connection] = []
        self._parked: trio.lowlevel.Task | None = None

    def schedule(self, connection: Connection) -> None:
        """Never waits: the connection's frames are written on the Flusher's next pass."""
        self._due.append(connection)
        if self._parked is not None:
            task, self._parked = self._parked, None
            trio.lowlevel.reschedule(task)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if not self._due:
                await self._park()
            due, self._due = self._due, []
            for connection in due:
                connection.flush_nowait()

    async def _park(self) -> None:
        self._parked = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
