"""The web client end to end: real Chromium, real chatd, two people chatting.

These are sync tests on purpose: Playwright's API needs asyncio, the suite is
trio, so the server runs on its own trio loop in a thread (see conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatd.config import Settings
from tests.helpers import Api
from tests.web.conftest import BackgroundServer

try:
    from playwright.sync_api import Page, WebSocketRoute, expect
except ImportError:  # the browser fixture skips (or fails in CI) with the reason
    Page = WebSocketRoute = Any  # type: ignore[misc,assignment]

PASSWORD = "correct horse battery"
TIMEOUT_MS = 15_000
PHONE = {"width": 390, "height": 780}
DESKTOP = {"width": 1100, "height": 720}


def register(page: Page, base_url: str, email: str) -> None:
    page.goto(base_url + "/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Rooms")).to_be_visible()


def open_room(page: Page, name: str) -> None:
    page.get_by_role("button", name="Refresh list").click()
    page.get_by_role("link", name=name).click()
    expect(page.locator("#conn-status")).to_have_text("Live")


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def shown(page: Page) -> Any:
    return page.locator("#messages li .text")


def history(base_url: str, email: str, room_id: int) -> list[str]:
    """The room's stored texts, read over REST as a third party would."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        page = http.get(f"/api/v1/rooms/{room_id}/messages?limit=200", headers=headers).json()
    return [message["text"] for message in page["items"]]


