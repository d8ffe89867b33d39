"""The opening handshake (RFC 6455 section 4.2): read the upgrade request, answer it.

Only what a WebSocket upgrade needs is parsed here. A head that is not a
well-formed upgrade is left to Hypercorn, which answers every other request.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION = "13"
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


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


def origin_allowed(request: Request, allowed_origins: str) -> bool:
    """Whether a page from the request's Origin may open this socket (CHATD_ALLOWED_ORIGINS).

    Browsers send Origin on every WebSocket handshake and let any page open one
    to any site (with the user's cookies, and ?token= where a page has one); only
    the server can refuse. Clients that are not browsers send none (chatd's
    terminal client, bench, tests): they are let in, since a header they could
    set to anything would prove nothing. The page's own site is always allowed:
    Origin's host and port equal Host's. "*" allows every origin; otherwise the
    setting lists more, comma-separated ("https://chat.example.com,https://x.example").
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    listed = allowed_origin_set(allowed_origins)
    scheme, host = _scheme_and_host(origin)
    if not host:  # "null" (a sandboxed frame, a file:// page) or garbage
        return listed is None
    if listed is None or f"{scheme}://{host}" in listed:
        return True
    # Host has no scheme: behind a TLS proxy, Origin https://chat.example comes with Host
    # chat.example. (A proxy that rewrites Host needs its public origin listed.)
    own = (request.headers.get("host") or "").strip().lower()
    return host == _without_default_port(own, scheme)


@functools.lru_cache(maxsize=4)
def allowed_origin_set(allowed_origins: str) -> frozenset[str] | None:
    """The origins listed, as scheme://host[:port] without a default port; None for "*"."""
    entries = {entry.strip() for entry in allowed_origins.split(",")} - {""}
    if "*" in entries:
        return None
    return frozenset("://".join(_scheme_and_host(entry)) for entry in entries)


def _scheme_and_host(origin: str) -> tuple[str, str]:
    """("https", "chat.example.com") from "https://Chat.example.com:443"; ("", "") if none."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:  # a malformed IPv6 literal, say
        return "", ""
    scheme = parts.scheme.lower()
    return scheme, _without_default_port(parts.netloc.lower(), scheme)


def _without_default_port(host: str, scheme: str) -> str:
    default = DEFAULT_PORTS.get(scheme)
    return host.removesuffix(default) if default else host


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
