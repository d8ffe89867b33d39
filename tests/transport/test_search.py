"""GET /api/v1/search: what a user finds, where, page by page, and how it is marked."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from chatd.search.highlight import highlight
from chatd.search.query import parse_query
from tests.helpers import Account, Api
from tests.transport.test_rest_auth import assert_error


async def say(api: Api, who: Account, room_id: int, *texts: str) -> list[dict[str, Any]]:
    """Send over the room's socket; the echoes mean the messages are committed."""
    async with api.socket(who, room_id) as socket:
        for text in texts:
            await socket.send(text)
        return await socket.messages(len(texts))


async def search(api: Api, who: Account, **params: Any) -> dict[str, Any]:
    reply = await api.http.get("/api/v1/search", params=params, headers=who.headers)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def texts(api: Api, who: Account, **params: Any) -> list[str]:
    return [item["message"]["text"] for item in (await search(api, who, **params))["items"]]


def marked(item: dict[str, Any]) -> list[str]:
    return [piece["text"] for piece in item["highlight"] if piece["match"]]


async def test_finds_a_message_by_its_words_and_marks_them(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    hello, _ = await say(api, ann, room["id"], "Hello brave new World, hello!", "goodbye")
    page = await search(api, ann, q="WOR hel")
    assert page["next"] is None
    [item] = page["items"]
    assert item["message"] == hello
    assert item["highlight"] == [
        {"text": "Hello", "match": True},
        {"text": " brave new ", "match": False},
        {"text": "World", "match": True},
        {"text": ", ", "match": False},
        {"text": "hello", "match": True},
        {"text": "!", "match": False},
    ]
    assert await texts(api, ann, q="hello goodbye") == []  # every word must be there
    assert await texts(api, ann, q="orld") == []  # a word's start, not its middle


async def test_a_long_message_shows_a_window_around_the_first_match(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    text = "lorem ipsum " * 40 + "the needle is here " + "dolor sit amet " * 40
    await say(api, ann, room["id"], text)
    [item] = (await search(api, ann, q="needle"))["items"]
    assert item["message"]["text"] == text  # the whole message is there too
    shown = "".join(piece["text"] for piece in item["highlight"])
    assert shown.startswith("…") and shown.endswith("…")
    assert len(shown) <= 202 and "the needle is here" in shown
    assert marked(item) == ["needle"]


async def test_only_rooms_the_caller_may_read(api: Api) -> None:
    ann, bob, cid = await api.signup(), await api.signup(), await api.signup()
    lobby = await api.create_room(ann, "lobby")
    hideout = await api.create_room(bob, "hideout", "private")
    club = await api.create_room(bob, "club", "private")
    added = await api.http.put(f"/api/v1/rooms/{club['id']}/members/{ann.id}", headers=bob.headers)
    assert added.status_code in (200, 201, 204), added.text
    dm = await api.http.post("/api/v1/dms", json={"user_id": cid.id}, headers=bob.headers)
    assert dm.status_code == 201, dm.text
    await say(api, ann, lobby["id"], "plans for the lobby")
    await say(api, bob, hideout["id"], "plans for the hideout")
    await say(api, bob, club["id"], "plans for the club")
    await say(api, cid, dm.json()["id"], "plans for two")

    assert sorted(await texts(api, ann, q="plans")) == ["plans for the club", "plans for the lobby"]
    assert sorted(await texts(api, cid, q="plans")) == ["plans for the lobby", "plans for two"]
    assert len(await texts(api, bob, q="plans")) == 4
    assert await texts(api, ann, q="plans", room_id=club["id"]) == ["plans for the club"]

    for other in (hideout["id"], dm.json()["id"]):
        refused = await api.http.get(
            "/api/v1/search", params={"q": "plans", "room_id": other}, headers=ann.headers
        )
        assert_error(refused, 403)
    unknown = await api.http.get(
        "/api/v1/search", params={"q": "plans", "room_id": 999999}, headers=ann.headers
    )
    assert_error(unknown, 404)


async def test_pages_follow_next_newest_first_without_repeats_or_gaps(api: Api) -> None:
    ann = await api.signup()
    one, two = await api.create_room(ann, "one"), await api.create_room(ann, "two")
    sent = await say(api, ann, one["id"], *(f"step {n}" for n in range(7)))
    sent += await say(api, ann, two["id"], *(f"step {n}" for n in range(7, 12)))
    sent += await say(api, ann, one["id"], "unrelated")

    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"q": "step", "limit": 5}
    while True:
        page = await search(api, ann, **params)
        seen += [item["message"] for item in page["items"]]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
        # Sent while paging: newer than the cursor, so not on a later page.
        await say(api, ann, two["id"], "step late")
    assert [m["text"] for m in seen] == [f"step {n}" for n in reversed(range(12))]
    assert seen == list(reversed(sent[:12]))


async def test_edited_and_deleted_messages(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    typo, gone = await say(api, ann, room["id"], "meet at the statoin", "meet never")
    path = f"/api/v1/rooms/{room['id']}/messages"
    edited = await api.http.patch(
        f"{path}/{typo['id']}", json={"text": "meet at the station"}, headers=ann.headers
    )
    assert edited.status_code == 200, edited.text
    deleted = await api.http.delete(f"{path}/{gone['id']}", headers=ann.headers)
    assert deleted.status_code == 204, deleted.text

    [item] = (await search(api, ann, q="meet"))["items"]
    assert item["message"]["id"] == typo["id"]
    assert item["message"]["text"] == "meet at the station" and "edited_at" in item["message"]
    assert marked(item) == ["meet"]
    assert await texts(api, ann, q="station") == ["meet at the station"]
    assert await texts(api, ann, q="statoin") == []
    assert await texts(api, ann, q="never") == []


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "?!…"},
        {"q": "a b c d e f g h i"},
        {"q": "x" * 201},
        {"q": "ok", "limit": "0"},
        {"q": "ok", "limit": "51"},
        {"q": "ok", "limit": "ten"},
        {"q": "ok", "room_id": "lobby"},
        {"q": "ok", "cursor": "not-a-cursor"},
        {"q": "ok", "cursor": base64.urlsafe_b64encode(b'["when", 1, 1]').decode()},
        {"q": "ok", "cursor": base64.urlsafe_b64encode(b'{"room_id": 1}').decode()},
        {"q": "ok", "cursor": base64.urlsafe_b64encode(b'["2026-11-24T12:00Z", 0, 1]').decode()},
    ],
)
async def test_a_bad_query_is_422(api: Api, params: dict[str, str]) -> None:
    ann = await api.signup()
    reply = await api.http.get("/api/v1/search", params=params, headers=ann.headers)
    assert_error(reply, 422, "validation_error")


