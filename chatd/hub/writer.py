"""The writer task: persists drafts in batches, then publishes what it committed.

One transaction per batch, not per message. Publishing only after the
commit is what makes "seen by anyone" imply "in history, with its id".
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import trio

from chatd.bus.base import Bus
from chatd.errors import ChatdError, NotFound, ShuttingDown
from chatd.hub.frames import Outgoing, echo_frame, error_frame
from chatd.hub.member import Member
from chatd.metrics import Metrics
from chatd.model import Draft, RoomChange
from chatd.store import Store
from chatd.tracing import TRACE
from chatd.tracing.messages import CommitSpans

log = logging.getLogger(__name__)

Pending = tuple[Draft, Member]


class Writer:
    """`lanes` batch loops, each with its own queue and transaction; a room always goes
    to the same lane (room id modulo lanes), so its messages keep their order and two
    lanes never wait for each other's row locks. With PostgreSQL, two lanes commit two
    batches at once while the event loop prepares and publishes."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        metrics: Metrics,
        queue_size: int,
        batch_max: int,
        lanes: int = 1,
    ) -> None:
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self._batch_max = batch_max
        channels = [trio.open_memory_channel[Pending](queue_size) for _ in range(lanes)]
        self._sends = [send for send, _ in channels]
        self._recvs = [recv for _, recv in channels]
        self._finished = trio.Event()

    async def submit(self, draft: Draft, sender: Member) -> None:
        """Queue a draft; waits only while its lane is a full queue behind."""
        self._metrics.messages_received.inc()
        lane = self._sends[draft.room_id % len(self._sends)]
        try:
            try:
                # No task switch per message while there is room (a sender that
                # pipelines many messages per read is handled in one step).
                lane.send_nowait((draft, sender))
            except trio.WouldBlock:
                await lane.send((draft, sender))
        except trio.ClosedResourceError:
            raise ShuttingDown("the server is restarting; send again after reconnecting") from None

    async def flush(self) -> None:
        """Take no more drafts, and return once everything queued is committed."""
        for lane in self._sends:
            lane.close()
        await self._finished.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                for recv in self._recvs:
                    nursery.start_soon(self._write_batches, recv)
        finally:
            self._finished.set()

    async def _write_batches(self, recv: trio.MemoryReceiveChannel[Pending]) -> None:
        async for first in recv:
            batch = [first]
            # Whatever queued up while the last batch committed goes in this one.
            while len(batch) < self._batch_max:
                try:
                    batch.append(recv.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):  # flush() closed the queue
                    break
            await self._persist(batch)

    async def _persist(self, batch: list[Pending]) -> None:
        if TRACE.on:
            traced = CommitSpans([draft for draft, _ in batch])
            try:
                with traced.batch():
                    await self._persist_drafts(batch, traced.drafts, traced)
            finally:
                traced.end()
        else:
            await self._persist_drafts(batch, [draft for draft, _ in batch], None)

    async def _persist_drafts(
        self, batch: list[Pending], drafts: list[Draft], traced: CommitSpans | None
    ) -> None:
        started = trio.current_time()
        try:
            outcomes = await self._store.append(drafts, datetime.now(UTC))
        except ChatdError as exc:
            # Nothing was committed and nothing acknowledged: each sender is told to retry.
            for draft, sender in batch:
                sender.offer(_send_failed(exc, draft))
            if traced is not None:
                traced.failed(exc.code)
            return
        self._metrics.persist_batch_duration.observe(trio.current_time() - started)
        self._metrics.persist_batch_size.observe(len(batch))
        if traced is not None:
            outcomes = traced.outcomes(outcomes)  # messages carrying their traceparents
        fresh = 0
        for (draft, sender), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, NotFound):
                # The room is gone, and its sender's socket is still open: the deletion's
                # own event was lost (its instance died between commit and publish).
                # Saying it again is harmless, and closes every socket left in the room.
                sender.offer(_send_failed(outcome, draft))
                self._bus.publish_nowait(RoomChange(draft.room_id, "deleted"))
            elif isinstance(outcome, ChatdError):
                sender.offer(_send_failed(outcome, draft))
            elif outcome.fresh:
                fresh += 1
                self._bus.publish_nowait(outcome.message)
            else:
                sender.offer(echo_frame(outcome.message))  # idempotent resend: the original
        self._metrics.messages_persisted.inc(fresh)


def _send_failed(exc: ChatdError, draft: Draft) -> Outgoing:
    extra = {} if draft.client_id is None else {"client_id": draft.client_id}
    return error_frame(exc.code, exc.message, **extra)
