"""Access tokens: HS256 with a pinned algorithm, sub and exp required."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from chatd.auth.tokens import access_token_claims, issue_access_token, verify_access_token
from chatd.errors import Unauthorized
from chatd.model import UserId

SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret"
NOW = datetime.now(UTC)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_fresh_token_names_its_user() -> None:
    # Issued now, not at collection: a long run before this test outlives NOW's 60 s.
    token = issue_access_token(UserId(7), SECRET, datetime.now(UTC), 60)
    assert verify_access_token(token, SECRET) == 7
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "7" and claims["exp"] - claims["iat"] == 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_a_token_says_when_it_was_issued() -> None:
    # A password change refuses the tokens issued before it (auth/cutoffs.py).
    issued = datetime.now(UTC) - timedelta(seconds=30)
    token = issue_access_token(UserId(7), SECRET, issued, 900)
    assert access_token_claims(token, SECRET) == (7, int(issued.timestamp()))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            issue_access_token(UserId(7), SECRET, NOW - timedelta(hours=1), 60), id="expired"
        ),
        pytest.param(
            issue_access_token(UserId(7), "another-secret-of-enough-length", NOW, 60),
            id="wrong-key",
        ),
        pytest.param(
            b64({"alg": "none", "typ": "JWT"}) + "." + b64({"sub": "7", "exp": 2**40}) + ".",
            id="alg-none",
        ),
        pytest.param(
            jwt.encode({"sub": "7", "exp": 2**40, "typ": "access"}, SECRET, algorithm="HS512"),
            id="other-hmac-alg",
        ),
        pytest.param(
            jwt.encode({"sub": "7", "typ": "access"}, SECRET, algorithm="HS256"), id="no-exp"
        ),
        pytest.param(
            jwt.encode({"exp": 2**40, "typ": "access"}, SECRET, algorithm="HS256"), id="no-sub"
        ),
        pytest.param(
            jwt.encode({"sub": "7", "exp": 2**40, "typ": "refresh"}, SECRET, algorithm="HS256"),
            id="not-an-access-token",
        ),
        pytest.param("not.a.jwt", id="garbage"),
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(Unauthorized):
        verify_access_token(token, SECRET)


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = issue_access_token(UserId(7), SECRET, NOW, 60).split(".")
    forged = b64({"sub": "1", "exp": 2**40, "typ": "access"})
    with pytest.raises(Unauthorized):
        verify_access_token(f"{header}.{forged}.{signature}", SECRET)
