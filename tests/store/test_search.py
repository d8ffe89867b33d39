"""Message search in the store, on SQLite (FTS5) and PostgreSQL (full-text index)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from chatd.errors import ValidationFailed
from chatd.model import Appended, Draft, Message, MessageId, RoomId, UserId, iso
from chatd.search.query import parse_query
from chatd.store import Store
from chatd.store.search import search_sql

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def make_user(store: Store, name: str) -> UserId:
    return (await store.create_user(f"{name}@example.com", "$2b$hash")).id


async def make_room(store: Store, owner: UserId, visibility: str = "public") -> RoomId:
    return (await store.create_room(owner, "room", visibility, NOW)).id  # type: ignore[arg-type]


async def send(
    store: Store, room: RoomId, user: UserId, *texts: str, at: datetime = NOW
) -> list[Message]:
    outcomes = await store.append([Draft(room, user, text, None) for text in texts], at)
    assert all(isinstance(outcome, Appended) for outcome in outcomes), outcomes
    return [outcome.message for outcome in outcomes if isinstance(outcome, Appended)]


async def search(
    store: Store,
    user: UserId,
    q: str,
    room: RoomId | None = None,
    before: Message | None = None,
    limit: int = 50,
) -> list[str]:
    key = None if before is None else (iso(before.created_at), before.room_id, before.id)
    found = await store.search_messages(user, parse_query(q), room, key, limit)
    return [message.text for message in found]


async def test_finds_words_and_the_starts_of_words_in_any_case(store: Store) -> None:
    ann = await make_user(store, "ann")
    room = await make_room(store, ann)
    await send(store, room, ann, "Hello World", "help me", "a shell", "HELIUM balloons")
    assert sorted(await search(store, ann, "hel")) == ["HELIUM balloons", "Hello World", "help me"]
    assert await search(store, ann, "WORLD") == ["Hello World"]
    assert await search(store, ann, "world hello") == ["Hello World"]  # every word, any order
    assert await search(store, ann, "hello balloons") == []
    assert await search(store, ann, "orld") == []  # the start of a word, not its middle
    assert await search(store, ann, "ell") == []


async def test_punctuation_separates_words_the_same_on_both_databases(store: Store) -> None:
    ann = await make_user(store, "ann")
    room = await make_room(store, ann)
    await send(
        store,
        room,
        ann,
        "mail ann@example.com or read https://example.com/docs/setup-guide",
        "pi is 3.14, not_quite; don't",
        "Café au lait, naïve",
    )
    for q in ("example", "docs", "guide", "ann@example.com", "example.com/docs", "https"):
        assert len(await search(store, ann, q)) == 1, q
    for q in ("14", "3.14", "quite", "don't", "t"):
        assert await search(store, ann, q) == ["pi is 3.14, not_quite; don't"], q
    # Capitals outside ASCII only in the query: the test cluster's C locale lowercases
    # ASCII alone, so "CAFÉ" in a message needs a UTF-8 LC_CTYPE database to be found.
    for q in ("CAFÉ", "café", "naïve", "au"):
        assert await search(store, ann, q) == ["Café au lait, naïve"], q
    assert await search(store, ann, "cafe") == []  # accents are kept: not the same word


async def test_searches_readable_rooms_or_one_room(store: Store) -> None:
    ann, bob, eve = [await make_user(store, name) for name in ("ann", "bob", "eve")]
    lobby = await make_room(store, ann)
    annex = await make_room(store, bob)
    private = await make_room(store, bob, "private")
    await store.add_member(private, ann, NOW)
    secret = await make_room(store, bob, "private")
    dm, _, _ = await store.open_dm([bob, eve], NOW)
    await send(store, lobby, ann, "meeting in the lobby")
    await send(store, annex, bob, "meeting in the annex")
    await send(store, private, bob, "meeting in private")
    await send(store, secret, bob, "meeting in secret")
    await send(store, dm.id, eve, "meeting in a DM")

    assert sorted(await search(store, ann, "meeting")) == [
        "meeting in private",
        "meeting in the annex",
        "meeting in the lobby",
    ]
    assert sorted(await search(store, eve, "meeting")) == [
        "meeting in a DM",
        "meeting in the annex",
        "meeting in the lobby",
    ]
    assert len(await search(store, bob, "meeting")) == 5
    assert await search(store, ann, "meeting", room=annex) == ["meeting in the annex"]
    assert await search(store, bob, "meeting", room=dm.id) == ["meeting in a DM"]
    # The route refuses a room the user may not read; the store never shows it anyway.
    assert await search(store, ann, "meeting", room=secret) == []
    # Leaving a private room leaves its messages behind.
    await store.remove_member(private, ann)
    assert "meeting in private" not in await search(store, ann, "meeting")


async def test_newest_first_and_paging_never_repeats_or_skips(store: Store) -> None:
    ann = await make_user(store, "ann")
    rooms = [await make_room(store, ann) for _ in range(3)]
    sent: list[Message] = []
    for minute in range(4):
        # Several messages of several rooms in one batch share their created_at:
        # the key's room id and id order them.
        at = NOW + timedelta(minutes=minute)
        for room in rooms:
            sent += await send(
                store, room, ann, f"ping {minute} {room} a", f"ping {minute} b", at=at
            )
        await send(store, rooms[0], ann, "pong", at=at)
    newest_first = sorted(sent, key=lambda m: (m.created_at, m.room_id, m.id), reverse=True)

    seen: list[Message] = []
    last: Message | None = None
    while True:
        key = None if last is None else (iso(last.created_at), last.room_id, last.id)
        page = await store.search_messages(ann, ["ping"], None, key, 5)
        seen += page
        if len(page) < 5:
            break
        last = page[-1]
        # A message sent while someone pages is newer than their cursor: not on later pages.
        await send(store, rooms[1], ann, "ping late", at=NOW + timedelta(hours=1))
    assert [m.id for m in seen] == [m.id for m in newest_first]
    assert [(m.room_id, m.id) for m in seen] == [(m.room_id, m.id) for m in newest_first]

    in_one_room = await search(store, ann, "ping", room=rooms[2], limit=3)
    assert in_one_room == ["ping 3 b", f"ping 3 {rooms[2]} a", "ping 2 b"]


async def test_edits_and_deletions_change_what_is_found(store: Store, database_url: str) -> None:
    ann = await make_user(store, "ann")
    room = await make_room(store, ann)
    typo, gone, kept = await send(store, room, ann, "the quick brwn fox", "delete me", "keep me")
    await store.edit_message(room, typo.id, ann, "the quick brown fox", NOW)
    assert await search(store, ann, "brown") == ["the quick brown fox"]
    assert await search(store, ann, "brwn") == []
    # The edit event carries the new text too, but only the message is found.
    found = await store.search_messages(ann, ["quick"], None, None, 10)
    assert [(m.id, m.kind, m.edited_at) for m in found] == [(typo.id, "message", NOW)]

    await store.delete_message(room, gone.id, ann, False, NOW)
    assert await search(store, ann, "me") == ["keep me"]
    await store.react(room, kept.id, ann, "👍", True, NOW)  # changes the row, not its words
    assert await search(store, ann, "keep") == ["keep me"]
    assert_index_whole(database_url)

    await store.delete_room(room)
    assert await search(store, ann, "quick") == []
    assert_index_whole(database_url)


async def test_a_room_deleted_by_cascade_leaves_the_index_whole(sqlite_database: str) -> None:
    # SQLite only: PostgreSQL's index has no table of its own to fall out of step.
    path = sqlite_database.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("INSERT INTO users (email, email_key, password_hash) VALUES ('a', 'a', 'h')")
        conn.execute(
            "INSERT INTO rooms (name, visibility, owner_id, created_at)"
            " VALUES ('r', 'public', 1, 't')"
        )
        conn.executemany(
            "INSERT INTO messages (room_id, seq, user_id, text, created_at)"
            " VALUES (1, ?, 1, ?, 't')",
            [(seq, f"words {seq}") for seq in range(1, 101)],
        )
        conn.execute("DELETE FROM rooms")  # messages go by ON DELETE CASCADE
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert_index_whole(sqlite_database)


async def test_a_bad_cursor_time_is_refused(store: Store) -> None:
    ann = await make_user(store, "ann")
    for bad in ("yesterday", "2026-11-24T12:00:00", "9999-12-31T23:59:59-14:00"):
        with pytest.raises(ValidationFailed):
            await store.search_messages(ann, ["x"], None, (bad, 1, 1), 10)


async def test_the_search_uses_the_index(store: Store, database_url: str) -> None:
    ann = await make_user(store, "ann")
    room = await make_room(store, ann)
    await send(store, room, ann, *(f"message {n}" for n in range(200)))
    # Across every readable room, where a scan of the messages would cost the most.
    dialect = "postgres" if database_url.startswith("postgres") else "sqlite"
    sql = search_sql(dialect, in_room=False, paged=True)
    if dialect == "sqlite":
        params = ['"mess"*', ann, room, MessageId(5), 10]
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            plan = str(conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        assert "VIRTUAL TABLE INDEX" in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # newest first as FTS5 walks, no sort
    else:
        params = ["'mess':*", ann, NOW, room, MessageId(5), 10]
        with psycopg.connect(database_url) as conn:
            conn.execute("SET enable_seqscan = off")
            rows = conn.execute("EXPLAIN " + sql.replace("?", "%s"), params).fetchall()
        plan = "\n".join(row[0] for row in rows)
        assert "messages_search" in plan, plan


def assert_index_whole(database_url: str) -> None:
    """SQLite: the FTS5 index holds exactly the searchable messages (its content view)."""
    if not database_url.startswith("sqlite"):
        return
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "INSERT INTO message_search (message_search, rank) VALUES ('integrity-check', 1)"
        )
