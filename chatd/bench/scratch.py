"""What a bench must not disturb: the real embedded database, and whatever else uses
the same Redis (another deployment, another bench, a developer's server)."""

from __future__ import annotations

import secrets
from dataclasses import replace
from pathlib import Path

import coredis

from chatd.config import DEFAULT_SQLITE_FILE, Settings

REDIS_TIMEOUT_S = 5.0


def scratch_settings(settings: Settings, scratch_dir: Path) -> Settings:
    if settings.sqlite_path is not None and settings.database_url.endswith(DEFAULT_SQLITE_FILE):
        # Never load-test the real embedded database: use a scratch one.
        settings = replace(settings, database_url=f"sqlite:///{scratch_dir / 'bench.db'}")
    if settings.redis_url:
        # Keys and channels of our own: room ids of another database would otherwise meet
        # ours on the same channels and in the recent-message cache.
        prefix = f"{settings.redis_prefix}bench-{secrets.token_hex(4)}:"
        settings = replace(settings, redis_prefix=prefix)
    return settings


async def forget_redis_keys(settings: Settings) -> int:
    """Delete what the bench's servers left in Redis (the recent-message cache lives
    for days otherwise); how many keys."""
    if not settings.redis_url:
        return 0
    client: coredis.Redis[str] = coredis.Redis.from_url(
        settings.redis_url, decode_responses=True, connect_timeout=REDIS_TIMEOUT_S
    )
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await client.delete(keys)
    return len(keys)
