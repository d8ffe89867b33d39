"""Conversations in the web client: DMs with unread badges, invitations, edits,
reactions, "seen by" and search, between two real browsers on a real chatd.

Everything synchronises on what the pages show (Playwright's expect, which
retries until its timeout): no sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.web.conftest import BackgroundServer
from tests.web.test_browser import DESKTOP, PASSWORD, PHONE, TIMEOUT_MS, register, send

try:
    from playwright.sync_api import Page, expect
except ImportError:  # the browser fixture skips (or fails in CI) with the reason
    Page = Any  # type: ignore[misc,assignment]


def rooms_of(base_url: str, email: str, kind: str) -> list[dict[str, Any]]:
    """GET /rooms?kind=&joined=true as that user sees it, over REST."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        login = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        reply = http.get(f"/api/v1/rooms?kind={kind}&joined=true", headers=headers)
        assert reply.status_code == 200, reply.text
    return reply.json()["items"]  # type: ignore[no-any-return]


def room_id_of(page: Page) -> int:
    return int(page.url.rsplit("/", 1)[1])


def in_room(page: Page, room_id: int) -> None:
    expect(page).to_have_url(re.compile(rf"#/rooms/{room_id}$"))
    live(page)


def live(page: Page) -> None:
    expect(page.locator("#conn-status")).to_have_text("Live")


def message(page: Page, text: str) -> Any:
    """The shown message whose text contains `text`."""
    return page.locator("#messages li.message").filter(has_text=text)


def pinned(page: Page, text: str) -> Any:
    """The message containing `text`, located by its id from then on (edits change the text)."""
    found = message(page, text)
    expect(found).to_have_count(1)
    return page.locator(f'#messages li[data-id="{found.get_attribute("data-id")}"]')


def back_to_list(page: Page) -> None:
    """On a phone the list and the room are one pane at a time."""
    page.locator("#back-link").click()
    expect(page.get_by_role("heading", name="Rooms")).to_be_visible()


