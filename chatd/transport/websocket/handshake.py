"""The opening handshake (RFC 6455 section 4.2): read the upgrade request, answer it.

Only what a WebSocket upgrade needs is parsed here. A head that is not a
well-formed upgrade is left to Hypercorn, which answers every other request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import parse_qsl

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION = "13"


class Headers(dict[str, str]):
    """Header names are stored lower-cased and looked up in any case."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


class Request:
    """An HTTP/1.1 request head: header names lower-cased, the first value of each query key."""

    __slots__ = ("headers", "method", "path", "query")

    def __init__(self, method: str, path: str, query: dict[str, str], headers: Headers) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers


def parse_head(head: bytes) -> Request | None:
    """The request in `head` (up to and including its blank line), or None if unreadable."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1":
        return None
    method, target, _ = parts
    headers = Headers()
    for line in lines[1:]:
        if not line:
            break
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        name, value = name.lower(), value.strip()
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    path, _, raw_query = target.partition("?")
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query.setdefault(key, value)
    return Request(method, path, query, headers)


def is_upgrade(request: Request) -> bool:
    headers = request.headers
    tokens = (headers.get("connection") or "").split(",")
    connection = {token.strip().lower() for token in tokens}
    return (
        request.method == "GET"
        and (headers.get("upgrade") or "").lower() == "websocket"
        and "upgrade" in connection
    )


def problem(request: Request) -> tuple[int, str, dict[str, str]] | None:
    """Why this upgrade request cannot be accepted: (status, message, headers), or None."""
    if request.headers.get("sec-websocket-version") != VERSION:
        return 426, "only WebSocket version 13 is spoken here", {"Sec-WebSocket-Version": VERSION}
    try:
        key = base64.b64decode(request.headers.get("sec-websocket-key") or "", validate=True)
    except binascii.Error:
        key = b""
    if len(key) != 16:
        return 400, "Sec-WebSocket-Key must be 16 bytes in base64", {}
    return None


def offered_subprotocols(request: Request) -> set[str]:
    raw = request.headers.get("sec-websocket-protocol") or ""
    return {token.strip() for token in raw.split(",") if token.strip()}


def accept(request: Request, subprotocol: str | None, extra: dict[str, str]) -> bytes:
    """The 101 answer that completes the handshake."""
    key = request.headers["sec-websocket-key"].encode()
    digest = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {digest}",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    lines.extend(f"{name}: {value}" for name, value in extra.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def refuse(status: int, body: Mapping[str, object], extra: dict[str, str]) -> bytes:
    """A plain HTTP answer instead of the upgrade, with chatd's JSON error body."""
    payload = json.dumps(body, ensure_ascii=False).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ]
    lines.extend(f"{name}: {value}" for name, value in extra.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
