"""Access tokens are short-lived HS256 JWTs; refresh tokens are opaque and single-use."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from chatd.errors import Unauthorized
from chatd.model import UserId

ALGORITHM = "HS256"
ACCESS = "access"
# Instances' clocks differ a little, and exp is whole seconds.
LEEWAY_S = 10
VERIFIED_CACHE_SIZE = 16_384


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def to_json(self) -> dict[str, object]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


def issue_access_token(user_id: UserId, secret: str, now: datetime, ttl_s: int) -> str:
    claims = {
        "sub": str(user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
        "typ": ACCESS,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(token: str, secret: str) -> UserId:
    """The user the token names, or Unauthorized. Only HS256 is accepted."""
    return access_token_claims(token, secret)[0]


def access_token_claims(token: str, secret: str) -> tuple[UserId, int]:
    """(the user the token names, when it was issued), or Unauthorized."""
    user_id, expires_at, issued_at = _verified(token, secret)
    if time.time() > expires_at + LEEWAY_S:
        raise Unauthorized("the access token has expired; refresh it")
    return user_id, issued_at


@functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)
def _verified(token: str, secret: str) -> tuple[UserId, int, int]:
    """(user, exp, iat) of a token whose signature and claims check out.

    Remembered (a refusal raises, so it never is): a client reconnecting with
    the same token, or a burst of connects after a restart, is not verified
    again. Only the expiry depends on the time, and the caller checks it.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # pinned: alg=none and RS/ES confusion are refused
            options={"require": ["sub", "exp"]},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired; refresh it") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the access token is not valid") from None
    if claims.get("typ") != ACCESS:
        raise Unauthorized("the access token is not valid")
    try:
        # No iat (not one of ours, yet signed with our key): as old as can be.
        return UserId(int(claims["sub"])), int(claims["exp"]), int(claims.get("iat", 0))
    except (TypeError, ValueError):
        raise Unauthorized("the access token is not valid") from None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_token_family() -> str:
    return secrets.token_hex(16)


def hash_refresh_token(token: str) -> str:
    # The token is 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