def test_dm_invitation_edit_reaction_and_search_between_two_people(
    web_server: BackgroundServer, browser: Any, screenshots: Path
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    ann = browser.new_context(viewport=DESKTOP).new_page()
    bob = browser.new_context(viewport=PHONE).new_page()
    errors: list[str] = []
    for page in (ann, bob):
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    register(ann, web_server.url, "ann@example.com")
    register(bob, web_server.url, "bob@example.com")

    # -- Ann opens a DM with Bob, found by handle, and writes to him.
    ann.get_by_label("find a person by handle").fill("bo")
    ann.get_by_role("button", name="@bob").click()
    live(ann)
    expect(ann.locator("#room-title")).to_have_text("bob")
    expect(ann.locator("#room-visibility-badge")).to_have_text("direct")
    dm_id = room_id_of(ann)
    send(ann, "hi bob, got a minute?")
    expect(message(ann, "got a minute")).to_have_count(1)

    # -- Bob sees it in his DM list, named after Ann, with an unread badge.
    assert [(r["id"], r["unread"]) for r in rooms_of(web_server.url, "bob@example.com", "dm")] == [
        (dm_id, 1)
    ]
    bob.get_by_role("button", name="Refresh list").click()
    dm_link = bob.locator("#dm-list").get_by_role("link", name="ann")
    expect(dm_link.locator(".unread")).to_have_text("1")
    bob.screenshot(path=screenshots / "dm-unread-phone.png")

    # Opening it reads it: the badge clears, for the server too.
    dm_link.click()
    live(bob)
    expect(bob.locator("#room-title")).to_have_text("ann")
    expect(message(bob, "got a minute")).to_have_count(1)
    # Ann's tab learns live that Bob has seen her message.
    expect(message(ann, "got a minute").locator(".seen-by")).to_have_text("Seen by bob")
    back_to_list(bob)
    expect(dm_link).to_be_visible()
    expect(dm_link.locator(".unread")).to_have_count(0)
    [dm] = rooms_of(web_server.url, "bob@example.com", "dm")
    assert dm["unread"] == 0 and dm["mentions"] == 0
    assert dm["last_read_id"] >= 1

    # -- An invitation: Ann creates an invite-only room and invites Bob.
    ann.get_by_label("Name").fill("plans")
    ann.get_by_label("Who can join").select_option("invite")
    ann.get_by_role("button", name="Create room").click()
    live(ann)
    expect(ann.locator("#room-visibility-badge")).to_have_text("invite")
    plans_id = room_id_of(ann)
    ann.get_by_role("button", name="Invite", exact=True).click()
    ann.get_by_label("Invite by handle").fill("bob")
    ann.locator("#people-candidates").get_by_role("button", name="@bob").click()
    expect(ann.locator("#members-notice")).to_have_text("Invited bob.")
    expect(ann.locator("#member-list")).to_contain_text("owner")

    bob.get_by_role("button", name="Refresh list").click()
    invitations = bob.locator("#invites")
    expect(invitations).to_be_visible()
    expect(invitations.get_by_role("heading")).to_contain_text("Invitations")
    expect(invitations.locator(".invite")).to_contain_text("plans")
    bob.screenshot(path=screenshots / "invitation-phone.png")
    invitations.get_by_role("button", name="Accept the invitation to plans").click()
    in_room(bob, plans_id)
    expect(bob.locator("#room-title")).to_have_text("plans")
    expect(invitations).to_be_hidden()
    bob.get_by_role("button", name="Members").click()
    expect(bob.locator("#member-list li")).to_have_text(["ann owner", "bob member (you)"])
    bob.get_by_role("button", name="Members").click()

    # -- A message that mentions Bob, then Ann edits it: Bob sees both live.
    send(ann, "meet at 5 @bob")
    note = pinned(bob, "meet at")
    expect(note.locator(".text")).to_have_text("meet at 5 @bob")
    expect(note).to_have_class(re.compile(r"\bmentions-me\b"))
    expect(note.locator(".mention.me")).to_have_text("@bob")
    mine = pinned(ann, "meet at")
    mine.get_by_role("button", name="Edit").click()
    editor = mine.get_by_label("Edit message")
    editor.fill("meet at 6 @bob")
    editor.press("Enter")
    expect(mine.locator(".text")).to_have_text("meet at 6 @bob")
    expect(note.locator(".text")).to_have_text("meet at 6 @bob")
    expect(note.locator(".edited")).to_have_text("(edited)")

    # -- Reactions: Bob picks 👍, Ann adds hers by clicking the chip; both see the count.
    note.get_by_role("button", name="React", exact=True).click()
    note.get_by_role("button", name="React 👍").click()
    expect(note.locator(".chip")).to_have_text(["👍 1"])
    expect(note.locator(".chip")).to_have_attribute("aria-pressed", "true")
    expect(mine.locator(".chip")).to_have_text(["👍 1"])
    expect(mine.locator(".chip")).to_have_attribute("aria-pressed", "false")
    mine.locator(".chip").click()
    expect(mine.locator(".chip")).to_have_text(["👍 2"])
    expect(note.locator(".chip")).to_have_text(["👍 2"])
    # Bob takes his back.
    note.locator(".chip").click()
    expect(note.locator(".chip")).to_have_text(["👍 1"])
    expect(mine.locator(".chip")).to_have_text(["👍 1"])
    expect(mine.locator(".chip")).to_have_attribute("aria-pressed", "true")

    # -- A deletion leaves a tombstone on both sides.
    send(ann, "oops, wrong room")
    expect(message(bob, "oops")).to_have_count(1)
    oops = pinned(ann, "oops")
    oops.get_by_role("button", name="Delete", exact=True).click()
    oops.get_by_role("button", name="Yes, delete").click()
    expect(ann.locator("#messages li.deleted .text")).to_have_text(["message deleted"])
    expect(bob.locator("#messages li.deleted .text")).to_have_text(["message deleted"])
    ann.screenshot(path=screenshots / "conversation-desktop.png")
    bob.screenshot(path=screenshots / "conversation-phone.png")

    # -- Search finds the edited message; a result opens its room.
    back_to_list(bob)
    bob.get_by_label("Search messages").fill("meet")
    bob.get_by_role("button", name="Search", exact=True).click()
    # (On failure, the panel's text carries the server's error message.)
    expect(bob.locator("#search-results")).to_contain_text('1 found for "meet"')
    results = bob.locator("#search-list li")
    expect(results).to_have_count(1)
    expect(results.locator("mark")).to_have_text(["meet"])
    expect(results).to_contain_text("meet at 6 @bob")
    expect(results).to_contain_text("plans")
    bob.screenshot(path=screenshots / "search-phone.png")
    bob.get_by_label("Search messages").fill("nothing-like-this")
    bob.get_by_role("button", name="Search", exact=True).click()
    expect(bob.locator("#search-status")).to_contain_text("Nothing found")
    bob.get_by_label("Search messages").fill("meet")
    bob.get_by_role("button", name="Search", exact=True).click()
    results.first.get_by_role("button").click()
    in_room(bob, plans_id)
    expect(message(bob, "meet at 6")).to_have_count(1)

    assert errors == []
