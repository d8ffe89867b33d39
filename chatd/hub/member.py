"""One WebSocket connection as its room sees it: a user and a bounded outbox.

The outbox is a plain list of shared, already encoded frames. Offering a
frame never waits: it appends, and on the first frame after the outbox was
empty tells the member's outlet (the socket writer), which takes everything
queued at once. A full outbox is a slow consumer: the connection is asked to
close, and the client resumes with ?since=.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Protocol

import trio

from chatd.closecodes import SLOW_CONSUMER
from chatd.hub.frames import Outgoing
from chatd.model import RoomId, UserId

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class Outlet(Protocol):
    """Where a member's frames go: the connection's socket writer."""

    def ready(self, member: Member) -> None:
        """Frames were queued on a member whose outbox was empty."""

    def kicked(self, member: Member) -> None:
        """The member must close: `close_code` and `close_why` say why."""


class Member:
    # Slots: one of these lives as long as its connection, thousands at a time.
    __slots__ = (
        "_outlet",
        "close_code",
        "close_why",
        "conn_id",
        "connected_at",
        "outbox_size",
        "pending",
        "room_id",
        "signed_in_at",
        "user_id",
    )

    def __init__(
        self,
        room_id: RoomId,
        user_id: UserId,
        outbox_size: int,
        outlet: Outlet | None = None,
        signed_in_at: int = 0,
    ) -> None:
        self.conn_id = next(_ids)
        self.room_id = room_id
        self.user_id = user_id
        self.signed_in_at = signed_in_at  # when its access token was issued (epoch seconds)
        # For the admin API's list of connections: one float, the only per-connection
        # cost of it (the peer address is asked of the socket when a report is made).
        self.connected_at = time.time()
        self.outbox_size = outbox_size
        self.pending: list[Outgoing] = []  # queued, not yet taken by the outlet
        self._outlet: Outlet = outlet if outlet is not None else PullOutbox(self)
        # Set once, by whoever decides this connection must end.
        self.close_code: int | None = None
        self.close_why = ""

    @property
    def outbox(self) -> PullOutbox:
        """The frames as a channel to receive from, for a member without a socket."""
        assert isinstance(self._outlet, PullOutbox), "a socket's writer takes these frames"
        return self._outlet

    def offer(self, frame: Outgoing) -> bool:
        """Queue a frame without waiting; a full outbox ends the connection."""
        if self.close_code is not None:
            return False
        pending = self.pending
        if len(pending) >= self.outbox_size:
            log.info("room %s: closing connection %s (slow consumer)", self.room_id, self.conn_id)
            self.kick(SLOW_CONSUMER, "slow consumer")
            return False
        pending.append(frame)
        if len(pending) == 1:
            self._outlet.ready(self)
        return True

    def peer_address(self) -> str | None:
        """The connection's peer as host:port, asked of its socket (not kept: memory per
        connection); None without one. Behind a proxy, the proxy's address."""
        sock = getattr(self._outlet, "sock", None)
        try:
            host, port = sock.getpeername()[:2]  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            return None
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def kick(self, code: int, why: str) -> None:
        """Ask the connection to close: what was queued and not yet written is dropped."""
        if self.close_code is None:
            self.close_code = code
            self.close_why = why
            self._outlet.kicked(self)


class PullOutbox:
    """The outlet of a member that nothing writes for: its frames are received from here."""

    def __init__(self, member: Member) -> None:
        self._member = member
        self._changed = trio.Event()

    def ready(self, member: Member) -> None:
        self._changed.set()

    def kicked(self, member: Member) -> None:
        self._changed.set()

    def receive_nowait(self) -> Outgoing:
        """The oldest queued frame; EndOfChannel once closed and emptied."""
        member = self._member
        if member.pending:
            return member.pending.pop(0)
        if member.close_code is not None:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> Outgoing:
        while True:
            try:
                frame = self.receive_nowait()
            except trio.WouldBlock:
                self._changed = trio.Event()
                await self._changed.wait()
            else:
                await trio.lowlevel.checkpoint()
                return frame
