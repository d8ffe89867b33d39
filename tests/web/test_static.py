"""`/` and `/assets/...`: the web client's files, their types, caching and headers."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from chatd import closecodes
from chatd.transport.web import CONTENT_SECURITY_POLICY
from tests.helpers import Api

WEB = resources.files("chatd") / "web"


async def test_the_page_is_served_at_the_root_with_a_content_security_policy(api: Api) -> None:
    reply = await api.http.get("/")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "connect-src 'self';" in CONTENT_SECURITY_POLICY  # sockets to this host only
    assert reply.headers["cache-control"] == "no-cache"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/assets/app.js"></script>' in reply.text


async def test_every_file_the_page_loads_is_served_with_its_type(api: Api) -> None:
    page = (await api.http.get("/")).text
    wanted = set(re.findall(r'(?:src|href)="/assets/([^"]+)"', page))
    # ES modules import each other by relative path.
    for script in WEB.iterdir():
        if script.name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    assert {"app.js", "api.js", "live.js", "close-codes.js", "style.css", "icon.svg"} <= wanted
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    served_only = {"close-codes.js": closecodes.as_javascript().encode()}
    for name in sorted(wanted):
        reply = await api.http.get(f"/assets/{name}")
        assert reply.status_code == 200, name
        assert reply.headers["content-type"].startswith(types[name.rsplit(".", 1)[1]]), name
        shipped = WEB / name
        expected = shipped.read_bytes() if shipped.is_file() else served_only[name]
        assert reply.content == expected
        assert "content-security-policy" not in reply.headers


async def test_an_unchanged_file_revalidates_with_a_304(api: Api) -> None:
    first = await api.http.get("/assets/app.js")
    etag = first.headers["etag"]
    again = await api.http.get("/assets/app.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    changed = await api.http.get("/assets/app.js", headers={"If-None-Match": '"stale"'})
    assert changed.status_code == 200 and changed.content == first.content
    head = await api.http.head("/assets/app.js")
    assert head.status_code == 200 and head.headers["etag"] == etag


@pytest.mark.parametrize(
    "path",
    [
        "/assets/nope.js",
        "/assets/",
        "/assets/../pyproject.toml",
        "/assets/%2e%2e/cli.py",
        "/assets/..%2f__init__.py",
        "/assets/web.py",
        "/assets/app.js/x",
    ],
)
async def test_unknown_files_are_404_in_the_json_error_format(api: Api, path: str) -> None:
    reply = await api.http.get(path)
    assert reply.status_code == 404, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"]["code"] == "not_found"


def test_message_text_never_goes_through_html_parsing() -> None:
    """Text may contain HTML: the client builds nodes and sets textContent only."""
    for script in WEB.iterdir():
        if script.name.endswith(".js"):
            source = script.read_text()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
                assert sink not in source, f"{script.name} uses {sink}"


async def test_the_web_client_reads_close_codes_from_the_server_s_one_table(api: Api) -> None:
    reply = await api.http.get("/assets/close-codes.js")
    assert reply.status_code == 200
    served = reply.text
    for entry in closecodes.TABLE:  # every code, with what a client must do after it
        assert f'{entry.code}: {{"name": "{entry.name}", "then": "{entry.then}"' in served
    assert 'from "./close-codes.js"' in (WEB / "live.js").read_text()