async def test_search_needs_a_token(api: Api) -> None:
    assert_error(await api.http.get("/api/v1/search", params={"q": "hello"}), 401)


# What a query means and how a hit is marked, without a server.


def test_terms_are_the_distinct_words_of_q_folded() -> None:
    assert parse_query("Hello, WORLD! hello") == ["hello", "world"]
    assert parse_query("ann@example.com") == ["ann", "example", "com"]
    assert parse_query("naïve CAFÉ 3.14") == ["naïve", "café", "3", "14"]


def test_highlight_marks_words_starting_with_a_term_in_any_case() -> None:
    pieces = highlight("Helpful shell: HELP!", ["help"])
    assert pieces == [
        {"text": "Helpful", "match": True},
        {"text": " shell: ", "match": False},
        {"text": "HELP", "match": True},
        {"text": "!", "match": False},
    ]
    assert highlight("nothing here", ["zzz"]) == [{"text": "nothing here", "match": False}]


def test_highlight_cuts_long_text_at_spaces() -> None:
    text = "word " * 30 + "target " + "tail " * 100
    pieces = highlight(text, ["target"])
    shown = "".join(piece["text"] for piece in pieces)
    assert shown.startswith("…word ") and shown.endswith("tail…")
    assert len(shown) <= 202
    assert [p["text"] for p in pieces if p["match"]] == ["target"]
    # A match near the start: no "…" before it.
    assert highlight("target " + "tail " * 100, ["tar"])[0] == {"text": "target", "match": True}
