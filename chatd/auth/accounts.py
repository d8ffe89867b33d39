"""Register, log in, refresh: the account rules, independent of HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chatd.auth.cutoffs import TokenCutoffs
from chatd.auth.passwords import check_password, hash_password
from chatd.auth.tokens import (
    TokenPair,
    access_token_claims,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    new_token_family,
)
from chatd.errors import TokenRevoked, Unauthorized, ValidationFailed, WrongPassword
from chatd.model import User, UserId
from chatd.store import Store

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
MAX_EMAIL_CHARS = 254
# Deliberately plain: one @, no spaces, a dotted domain. Deliverability is not our business.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[^@\s\x00-\x1f.]+(\.[^@\s\x00-\x1f.]+)+$")


def normalize_email(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("email is required")
    email = raw.strip()  # kept as typed; the store compares case-insensitively
    if len(email) > MAX_EMAIL_CHARS or not _EMAIL.match(email):
        raise ValidationFailed("email is not a valid address")
    return email


def validate_password(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValidationFailed("password is required")
    if len(raw) < MIN_PASSWORD_CHARS:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(raw) > MAX_PASSWORD_CHARS:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD_CHARS} characters")
    if "\x00" in raw:
        raise ValidationFailed("password must not contain NUL characters")
    return raw


@dataclass(frozen=True)
class TokenPolicy:
    secret: str
    access_ttl_s: int
    refresh_ttl_s: int
    bcrypt_rounds: int
    refresh_replay_grace_s: float = 10.0


class Accounts:
    def __init__(self, store: Store, policy: TokenPolicy) -> None:
        self._store = store
        self._policy = policy
        self._dummy_hash: str | None = None
        self.cutoffs = TokenCutoffs(store, policy.access_ttl_s)  # its run() polls the store

    def verify_access(self, token: str) -> UserId:
        """The user an access token names, unless it is invalid, expired or was issued
        before the user's last password change (Unauthorized). No I/O."""
        return self.verify_access_claims(token)[0]

    def verify_access_claims(self, token: str) -> tuple[UserId, int]:
        """verify_access(), and when the token was issued (epoch seconds)."""
        user_id, issued_at = access_token_claims(token, self._policy.secret)
        if not self.cutoffs.allows(user_id, issued_at):
            raise TokenRevoked("the access token was revoked by a password change; log in again")
        return user_id, issued_at

    async def register(self, email: object, password: object) -> User:
        address = normalize_email(email)
        secret = validate_password(password)
        password_hash = await hash_password(secret, self._policy.bcrypt_rounds)
        return await self._store.create_user(address, password_hash)

    async def login(self, email: object, password: object) -> TokenPair:
        if not isinstance(email, str) or not isinstance(password, str):
            raise ValidationFailed("email and password are required")
        found = await self._store.credentials(email)
        if found is None:
            # Spend the same time as a real check so timing does not reveal who exists.
            await check_password(password, await self._dummy())
            raise Unauthorized("wrong email or password")
        user, password_hash = found
        if not await check_password(password, password_hash):
            raise Unauthorized("wrong email or password")
        return await self._issue(user.id, new_token_family())

    async def refresh(self, refresh_token: object) -> TokenPair:
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ValidationFailed("refresh_token is required")
        spent = await self._store.use_refresh_token(
            hash_refresh_token(refresh_token),
            datetime.now(UTC),
            self._policy.refresh_replay_grace_s,
        )
        if spent is None:
            raise Unauthorized("the refresh token is not valid; log in again")
        user_id, family = spent
        return await self._issue(user_id, family)

    async def logout(self, refresh_token: object) -> None:
        """End the login the refresh token belongs to: it and every token rotated from
        it stop working. A token that was never issued is no error: the outcome a
        client wants (that token does not work) holds either way."""
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ValidationFailed("refresh_token is required")
        await self._store.revoke_refresh_family(hash_refresh_token(refresh_token))

    async def change_password(
        self, user: User, current_password: object, new_password: object
    ) -> TokenPair:
        """Set a new password; every session of the user ends (refresh tokens revoked,
        access tokens issued before now refused) and the caller gets a new one."""
        if not isinstance(current_password, str):
            raise ValidationFailed("current_password is required")
        secret = validate_password(new_password)
        found = await self._store.credentials(user.email)
        if found is None:
            raise Unauthorized("the access token names a user that no longer exists")
        if not await check_password(current_password, found[1]):
            raise WrongPassword("the current password is wrong")
        password_hash = await hash_password(secret, self._policy.bcrypt_rounds)
        now = datetime.now(UTC)
        await self._store.change_password(user.id, password_hash, now)
        self.cutoffs.cut(user.id, now)
        return await self._issue(user.id, new_token_family())

    async def _issue(self, user_id: UserId, family: str) -> TokenPair:
        now = datetime.now(UTC)
        policy = self._policy
        refresh = new_refresh_token()
        await self._store.add_refresh_token(
            user_id,
            hash_refresh_token(refresh),
            family,
            now + timedelta(seconds=policy.refresh_ttl_s),
        )
        access = issue_access_token(user_id, policy.secret, now, policy.access_ttl_s)
        return TokenPair(access, refresh, policy.access_ttl_s)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await hash_password(
                "not-a-real-password", self._policy.bcrypt_rounds
            )
        return self._dummy_hash
