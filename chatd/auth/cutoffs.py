"""Access tokens issued before a user's password change are refused.

Access tokens are checked without I/O (the signature, cached: tokens.py),
so the cut-offs are kept in process as {user: the second of the change}
and the check is one dict lookup. The instance that changed a password
knows at once; the others learn it from the store, which every instance
polls every POLL_S for changes younger than an access token's lifetime
(older ones no longer matter: every token issued before them has expired).

JWT issue times are whole seconds: a token issued in the same second as the
change, just before it, is still accepted until it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import trio

from chatd.auth.tokens import LEEWAY_S
from chatd.errors import StoreUnavailable
from chatd.model import UserId
from chatd.store import Store

log = logging.getLogger(__name__)

POLL_S = 2.0


Cut = Callable[[UserId, int], None]  # (user, second): sessions begun before it end


def _not_running(user_id: UserId, second: int) -> None:
    """Before run(): nothing holds sessions yet."""


class TokenCutoffs:
    def __init__(self, store: Store, access_ttl_s: int) -> None:
        self._store = store
        self._on_cut: Cut = _not_running
        # A cut-off matters while tokens issued before it may still be alive.
        self._memory = timedelta(seconds=access_ttl_s + 2 * LEEWAY_S)
        self._cutoffs: dict[UserId, int] = {}

    def allows(self, user_id: UserId, issued_at: int) -> bool:
        cutoff = self._cutoffs.get(user_id)
        return cutoff is None or issued_at >= cutoff

    def cut(self, user_id: UserId, at: datetime) -> None:
        """Tokens the user was issued before `at` are refused from now on."""
        second = int(at.timestamp())
        if second > self._cutoffs.get(user_id, 0):
            self._cutoffs[user_id] = second
            self._on_cut(user_id, second)

    async def run(
        self, on_cut: Cut, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll the store for other instances' cut-offs until cancelled; `on_cut` hears of
        every new one (open sockets signed in before it are closed)."""
        self._on_cut = on_cut
        task_status.started()  # a store that is away must not hold up the start
        while True:
            await self._poll()
            await trio.sleep(POLL_S)

    async def _poll(self) -> None:
        since = datetime.now(UTC) - self._memory
        try:
            found = await self._store.token_cutoffs(since)
        except StoreUnavailable:
            return  # logged by the store; the cut-offs known stay
        floor = int(since.timestamp())
        # Merged, never replaced: a change made here while the query ran stays known.
        cutoffs = {user: second for user, second in self._cutoffs.items() if second > floor}
        learned = []
        for user_id, at in found.items():
            second = int(at.timestamp())
            if second > cutoffs.get(user_id, 0):
                cutoffs[user_id] = second
                learned.append((user_id, second))
        self._cutoffs = cutoffs
        for user_id, second in learned:
            self._on_cut(user_id, second)
