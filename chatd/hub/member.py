"""One WebSocket connection as its room sees it: a user and a bounded outbox."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import trio

from chatd.hub.frames import Outgoing
from chatd.model import RoomId, UserId

log = logging.getLogger(__name__)

SLOW_CONSUMER = 1013  # "try again later": resume with ?since=
SERVICE_RESTART = 1012  # this instance is going away: reconnect (elsewhere) with ?since=
ROOM_GONE = 4404
_ids = itertools.count(1)


class Member:
    def __init__(
        self,
        room_id: RoomId,
        user_id: UserId,
        outbox_size: int,
        on_slow: Callable[[], object] = lambda: None,
    ) -> None:
        self.conn_id = next(_ids)
        self._on_slow = on_slow
        self.room_id = room_id
        self.user_id = user_id
        self._outbox_send, self.outbox = trio.open_memory_channel[Outgoing](outbox_size)
        # Set once, by whoever decides this connection must end.
        self.close_code: int | None = None
        self.close_why = ""

    def offer(self, frame: Outgoing) -> bool:
        """Queue a frame without waiting; a full outbox ends the connection."""
        if self.close_code is not None:
            return False
        try:
            self._outbox_send.send_nowait(frame)
        except trio.WouldBlock:
            log.info("room %s: closing connection %s (slow consumer)", self.room_id, self.conn_id)
            self.kick(SLOW_CONSUMER, "slow consumer")
            self._on_slow()
            return False
        return True

    def kick(self, code: int, why: str) -> None:
        """Ask the connection to close: its writer stops after the frame in hand."""
        if self.close_code is None:
            self.close_code = code
            self.close_why = why
            self._outbox_send.close()
