"""bcrypt hashing, always in a worker thread: one hash costs ~0.25 s of CPU."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import trio

# bcrypt reads at most 72 bytes; pre-hashing lets every character count.
# Two hash threads at a time keep logins from starving the database threads.
_HASH_LIMITER = trio.CapacityLimiter(2)


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


async def hash_password(password: str, rounds: int) -> str:
    def work() -> str:
        return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode()

    return await trio.to_thread.run_sync(work, limiter=_HASH_LIMITER)


async def check_password(password: str, password_hash: str) -> bool:
    def work() -> bool:
        return bcrypt.checkpw(_prehash(password), password_hash.encode())

    return await trio.to_thread.run_sync(work, limiter=_HASH_LIMITER)
