"""The web client: `/` and `/assets/<path>`, served from files shipped in chatd/web.

There is no build step, so file names carry no content hash: every response
says `no-cache` and carries an ETag, and a browser revalidates with a cheap 304.
The files are read once, when the app is created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from quart import Blueprint, Response, request

from chatd import closecodes
from chatd.errors import NotFound
from chatd.service import Service

INDEX = "index.html"
CLOSE_CODES_MODULE = "close-codes.js"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
}
CACHE_CONTROL = "no-cache"  # revalidate every time; unchanged files cost a 304
CONTENT_SECURITY_POLICY = (
    # 'self' covers the page's own ws:/wss: origin (CSP level 3: Chromium, Firefox,
    # Safari 15.4+); a script injected somehow cannot open a socket to another host.
    "default-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(root: Traversable | None = None) -> dict[str, Asset]:
    """Every servable file under chatd/web, keyed by its path relative to it."""
    assets: dict[str, Asset] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix in CONTENT_TYPES:
                assets[prefix + entry.name] = _asset(entry.read_bytes(), suffix)

    walk(root or resources.files("chatd") / "web", "")
    # Not a file: the server's own close-code table, so the client cannot drift from it.
    assets[CLOSE_CODES_MODULE] = _asset(closecodes.as_javascript().encode(), ".js")
    return assets


def _asset(body: bytes, suffix: str) -> Asset:
    return Asset(body, CONTENT_TYPES[suffix], hashlib.sha256(body).hexdigest()[:32])


def web_routes(service: Service) -> Blueprint:
    bp = Blueprint("web", __name__)
    assets = load_assets()

    @bp.get("/")
    async def index() -> Response:
        return _respond(assets[INDEX])

    @bp.get("/assets/<path:path>")
    async def asset_file(path: str) -> Response:
        asset = assets.get(path)
        if asset is None:
            raise NotFound(f"/assets/{path} does not exist")
        return _respond(asset)

    return bp


def _respond(asset: Asset) -> Response:
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": f'"{asset.etag}"',
        "X-Content-Type-Options": "nosniff",
    }
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["Referrer-Policy"] = "no-referrer"
    if request.if_none_match.contains(asset.etag):
        return Response("", status=304, headers=headers)
    return Response(asset.body, status=200, headers=headers, content_type=asset.content_type)
