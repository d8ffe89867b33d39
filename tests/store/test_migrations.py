"""Upgrading a database that holds data: the schema as it was before conversations (up to
0003_sessions), filled the way that version filled it, then chatd's own migrations on top.
Everything is still there, with its ids, and the new features work on the old data."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio
import yoyo

from chatd.auth.passwords import hash_password
from chatd.auth.tokens import hash_refresh_token
from chatd.model import Membership, iso
from chatd.store import open_store
from chatd.store.migrate import apply_migrations, schema_dir, yoyo_url
from tests.conftest import settings_for, start_server
from tests.helpers import PASSWORD, Account, Api

LAST_OLD_MIGRATION = "0003_sessions"
BEFORE = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)  # when the old data was written
OLD_REFRESH_TOKEN = "a-refresh-token-issued-before-the-upgrade"
THUMBS_UP = "\N{THUMBS UP SIGN}"
_names = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    pg = request.getfixturevalue("pg")
    name = f"chatd_upgrade_{os.getpid()}_{next(_names)}"
    pg.create_database(name)
    try:
        yield pg.url(name)
    finally:
        pg.drop_database(name)


def migrate_up_to(database_url: str, last: str) -> list[str]:
    """Apply the shipped migrations up to and including `last`, as yoyo would have then."""
    url, dialect = yoyo_url(database_url)
    backend = yoyo.get_backend(url)
    try:
        migrations = yoyo.read_migrations(str(schema_dir(dialect)))
        ids = [m.id for m in migrations]
        wanted = set(ids[: ids.index(last) + 1])
        old = migrations.filter(lambda m: m.id in wanted)
        with backend.lock():
            backend.apply_migrations(backend.to_apply(old))
    finally:
        backend.connection.close()
    return sorted(wanted)


class RawDatabase:
    """Plain SQL on the database, with `?` placeholders: what the old version wrote."""

    def __init__(self, database_url: str) -> None:
        self._sqlite = database_url.startswith("sqlite:///")
        self._conn: Any
        if self._sqlite:
            self._conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        else:
            self._conn = psycopg.connect(database_url, autocommit=True)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._sqlite:
            params = [p.isoformat() if isinstance(p, datetime) else p for p in params]
            rows = self._conn.execute(sql, params).fetchall()
            self._conn.commit()
        else:
            rows = self._conn.execute(sql.replace("?", "%s"), params).fetchall()
        return [tuple(row) for row in rows]

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._sqlite:
            params = [p.isoformat() if isinstance(p, datetime) else p for p in params]
            self._conn.execute(sql, params)
            self._conn.commit()
        else:
            self._conn.execute(sql.replace("?", "%s"), params)

    def close(self) -> None:
        self._conn.close()


@dataclass
class OldData:
    users: dict[str, int]  # handle → id
    lobby: int  # public, owner ann, members ann and bob
    secret: int  # private, owner ann, members ann and cat
    deleted: int  # the third room, deleted before the upgrade
    # room id → [(seq, author handle, text, client_id)]
    messages: dict[int, list[tuple[int, str, str, str | None]]]


async def fill_old_schema(db: RawDatabase) -> OldData:
    """Users, rooms with members and messages, a refresh token: rows as the version
    before conversations wrote them (ids from the database, seqs from rooms.last_seq)."""
    password_hash = await hash_password(PASSWORD, 4)
    users = {}
    for handle in ("ann", "bob", "cat"):
        email = f"{handle}@example.com"
        [(user_id,)] = db.all(
            "INSERT INTO users (email, email_key, password_hash) VALUES (?, ?, ?) RETURNING id",
            (email, email, password_hash),
        )
        users[handle] = user_id

    messages: dict[int, list[tuple[int, str, str, str | None]]] = {}

    def room(name: str, visibility: str, owner: str, members: list[str], texts: list[Any]) -> int:
        [(room_id,)] = db.all(
            "INSERT INTO rooms (name, visibility, owner_id, created_at, last_seq)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (name, visibility, users[owner], BEFORE, len(texts)),
        )
        for handle in members:
            db.run(
                "INSERT INTO room_members (room_id, user_id, joined_at) VALUES (?, ?, ?)",
                (room_id, users[handle], BEFORE),
            )
        rows = []
        for seq, (author, text, client_id) in enumerate(texts, start=1):
            db.run(
                "INSERT INTO messages (room_id, seq, user_id, text, client_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (room_id, seq, users[author], text, client_id, BEFORE + timedelta(minutes=seq)),
            )
            rows.append((seq, author, text, client_id))
        messages[room_id] = rows
        return room_id

    lobby = room(
        "lobby",
        "public",
        "ann",
        ["ann", "bob"],
        [
            ("ann", "hello everyone", "c-1"),
            ("bob", "hi ann", "c-2"),
            ("ann", "a third message", None),
        ],
    )
    secret = room(
        "secret", "private", "ann", ["ann", "cat"], [("cat", "psst", "c-3"), ("ann", "quiet", None)]
    )
    deleted = room("doomed", "public", "bob", ["bob"], [("bob", "bye", "c-4")])
    # Deleted the way the old version did: its rows, then the room (the last one made).
    db.run("DELETE FROM messages WHERE room_id = ?", (deleted,))
    db.run("DELETE FROM room_members WHERE room_id = ?", (deleted,))
    db.run("DELETE FROM rooms WHERE id = ?", (deleted,))
    del messages[deleted]

    db.run(
        "INSERT INTO refresh_tokens (token_hash, user_id, family, expires_at) VALUES (?, ?, ?, ?)",
        (
            hash_refresh_token(OLD_REFRESH_TOKEN),
            users["bob"],
            "family-before-the-upgrade",
            datetime.now(UTC) + timedelta(days=30),
        ),
    )
    return OldData(users, lobby, secret, deleted, messages)


async def test_an_upgrade_keeps_the_old_data_and_the_new_features_work_on_it(
    empty_database: str, nursery: trio.Nursery
) -> None:
    url = empty_database
    old_ids = migrate_up_to(url, LAST_OLD_MIGRATION)
    assert old_ids[-1] == LAST_OLD_MIGRATION
    raw = RawDatabase(url)
    try:
        old = await fill_old_schema(raw)
        assert [old.lobby, old.secret, old.deleted] == [1, 2, 3]

        applied = apply_migrations(url)
        assert applied[0] == "0004_conversations", applied
        assert LAST_OLD_MIGRATION not in applied
        # The counters behind unread: every old row is a message, counted.
        assert raw.all("SELECT id, kind, message_count, last_seq FROM rooms ORDER BY id") == [
            (old.lobby, "room", 3, 3),
            (old.secret, "room", 2, 2),
        ]
    finally:
        raw.close()

    await check_through_the_store(url, old)
    await check_through_a_server(url, old, nursery)


async def check_through_the_store(url: str, old: OldData) -> None:
    users = old.users
    ann, bob, cat = users["ann"], users["bob"], users["cat"]
    store = open_store(url, pool_size=2)
    try:
        assert await store.room(old.deleted) is None
        for room_id, name, visibility, members in (
            (old.lobby, "lobby", "public", {ann: "owner", bob: "member"}),
            (old.secret, "secret", "private", {ann: "owner", cat: "member"}),
        ):
            room = await store.room(room_id)  # type: ignore[arg-type]
            assert room is not None
            assert (room.id, room.name, room.visibility, room.kind, room.owner_id) == (
                room_id,
                name,
                visibility,
                "room",
                ann,
            )
            assert room.created_at == BEFORE
            sent = old.messages[room_id]
            assert room.last_message_id == len(sent)
            listed = await store.member_list(room_id)  # type: ignore[arg-type]
            assert {m.user_id: m.role for m in listed} == members
            assert {m.last_read_id for m in listed} == {len(sent)}
            history = await store.messages_before(room_id, None, 50)  # type: ignore[arg-type]
            assert [(m.id, m.user_id, m.text, m.client_id) for m in history] == [
                (seq, users[author], text, client_id) for seq, author, text, client_id in sent
            ]
            assert all(
                m.kind == "message" and not m.deleted and m.edited_at is None and not m.mentions
                for m in history
            )
            assert [m.created_at for m in history] == [
                BEFORE + timedelta(minutes=seq) for seq, *_ in sent
            ]
            for member, role in members.items():
                found = await store.room_for(room_id, member)  # type: ignore[arg-type]
                assert found is not None
                # What was there before the upgrade counts as read.
                assert found[1] == Membership(role, len(sent), 0, 0)  # type: ignore[arg-type]
        visible = await store.rooms_visible_to(cat, None, 50)  # type: ignore[arg-type]
        assert [(room.id, m and m.role) for room, m in visible] == [
            (old.lobby, None),
            (old.secret, "member"),
        ]
        visible = await store.rooms_visible_to(bob, None, 50, kind="room")  # type: ignore[arg-type]
        assert [(room.id, m and m.unread) for room, m in visible] == [(old.lobby, 0)]
    finally:
        await store.aclose()


async def login(api: Api, email: str) -> Account:
    tokens = await api.login(email)
    reply = await api.http.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    return Account(reply.json()["id"], email, tokens["access_token"], tokens["refresh_token"])


async def check_through_a_server(url: str, old: OldData, nursery: trio.Nursery) -> None:
    api, scope = await start_server(nursery, settings_for(url))
    try:
        with trio.fail_after(30):
            await use_the_old_data(api, old)
    finally:
        await api.aclose()
        scope.cancel()


async def use_the_old_data(api: Api, old: OldData) -> None:
    ann, bob, cat = [await login(api, f"{h}@example.com") for h in ("ann", "bob", "cat")]
    assert [ann.id, bob.id, cat.id] == [old.users[h] for h in ("ann", "bob", "cat")]
    lobby, secret = old.lobby, old.secret
    http = api.http

    # Rooms as their members see them: kinds, roles, nothing unread.
    listed = (await http.get("/api/v1/rooms", headers=ann.headers)).json()["items"]
    assert [
        (r["id"], r["name"], r["kind"], r["visibility"], r["owner_id"], r["role"]) for r in listed
    ] == [
        (lobby, "lobby", "room", "public", ann.id, "owner"),
        (secret, "secret", "room", "private", ann.id, "owner"),
    ]
    for r, sent in zip(listed, (3, 2), strict=True):
        assert r["created_at"] == iso(BEFORE)
        assert (r["last_message_id"], r["last_read_id"], r["unread"], r["mentions"]) == (
            sent,
            sent,
            0,
            0,
        )
    listed = (await http.get("/api/v1/rooms?kind=room", headers=bob.headers)).json()["items"]
    assert [(r["id"], r["role"], r["unread"]) for r in listed] == [(lobby, "member", 0)]
    assert (await http.get("/api/v1/rooms?kind=dm", headers=bob.headers)).json()["items"] == []
    listed = (await http.get("/api/v1/rooms", headers=cat.headers)).json()["items"]
    assert [(r["id"], r["role"], r["unread"]) for r in listed] == [
        (lobby, None, None),
        (secret, "member", 0),
    ]
    members = (await http.get(f"/api/v1/rooms/{secret}/members", headers=cat.headers)).json()
    assert [(m["user_id"], m["handle"], m["role"]) for m in members["items"]] == [
        (ann.id, "ann", "owner"),
        (cat.id, "cat", "member"),
    ]
    assert (await http.get(f"/api/v1/rooms/{old.deleted}", headers=bob.headers)).status_code == 404

    # Every message, with its id, author, text and client_id.
    for room_id, reader in ((lobby, bob), (secret, cat)):
        history = await api.all_history(reader, room_id)
        assert history == [
            {
                "id": seq,
                "room_id": room_id,
                "user_id": old.users[author],
                "text": text,
                "created_at": iso(BEFORE + timedelta(minutes=seq)),
                **({} if client_id is None else {"client_id": client_id}),
            }
            for seq, author, text, client_id in old.messages[room_id]
        ]

    # A refresh token issued before the upgrade still works, once.
    refreshed = await http.post("/api/v1/auth/refresh", json={"refresh_token": OLD_REFRESH_TOKEN})
    assert refreshed.status_code == 200, refreshed.text
    me = await http.get(
        "/api/v1/users/me",
        headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
    )
    assert me.json()["id"] == bob.id

    # A deleted room's id is never given again (SQLite: the AUTOINCREMENT counter
    # survived the rebuild of the rooms table).
    assert (await api.create_room(cat, "after the upgrade"))["id"] == old.deleted + 1

    async with api.socket(bob, lobby) as bob_ws, api.socket(ann, lobby) as ann_ws:
        # An old message edited: the next id of the room's sequence.
        edited = await http.patch(
            f"/api/v1/rooms/{lobby}/messages/1",
            json={"text": "hello everyone (edited)"},
            headers=ann.headers,
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["text"] == "hello everyone (edited)" and "edited_at" in edited.json()
        frame = await bob_ws.expect("message_edited", message_id=1)
        assert (frame["id"], frame["text"]) == (4, "hello everyone (edited)")

        # An old message reacted to.
        reacted = await http.put(
            f"/api/v1/rooms/{lobby}/messages/2/reactions/{THUMBS_UP}", headers=bob.headers
        )
        assert reacted.status_code == 200, reacted.text
        assert reacted.json() == {"message_id": 2, "emoji": THUMBS_UP, "count": 1, "me": True}
        frame = await bob_ws.expect("reaction", message_id=2)
        assert (frame["id"], frame["action"], frame["count"]) == (5, "added", 1)

        # A resend of an old client_id is still recognised: the original, no new id.
        await ann_ws.send("hello everyone", client_id="c-1")
        assert (await ann_ws.expect("message", client_id="c-1"))["id"] == 1

        # A new message: unread (and a mention) for the other member, not the sender.
        await ann_ws.send("still here, @bob?", client_id="c-new")
        new = await bob_ws.expect("message", client_id="c-new")
        assert (new["id"], new["mentions"]) == (6, [bob.id])

        # The owner (by the migrated role) deletes someone else's old message.
        refused = await http.delete(f"/api/v1/rooms/{lobby}/messages/1", headers=bob.headers)
        assert refused.status_code == 403, refused.text
        deleted = await http.delete(f"/api/v1/rooms/{lobby}/messages/3", headers=ann.headers)
        assert deleted.status_code == 204, deleted.text
        frame = await bob_ws.expect("message_deleted", message_id=3)
        assert (frame["id"], frame["user_id"]) == (7, ann.id)

    seen_by_bob = (await http.get(f"/api/v1/rooms/{lobby}", headers=bob.headers)).json()
    assert (seen_by_bob["last_read_id"], seen_by_bob["unread"], seen_by_bob["mentions"]) == (
        3,
        1,
        1,
    )
    seen_by_ann = (await http.get(f"/api/v1/rooms/{lobby}", headers=ann.headers)).json()
    assert (seen_by_ann["unread"], seen_by_ann["mentions"]) == (0, 0)
    marked = await http.post(
        f"/api/v1/rooms/{lobby}/read", json={"message_id": 7}, headers=bob.headers
    )
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"last_read_id": 7, "unread": 0, "mentions": 0}

    # History shows the old messages as they now are.
    history = await api.all_history(ann, lobby)
    assert [(m["id"], m["text"], m.get("deleted", False)) for m in history] == [
        (1, "hello everyone (edited)", False),
        (2, "hi ann", False),
        (3, "", True),
        (6, "still here, @bob?", False),
    ]
    assert history[1]["reactions"] == [{"emoji": THUMBS_UP, "count": 1, "me": False}]

    # An old room is deleted whole, and its id is not given again either.
    assert (await http.delete(f"/api/v1/rooms/{secret}", headers=ann.headers)).status_code == 204
    assert (await http.get(f"/api/v1/rooms/{secret}", headers=cat.headers)).status_code == 404
    assert (await api.create_room(cat, "later still"))["id"] == old.deleted + 2
