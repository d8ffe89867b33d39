"""Request ids: one per HTTP request and per WebSocket connection, in every log line.

The id comes from the client's X-Request-Id when it sends one (cleaned up,
at most 64 characters), else it is made up here; REST answers and WebSocket
handshakes carry it back in X-Request-Id (transport/ws.py does the latter).
Each request and each connection is handled in a task of its own, so
setting the context variable here never reaches another one.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time

from quart import Quart, Response, g, request

from chatd.logs import request_id_var

log = logging.getLogger("chatd.access")

HEADER = "X-Request-Id"
MAX_REQUEST_ID_CHARS = 64
MAX_LOGGED_PATH_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/+=@-]")
# Scraped and probed every few seconds: their access lines only at DEBUG.
QUIET_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)


def clean_request_id(raw: str | None) -> str:
    """The client's id with anything odd taken out, or a new one."""
    cleaned = _UNSAFE.sub("", raw or "")[:MAX_REQUEST_ID_CHARS]
    return cleaned or new_request_id()


def new_request_id() -> str:
    """Unique across instances (a random prefix per process), cheap within one: no
    random bytes per request (uuid4 read the kernel's random source each time)."""
    return f"{_ID_PREFIX}{next(_id_counter):016x}"  # 32 hex digits, like a UUID's


def printable(path: str) -> str:
    # The path is the client's: keep it to one short line of text.
    return "".join(c if c.isprintable() else "?" for c in path[:MAX_LOGGED_PATH_CHARS])


def add_request_context(app: Quart) -> None:
    @app.before_request
    async def start_request() -> None:
        request_id_var.set(clean_request_id(request.headers.get(HEADER)))
        g.started_at = time.perf_counter()

    @app.after_request
    async def finish_request(response: Response) -> Response:
        request_id = request_id_var.get()
        if request_id is not None:
            response.headers[HEADER] = request_id
        started_at = g.get("started_at")
        elapsed_ms = (time.perf_counter() - started_at) * 1000 if started_at else None
        # Never the query string: it may hold a token.
        path = printable(request.path)
        log.log(
            logging.DEBUG if request.path in QUIET_PATHS else logging.INFO,
            "%s %s %s",
            request.method,
            path,
            response.status_code,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": None if elapsed_ms is None else round(elapsed_ms, 2),
            },
        )
        return response