def test_two_people_chat_live_survive_a_reload_and_a_network_blip(
    web_server: BackgroundServer, browser: Any, screenshots: Path
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    proxy = web_server.proxy
    assert proxy is not None
    # Ann's tab reaches chatd through a proxy the test can cut; Bob's goes straight there.
    ann = browser.new_context(viewport=DESKTOP).new_page()
    bob = browser.new_context(viewport=PHONE).new_page()
    errors: list[str] = []
    for page in (ann, bob):
        page.on("pageerror", lambda exc: errors.append(str(exc)))

    ann.goto(web_server.proxy_url + "/")
    expect(ann.get_by_role("button", name="Log in")).to_be_visible()
    ann.screenshot(path=screenshots / "login-desktop.png")
    register(ann, web_server.proxy_url, "ann@example.com")
    register(bob, web_server.url, "bob@example.com")
    bob.screenshot(path=screenshots / "rooms-phone.png")

    ann.get_by_label("Name").fill("lobby")
    ann.get_by_label("Who can join").select_option("public")
    ann.get_by_role("button", name="Create room").click()
    expect(ann.locator("#conn-status")).to_have_text("Live")
    room_id = int(ann.url.rsplit("/", 1)[1])
    open_room(bob, "lobby")

    # Presence and typing, as the server reports them. Ann is a member: Bob's tab knows
    # her handle from the member list. Bob reads the public room without joining it,
    # and there is no lookup by id: to Ann he is "user 2".
    expect(bob.locator("#presence")).to_contain_text("ann")
    expect(ann.locator("#presence")).to_contain_text("user 2")
    ann.get_by_label("Message", exact=True).press_sequentially("hi bob", delay=20)
    expect(bob.locator("#typing")).to_have_text("ann is typing…")
    # Live both ways; HTML in a message is text, not markup.
    ann.get_by_label("Message", exact=True).press("Enter")
    expect(shown(bob)).to_have_text(["hi bob"])
    send(bob, "<b>hi</b> ann & <script>x()</script>")
    expect(shown(ann)).to_have_text(["hi bob", "<b>hi</b> ann & <script>x()</script>"])
    expect(ann.locator("#messages b, #messages script")).to_have_count(0)
    expect(ann.locator("#room-error")).to_be_empty()
    expect(ann.locator("#messages li .sender")).to_have_text(["ann", "user 2"])
    ann.screenshot(path=screenshots / "room-desktop.png")
    bob.screenshot(path=screenshots / "room-phone.png")

    # A reload keeps the session (sessionStorage), the room (URL) and its history.
    ann.reload()
    expect(ann.locator("#conn-status")).to_have_text("Live")
    expect(shown(ann)).to_have_text(["hi bob", "<b>hi</b> ann & <script>x()</script>"])

    # A blip: Ann's send reaches the server but its echo is lost, then her
    # connection drops; Bob talks meanwhile and Ann types another message.
    web_server.call(proxy.drop_replies)
    send(ann, "sent as the network died")
    expect(shown(bob).last).to_have_text("sent as the network died")
    expect(ann.locator("#pending li")).to_have_count(1)
    web_server.call(proxy.cut)
    expect(ann.locator("#conn-status")).to_have_attribute("data-state", "waiting")
    missed = [f"while you were away {i}" for i in range(3)]
    for text in missed:
        send(bob, text)
    send(ann, "typed while offline")
    expect(ann.locator("#pending li")).to_have_count(2)
    expect(ann.locator("#pending li").last).to_contain_text("Waiting for the connection")
    ann.screenshot(path=screenshots / "offline-desktop.png")

    web_server.call(proxy.restore)  # the client's own backoff finds the way back
    everything = [
        "hi bob",
        "<b>hi</b> ann & <script>x()</script>",
        "sent as the network died",
        *missed,
        "typed while offline",
    ]
    expect(ann.locator("#conn-status")).to_have_text("Live", timeout=30_000)
    expect(shown(ann)).to_have_text(everything)
    expect(ann.locator("#pending li")).to_have_count(0)
    expect(shown(bob)).to_have_text(everything)
    assert history(web_server.url, "bob@example.com", room_id) == everything
    assert errors == []


def test_presence_and_typing_frames_show_when_a_server_sends_them(
    web_server: BackgroundServer, browser: Any, screenshots: Path
) -> None:
    """Frames injected by a WebSocket route in front of the server, whatever it sends."""
    expect.set_options(timeout=TIMEOUT_MS)
    page = browser.new_context(viewport=PHONE).new_page()
    routes: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # frames pass both ways unchanged
        routes.append(ws)

    page.route_web_socket("**/ws/rooms/*", through)
    register(page, web_server.url, "cat@example.com")
    page.get_by_label("Name").fill("quiet corner")
    page.get_by_label("Who can join").select_option("private")
    page.get_by_role("button", name="Create room").click()
    expect(page.locator("#conn-status")).to_have_text("Live")
    expect(page.locator("#room-visibility-badge")).to_have_text("private")
    assert len(routes) == 1

    def from_server(kind: str, payload: dict[str, Any]) -> None:
        routes[0].send(json.dumps({"type": kind, "payload": payload}))

    from_server("presence", {"user_id": 7, "status": "online"})
    from_server("presence", {"user_id": 9, "status": "online"})
    # (The server's own presence frames may add cat herself to the line.)
    presence = page.locator("#presence")
    expect(presence).to_contain_text("Online:")
    expect(presence).to_contain_text("user 7")
    expect(presence).to_contain_text("user 9")
    from_server("presence", {"user_id": 9, "status": "offline"})
    expect(presence).not_to_contain_text("user 9")
    expect(presence).to_contain_text("user 7")
    from_server("typing", {"user_id": 7})
    expect(page.locator("#typing")).to_have_text("user 7 is typing…")
    page.screenshot(path=screenshots / "presence-typing-phone.png")
    # A message from the typist ends the indicator.
    from_server(
        "message",
        {
            "id": 1,
            "room_id": 1,
            "user_id": 7,
            "text": "done typing",
            "created_at": "2026-01-02T03:04:05.000000Z",
        },
    )
    expect(shown(page)).to_have_text(["done typing"])
    expect(page.locator("#typing")).to_be_empty()
    # An older server answers "typing" with unknown_type: not worth showing. Others are.
    from_server("error", {"code": "unknown_type", "message": "unknown frame type 'typing'"})
    from_server("error", {"code": "store_unavailable", "message": "the database is away"})
    expect(page.locator("#room-error")).to_have_text("the database is away")


def test_older_history_loads_on_scroll_up(
    web_server: BackgroundServer, browser: Any, screenshots: Path
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    total = 120  # the page loads 50 at a time

    async def seed() -> int:
        api = Api(web_server.url)
        try:
            dan = await api.signup("dan@example.com")
            room = await api.create_room(dan, "archive")
            async with api.socket(dan, room["id"]) as ws:
                for i in range(total):
                    await ws.send(f"m{i}")
                await ws.messages(total)
            return int(room["id"])
        finally:
            await api.aclose()

    room_id = web_server.run(seed)
    page = browser.new_context(viewport=DESKTOP).new_page()
    register(page, web_server.url, "eve@example.com")
    page.goto(f"{web_server.url}/#/rooms/{room_id}")
    expect(page.locator("#conn-status")).to_have_text("Live")
    expect(shown(page)).to_have_count(50)
    expect(shown(page).first).to_have_text("m70")
    for count in (100, total):
        page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
        expect(shown(page)).to_have_count(count)
    expect(page.get_by_text("This is the start of the room.")).to_be_visible()
    expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
    expect(shown(page)).to_have_text([f"m{i}" for i in range(total)])
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    page.screenshot(path=screenshots / "history-start-desktop.png")


@pytest.fixture
def short_lived_tokens(web_settings: Settings) -> Settings:
    # The client refreshes a minute before expiry: here, every 2 s.
    return replace(web_settings, access_token_ttl_s=62)


def test_tokens_are_refreshed_before_they_expire(
    short_lived_tokens: Settings, browser: Any
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    with BackgroundServer(short_lived_tokens) as server:
        page = browser.new_context(viewport=DESKTOP).new_page()
        register(page, server.url, "fay@example.com")
        stored = "() => JSON.parse(sessionStorage.getItem('chatd.session')).refresh_token"
        tokens = [page.evaluate(stored)]
        while len(tokens) < 3:  # two refreshes in a row, each spending the previous token
            page.wait_for_function(f"t => ({stored})() !== t", arg=tokens[-1])
            tokens.append(page.evaluate(stored))
        assert len(set(tokens)) == 3
        # Still logged in, across a reload too: no refresh token was replayed. (The
        # reload comes right after a refresh: one cut off mid-flight would lose its
        # new pair, and the server revokes a login whose spent token comes back.)
        page.reload()
        expect(page.get_by_role("heading", name="Rooms")).to_be_visible()
        page.get_by_label("Name").fill("still here")
        page.get_by_role("button", name="Create room").click()
        expect(page.locator("#conn-status")).to_have_text("Live")
        send(page, "after two refreshes")
        expect(shown(page)).to_have_text(["after two refreshes"])


def test_sequenced_frames_apply_once_and_a_resume_starts_after_the_newest(
    web_server: BackgroundServer, browser: Any
) -> None:
    """Edits, deletions and reactions take ids like messages: a replayed id changes
    nothing, and the next connection asks for ?since= the newest id of any of them."""
    expect.set_options(timeout=TIMEOUT_MS)
    page = browser.new_context(viewport=DESKTOP).new_page()
    routes: list[WebSocketRoute] = []

    def through(ws: WebSocketRoute) -> None:
        ws.connect_to_server()
        routes.append(ws)

    page.route_web_socket("**/ws/rooms/*", through)
    register(page, web_server.url, "gil@example.com")
    page.get_by_label("Name").fill("replays")
    page.get_by_label("Who can join").select_option("private")
    page.get_by_role("button", name="Create room").click()
    expect(page.locator("#conn-status")).to_have_text("Live")
    assert len(routes) == 1 and "since=0" in routes[0].url

    def from_server(kind: str, **payload: Any) -> None:
        routes[-1].send(json.dumps({"type": kind, "payload": {"room_id": 1, **payload}}))

    at = "2026-01-02T03:04:05.000000Z"
    from_server("message", id=5, user_id=7, text="first", created_at=at)
    from_server("message", id=6, user_id=7, text="second", created_at=at)
    from_server("message_edited", id=7, user_id=7, message_id=5, text="first!", edited_at=at)
    from_server("reaction", id=8, user_id=7, message_id=5, emoji="👍", action="added", count=3)
    # Replays of ids already seen: dropped, whatever they say.
    from_server("message_edited", id=7, user_id=7, message_id=5, text="stale", edited_at=at)
    from_server("reaction", id=8, user_id=7, message_id=5, emoji="👍", action="added", count=9)
    from_server("message", id=6, user_id=7, text="second", created_at=at)
    from_server("message_deleted", id=9, user_id=7, message_id=6, deleted_at=at)
    first = page.locator('#messages li[data-id="5"]')
    expect(first.locator(".text")).to_have_text("first!")
    expect(first.locator(".edited")).to_have_text("(edited)")
    expect(first.locator(".chip")).to_have_text(["👍 3"])
    expect(page.locator('#messages li[data-id="6"] .text')).to_have_text("message deleted")
    expect(page.locator("#messages li")).to_have_count(2)
    # The viewer's own reaction frame sets `me`; someone else's keeps it.
    from_server("reaction", id=10, user_id=1, message_id=5, emoji="👍", action="added", count=4)
    expect(first.locator(".chip")).to_have_attribute("aria-pressed", "true")
    from_server("reaction", id=11, user_id=7, message_id=5, emoji="👍", action="removed", count=3)
    expect(first.locator(".chip")).to_have_text(["👍 3"])
    expect(first.locator(".chip")).to_have_attribute("aria-pressed", "true")

    # The connection drops: the next one resumes after id 11, the newest of any kind.
    with page.expect_websocket() as reconnected:
        routes[-1].close(code=1012, reason="restart")
    assert "since=11" in reconnected.value.url
    expect(page.locator("#conn-status")).to_have_text("Live")
    assert len(routes) == 2, [r.url for r in routes]
    assert "since=11" in routes[1].url
    # A replay on the new connection of what the old one delivered changes nothing.
    from_server("message_edited", id=7, user_id=7, message_id=5, text="stale", edited_at=at)
    from_server("message", id=12, user_id=7, text="after the resume", created_at=at)
    expect(page.locator("#messages li .text")).to_have_text(
        ["first!", "message deleted", "after the resume"]
    )
