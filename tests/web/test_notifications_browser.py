"""Notifications in the web client: a mention waits in the panel with a badge, opens its
message, arrives live while the tab has a room open, and is marked read."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx

from tests.web.conftest import BackgroundServer
from tests.web.test_browser import DESKTOP, PASSWORD, TIMEOUT_MS, register, send

# Without Playwright the browser fixture skips (or fails in CI) with the reason.
with contextlib.suppress(ImportError):
    from playwright.sync_api import expect


def join_over_rest(base_url: str, email: str, room_id: int) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        reply = http.post(f"/api/v1/rooms/{room_id}/join", headers=headers)
        assert reply.status_code in (200, 201, 204), reply.text


def test_a_mention_waits_in_the_panel_opens_its_message_and_arrives_live(
    web_server: BackgroundServer, browser: Any, screenshots: Path
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    ann = browser.new_context(viewport=DESKTOP).new_page()
    bob = browser.new_context(viewport=DESKTOP).new_page()
    errors: list[str] = []
    for page in (ann, bob):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    register(ann, web_server.url, "ann@example.com")
    register(bob, web_server.url, "bob@example.com")
    # Nothing yet: no panel, no badge.
    expect(bob.locator("#notifications")).to_be_hidden()
    expect(bob.locator("#bell")).to_be_hidden()

    ann.get_by_label("Name").fill("standup")
    ann.get_by_role("button", name="Create room").click()
    expect(ann.locator("#conn-status")).to_have_text("Live")
    room_id = int(ann.url.rsplit("/", 1)[1])
    join_over_rest(web_server.url, "bob@example.com", room_id)
    send(ann, "@bob standup in five minutes")

    # Bob, on the list with no room open, sees it once the lists are fetched again.
    bob.get_by_role("button", name="Refresh list").click()
    panel = bob.locator("#notifications")
    expect(panel).to_be_visible()
    expect(bob.locator("#bell")).to_have_text("1 new")
    first = panel.locator("li.notification")
    expect(first).to_have_count(1)
    expect(first).to_contain_text("mentioned you in standup")
    expect(first).to_contain_text("@bob standup in five minutes")
    bob.screenshot(path=screenshots / "notifications-desktop.png")

    # Opening it shows the message in its room.
    first.get_by_role("button").click()
    expect(bob.locator("#conn-status")).to_have_text("Live")
    expect(bob.locator("#messages li.message").filter(has_text="five minutes")).to_have_count(1)

    # With a socket open, the next mention arrives without asking.
    send(ann, "@bob starting now")
    expect(bob.locator("#bell")).to_have_text("2 new")
    expect(panel.locator("li.notification").first).to_contain_text("@bob starting now")

    bob.get_by_role("button", name="Mark all read").click()
    expect(bob.locator("#bell")).to_be_hidden()
    expect(panel.locator("li.unread-note")).to_have_count(0)
    with httpx.Client(base_url=web_server.url, timeout=10) as http:
        login = http.post(
            "/api/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        reply = http.get("/api/v1/notifications/unread_count", headers=headers)
    assert reply.json() == {"unread_count": 0}
    assert errors == []
