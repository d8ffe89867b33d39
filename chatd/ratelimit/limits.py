"""Limits: every rate limit of the service, shared through Redis when it is there.

REST and login limits are checked in Redis, one script call each (a login
already costs a bcrypt hash, a REST request a database query). If Redis is
not configured, not connected yet, slow or away, the same rules are counted
in this process instead: a request is never failed because Redis is. After
a fault the limits stay local for REDIS_RETRY_S before Redis is tried again,
so an outage costs one timeout per REDIS_RETRY_S, not one per request.
The WebSocket send limit is always checked in process (sends.py).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from chatd.bus.redis import FAULTS
from chatd.config import Settings
from chatd.errors import RateLimited
from chatd.metrics import Metrics
from chatd.model import UserId
from chatd.ratelimit import redis
from chatd.ratelimit.local import Buckets, LockoutRule, Lockouts, Rate
from chatd.ratelimit.sends import SendLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_TIMEOUT_S = 0.5  # slower than this, counting here is the better bet (as recent.py)
REDIS_RETRY_S = 5.0
# Names of the limits, as the chatd_rate_limit_refusals metric labels them.
REST_USER, REST_ADDRESS, REGISTER = "rest_user", "rest_address", "register_address"
LOGIN_ACCOUNT, LOGIN_ADDRESS, WS_SEND = "login_account", "login_address", "ws_send"
NAMES = (REST_USER, REST_ADDRESS, REGISTER, LOGIN_ACCOUNT, LOGIN_ADDRESS, WS_SEND)


def account_key(email: object) -> str | None:
    """The account a login names, whatever its case; hashed, so Redis holds no addresses."""
    if not isinstance(email, str) or not email.strip():
        return None
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]


def _nothing() -> dict[str, float]:
    return {}


def _wait_text(seconds: float) -> str:
    return f"try again in {max(1, math.ceil(seconds))} s"


class Limits:
    def __init__(
        self, settings: Settings, metrics: Metrics, redis_client: Callable[[], Any] | None = None
    ) -> None:
        self._redis_client = redis_client  # () -> the bus's coredis client, None until connected
        self._prefix = f"{settings.redis_prefix}limit:"
        self._redis_back_at = 0.0
        self._redis_away = False
        self._share_s = settings.ws_send_share_s
        counter = metrics.rate_limit_refusals
        self._refusals = {name: counter.labels(name) for name in NAMES}  # exported at 0
        self._rates = {
            REST_USER: Rate(settings.rest_user_per_s, settings.rest_user_burst),
            REST_ADDRESS: Rate(settings.rest_address_per_s, settings.rest_address_burst),
            REGISTER: Rate(settings.register_address_per_s, settings.register_address_burst),
        }
        self._buckets = {name: Buckets[str](rate) for name, rate in self._rates.items() if rate.on}
        window_s, first_s, max_s = (
            settings.login_failure_window_s,
            settings.login_lockout_s,
            settings.login_lockout_max_s,
        )
        self._rules = {
            LOGIN_ACCOUNT: LockoutRule(settings.login_account_failures, window_s, first_s, max_s),
            LOGIN_ADDRESS: LockoutRule(settings.login_address_failures, window_s, first_s, max_s),
        }
        self._lockouts = {name: Lockouts(rule) for name, rule in self._rules.items() if rule.on}
        self.sends = SendLimiter(
            Rate(settings.ws_send_per_s, settings.ws_send_burst),
            settings.ws_abuse_refusals,
            settings.ws_abuse_window_s,
            self._refusals[WS_SEND],
        )

    # -- REST ---------------------------------------------------------------

    async def request(self, user_id: UserId | None, address: str) -> None:
        """A REST request: counted per user when it carries a valid token, else per address."""
        if user_id is not None:
            await self._take(REST_USER, str(user_id), "too many requests")
        else:
            await self._take(REST_ADDRESS, address, "too many requests from your address")

    async def register(self, address: str) -> None:
        await self._take(REGISTER, address, "too many accounts registered from your address")

    # -- logins -------------------------------------------------------------

    async def login_allowed(self, address: str, email: object) -> None:
        """RateLimited while the address or the account is locked out (checked before the
        password, so a locked key costs no bcrypt hash)."""
        keys = [(LOGIN_ADDRESS, address)]
        if (account := account_key(email)) is not None:
            keys.append((LOGIN_ACCOUNT, account))
        keys = [(name, key) for name, key in keys if name in self._lockouts]
        if not keys:
            return
        redis_keys = [self._key(name, key) for name, key in keys]
        now = trio.current_time()
        locked_s = await self._shared(
            lambda client: redis.locked_for(client, redis_keys),
            lambda: max(self._lockouts[name].locked_for(key, now) for name, key in keys),
        )
        if locked_s > 0:
            name = keys[0][0] if len(keys) == 1 else LOGIN_ACCOUNT
            self._refusals[name].inc()
            raise RateLimited(f"too many failed logins; {_wait_text(locked_s)}", locked_s)

    async def login_failed(self, address: str, email: object) -> None:
        """Count a failed login (or a wrong current password); RateLimited if that
        locked the address or the account."""
        longest_s, locked_name = 0.0, LOGIN_ACCOUNT
        for name, key in ((LOGIN_ADDRESS, address), (LOGIN_ACCOUNT, account_key(email))):
            if key is not None and name in self._lockouts:
                locked_s = await self._failed(name, key)
                if locked_s > longest_s:
                    longest_s, locked_name = locked_s, name
        if longest_s > 0:
            self._refusals[locked_name].inc()
            log.info("login locked for %.0f s (%s)", longest_s, locked_name)
            raise RateLimited(f"too many failed logins; {_wait_text(longest_s)}", longest_s)

    async def login_succeeded(self, email: object) -> None:
        """The account's failures are forgiven (its address's are not: one attacker may
        own an account and try others between its own logins)."""
        account = account_key(email)
        if account is None or LOGIN_ACCOUNT not in self._lockouts:
            return
        redis_key = self._key(LOGIN_ACCOUNT, account)

        async def clear(client: Any) -> float:
            await redis.clear(client, redis_key)
            return 0.0

        def clear_here() -> float:
            self._lockouts[LOGIN_ACCOUNT].clear(account)
            return 0.0

        clear_here()  # also here: a record counted while Redis was away must not linger
        await self._shared(clear, clear_here)

    # -- WebSocket sends, shared --------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """With Redis: share the WebSocket send counts every ws_send_share_s, until cancelled."""
        sends = self.sends
        sends.sharing = self._redis_client is not None and self._share_s > 0
        task_status.started()
        if not sends.sharing:
            return
        prefix = self._key(WS_SEND, "")
        while True:
            await trio.sleep(self._share_s)
            spent = sends.sent_since_last()
            if not spent:
                continue
            by_key = {f"{prefix}{user_id}": seconds for user_id, seconds in spent.items()}
            aheads = await self._shared(functools.partial(redis.add_many, spent=by_key), _nothing)
            for user_id in spent:  # nothing when Redis is away: each instance counts alone
                if (ahead_s := aheads.get(f"{prefix}{user_id}")) is not None:
                    sends.adopt(user_id, ahead_s, slack_s=self._share_s)

    # -- plumbing -----------------------------------------------------------

    def _key(self, name: str, key: str) -> str:
        return f"{self._prefix}{name}:{key}"

    async def _take(self, name: str, key: str, what: str) -> None:
        buckets = self._buckets.get(name)
        if buckets is None:
            return
        rate, redis_key, now = self._rates[name], self._key(name, key), trio.current_time()
        wait_s = await self._shared(
            lambda client: redis.take(client, redis_key, rate), lambda: buckets.take(key, now)
        )
        if wait_s > 0:
            self._refusals[name].inc()
            raise RateLimited(f"{what}; {_wait_text(wait_s)}", wait_s)

    async def _failed(self, name: str, key: str) -> float:
        rule, lockouts, now = self._rules[name], self._lockouts[name], trio.current_time()
        redis_key = self._key(name, key)
        return await self._shared(
            lambda client: redis.failed(client, redis_key, rule), lambda: lockouts.failed(key, now)
        )

    async def _shared(self, in_redis: Callable[[Any], Awaitable[T]], here: Callable[[], T]) -> T:
        """in_redis(client) when Redis can answer, else here()."""
        client = None
        if self._redis_client is not None and trio.current_time() >= self._redis_back_at:
            client = self._redis_client()
        if client is not None:
            try:
                with trio.fail_after(REDIS_TIMEOUT_S):
                    result = await in_redis(client)
            except (*FAULTS, trio.TooSlowError) as exc:
                self._redis_back_at = trio.current_time() + REDIS_RETRY_S
                if not self._redis_away:
                    self._redis_away = True
                    log.warning("rate limits: Redis is away (%r); counting in this process", exc)
            else:
                if self._redis_away:
                    self._redis_away = False
                    log.info("rate limits: shared through Redis again")
                return result
        return here()
