"""Before any REST handler runs: revoked access tokens and the request rate limits.

Only /api/ counts: the web client's files and the probes are static and
cheap, and a load balancer probing /readyz must never be limited. A request
with a valid access token counts against its user, any other against its
client's address. Checking the token here costs nothing extra: verification
is cached (auth/tokens.py), so the handler's own check is a cache hit.
"""

from __future__ import annotations

from quart import Quart, request

from chatd.errors import TokenRevoked, Unauthorized
from chatd.model import UserId
from chatd.ratelimit.client import client_address
from chatd.service import Service
from chatd.tracing import TRACE, annotate
from chatd.transport.http import bearer_token

API = "/api/"
# These take no access token: a stale one sent along must not stop a login.
TOKENLESS = "/api/v1/auth/"


def add_admission(app: Quart, service: Service) -> None:
    accounts, limits, settings = service.accounts, service.limits, service.settings

    @app.before_request
    async def admit() -> None:
        path = request.path
        if not path.startswith(API):
            return
        user_id: UserId | None = None
        try:
            user_id = accounts.verify_access(bearer_token(request.headers, request.args))
        except TokenRevoked:
            if not path.startswith(TOKENLESS):
                raise
        except Unauthorized:
            pass  # the handler refuses it if it needs a user; here it only picks the limit
        if user_id is not None and TRACE.on:
            annotate({"user.id": user_id})
        forwarded_for = request.headers.get("X-Forwarded-For")
        address = client_address(forwarded_for, request.remote_addr, settings.trusted_proxy_hops)
        await limits.request(user_id, address)
