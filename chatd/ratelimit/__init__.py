"""Rate limits: token buckets for rates, growing lockouts for failed logins.

Written here rather than taken from the `limits` package (PyPI, 5.8), which
was looked at first: its async in-memory storage is built on asyncio (locks,
ensure_future, to_thread) and does not run under Trio; its async Redis
storage wants coredis < 6 (chatd runs 6.9) and gathers with asyncio; its sync
storage expires keys from a timer thread and reads time.time(), which Trio's
test clock cannot move; a hit builds its key string, an allocation per
WebSocket frame; and it has no lockout that grows. What chatd needs is small:
GCRA (one number per key: when its bucket is full again) in process and as
a Redis script, and a lockout record per login key.

    local.py   Buckets (GCRA) and Lockouts, in process, on Trio's clock
    redis.py   the same rules as Lua scripts, shared by every instance
    limits.py  Limits: the REST and login limits, Redis first, in process as fallback
    sends.py   SendLimiter: the WebSocket send limit, checked in process per frame
    client.py  who is asking: the client's address (through trusted proxies)
"""

from chatd.errors import RateLimited
from chatd.ratelimit.limits import Limits

__all__ = ["Limits", "RateLimited"]
