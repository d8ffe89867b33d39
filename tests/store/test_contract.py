"""The Store contract, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from chatd.errors import Conflict, NotFound
from chatd.model import Appended, Draft, RoomId, UserId
from chatd.store import Store, open_store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def make_user(store: Store, email: str = "ann@example.com") -> UserId:
    return (await store.create_user(email, "$2b$hash")).id


async def make_room(store: Store, owner: UserId, visibility: str = "public") -> RoomId:
    return (await store.create_room(owner, "room", visibility, NOW)).id  # type: ignore[arg-type]


def draft(room: RoomId, user: UserId, text: str, client_id: str | None = None) -> Draft:
    return Draft(room, user, text, client_id)


async def test_emails_are_unique_whatever_their_case(store: Store) -> None:
    await make_user(store, "Ann@Example.com")
    for again in ("Ann@Example.com", "ann@example.com", "ANN@EXAMPLE.COM"):
        with pytest.raises(Conflict):
            await make_user(store, again)
    found = await store.credentials("aNN@example.COM")
    assert found is not None and found[1] == "$2b$hash"
    assert found[0].email == "Ann@Example.com"  # kept as typed


async def test_refresh_tokens_are_single_use_and_replay_revokes_the_family(store: Store) -> None:
    user = await make_user(store)
    later = NOW + timedelta(days=1)
    await store.add_refresh_token(user, "h1", "fam", later)
    assert await store.use_refresh_token("h1", NOW, 10) == (user, "fam")
    await store.add_refresh_token(user, "k1", "other", later)
    assert await store.use_refresh_token("k1", NOW, 10) == (user, "other")
    await store.add_refresh_token(user, "h2", "fam", later)
    # A quick retry of the spent h1 (a client that lost the answer) is refused...
    assert await store.use_refresh_token("h1", NOW + timedelta(seconds=5), 10) is None
    # ...and a replay later is refused and takes the live h2 down with it.
    assert await store.use_refresh_token("h1", NOW + timedelta(seconds=11), 10) is None
    assert await store.use_refresh_token("h2", NOW + timedelta(seconds=11), 10) is None
    assert await store.use_refresh_token("unknown", NOW, 10) is None


async def test_expired_refresh_token_is_refused(store: Store) -> None:
    user = await make_user(store)
    await store.add_refresh_token(user, "h", "fam", NOW)
    assert await store.use_refresh_token("h", NOW + timedelta(seconds=1), 10) is None


async def test_revoking_a_refresh_token_revokes_its_family_only(store: Store) -> None:
    user = await make_user(store)
    later = NOW + timedelta(days=1)
    await store.add_refresh_token(user, "spent", "fam", later)
    assert await store.use_refresh_token("spent", NOW, 10) == (user, "fam")
    await store.add_refresh_token(user, "live", "fam", later)
    await store.add_refresh_token(user, "other", "other-login", later)
    # Any token of the family will do, even a spent one (a logout with a stale token).
    assert await store.revoke_refresh_family("spent") is True
    assert await store.use_refresh_token("live", NOW, 10) is None
    assert await store.use_refresh_token("other", NOW, 10) == (user, "other-login")
    assert await store.revoke_refresh_family("never-issued") is False


async def test_a_password_change_revokes_every_login_and_cuts_off_tokens(store: Store) -> None:
    ann, bob = await make_user(store, "ann@x.io"), await make_user(store, "bob@x.io")
    later = NOW + timedelta(days=1)
    for token, user, family in (("a1", ann, "f1"), ("a2", ann, "f2"), ("b1", bob, "f3")):
        await store.add_refresh_token(user, token, family, later)
    assert await store.token_cutoffs(NOW - timedelta(hours=1)) == {}
    changed_at = NOW + timedelta(seconds=30)
    await store.change_password(ann, "$2b$new", changed_at)
    found = await store.credentials("ann@x.io")
    assert found is not None and found[1] == "$2b$new"
    assert await store.use_refresh_token("a1", changed_at, 10) is None
    assert await store.use_refresh_token("a2", changed_at, 10) is None
    assert await store.use_refresh_token("b1", changed_at, 10) == (bob, "f3")  # not bob's
    assert await store.token_cutoffs(NOW) == {ann: changed_at}
    assert await store.token_cutoffs(changed_at) == {}  # only later changes
    # Tokens issued after the change work.
    await store.add_refresh_token(ann, "a3", "f4", later)
    assert await store.use_refresh_token("a3", changed_at, 10) == (ann, "f4")
    with pytest.raises(NotFound):
        await store.change_password(UserId(10**9), "$2b$x", NOW)


async def test_rooms_listing_shows_public_and_own_private_rooms(store: Store) -> None:
    ann, bob = await make_user(store, "ann@x.io"), await make_user(store, "bob@x.io")
    public = await make_room(store, ann)
    private = await make_room(store, ann, "private")
    assert [r.id for r, _ in await store.rooms_visible_to(ann, None, 10)] == [public, private]
    assert [r.id for r, _ in await store.rooms_visible_to(bob, None, 10)] == [public]
    await store.add_member(private, bob, NOW)
    assert [r.id for r, _ in await store.rooms_visible_to(bob, None, 10)] == [public, private]
    assert [r.id for r, _ in await store.rooms_visible_to(bob, public, 10)] == [private]
    assert await store.members(private) == sorted([ann, bob])


async def test_update_and_delete_room(store: Store) -> None:
    ann = await make_user(store)
    room = await make_room(store, ann)
    updated = await store.update_room(room, "renamed", None)
    assert (updated.name, updated.visibility) == ("renamed", "public")
    await store.append([draft(room, ann, "hi")], NOW)
    await store.delete_room(room)
    assert await store.room(room) is None
    with pytest.raises(NotFound):
        await store.delete_room(room)
    with pytest.raises(NotFound):
        await store.update_room(room, "x", None)


async def test_ids_are_a_contiguous_sequence_per_room(store: Store) -> None:
    ann = await make_user(store)
    first, second = await make_room(store, ann), await make_room(store, ann)
    outcomes = await store.append(
        [draft(first, ann, "a"), draft(second, ann, "b"), draft(first, ann, "c")], NOW
    )
    assert [(o.message.room_id, o.message.id) for o in outcomes if isinstance(o, Appended)] == [
        (first, 1),
        (second, 1),
        (first, 2),
    ]
    again = await store.append([draft(first, ann, "d")], NOW)
    assert isinstance(again[0], Appended) and again[0].message.id == 3
    assert await store.last_message_id(first) == 3


async def test_resend_with_same_client_id_returns_the_original(store: Store) -> None:
    ann, bob = await make_user(store, "ann@x.io"), await make_user(store, "bob@x.io")
    room = await make_room(store, ann)
    [first] = await store.append([draft(room, ann, "hello", "c-1")], NOW)
    # Same batch twice, another batch, and another user with the same client_id.
    outcomes = await store.append(
        [
            draft(room, ann, "hello again", "c-1"),
            draft(room, ann, "new", "c-2"),
            draft(room, ann, "new (dup in batch)", "c-2"),
            draft(room, bob, "bob's own", "c-1"),
        ],
        NOW,
    )
    assert isinstance(first, Appended) and first.fresh
    kinds = [(o.fresh, o.message.id, o.message.text) for o in outcomes]  # type: ignore[union-attr]
    assert kinds == [
        (False, 1, "hello"),
        (True, 2, "new"),
        (False, 2, "new"),
        (True, 3, "bob's own"),
    ]
    assert [m.id for m in await store.messages_after(room, 0, 100)] == [1, 2, 3]


async def test_append_to_a_missing_room_fails_only_that_draft(store: Store) -> None:
    ann = await make_user(store)
    room = await make_room(store, ann)
    outcomes = await store.append([draft(RoomId(999_999), ann, "x"), draft(room, ann, "y")], NOW)
    assert isinstance(outcomes[0], NotFound)
    assert isinstance(outcomes[1], Appended) and outcomes[1].message.id == 1


@pytest.mark.parametrize(
    "text",
    [
        "héllo wörld — ✓ 日本語 🎉👩‍👩‍👧",
        "'; DROP TABLE messages; --",
        "Robert'); DELETE FROM users WHERE ('1'='1",
        "%s %(x)s ? $1 \\x00",
        "line one\nline two\ttabbed",
    ],
)
async def test_text_is_stored_literally(store: Store, text: str) -> None:
    ann = await make_user(store)
    room = await make_room(store, ann)
    await store.append([draft(room, ann, text)], NOW)
    [message] = await store.messages_after(room, 0, 10)
    assert message.text == text
    assert message.created_at == NOW


async def test_history_pages_back_without_duplicates(store: Store) -> None:
    ann = await make_user(store)
    room = await make_room(store, ann)
    await store.append([draft(room, ann, f"m{i}") for i in range(1, 26)], NOW)
    newest = await store.messages_before(room, None, 10)
    assert [m.id for m in newest] == list(range(16, 26))
    older = await store.messages_before(room, 16, 10)
    assert [m.id for m in older] == list(range(6, 16))
    assert [m.id for m in await store.messages_before(room, 6, 10)] == [1, 2, 3, 4, 5]
    assert [m.id for m in await store.messages_after(room, 20, 3)] == [21, 22, 23]


async def test_concurrent_writers_keep_the_sequence_whole(database_url: str) -> None:
    """Two stores (two instances' writers) appending to one room at once."""
    stores = [open_store(database_url, pool_size=2) for _ in range(2)]
    try:
        ann = await make_user(stores[0])
        room = await make_room(stores[0], ann)

        async def write(store: Store, tag: str) -> None:
            for i in range(20):
                await store.append([draft(room, ann, f"{tag}{i}"), draft(room, ann, "x")], NOW)

        async with trio.open_nursery() as nursery:
            for index, store in enumerate(stores):
                nursery.start_soon(write, store, f"w{index}-")
        ids = [m.id for m in await stores[0].messages_after(room, 0, 1000)]
        assert ids == list(range(1, 81))
    finally:
        for store in stores:
            await store.aclose()


async def test_a_batch_mixes_new_drafts_resends_and_duplicates_across_rooms(store: Store) -> None:
    ann, bob = await make_user(store, "ann@x.io"), await make_user(store, "bob@x.io")
    first, second, doomed = [await make_room(store, ann) for _ in range(3)]
    await store.append(
        [draft(first, ann, "a1", "c-1"), draft(second, ann, "b1", "c-1"), draft(doomed, ann, "d")],
        NOW,
    )
    await store.delete_room(doomed)
    twice = draft(first, bob, "no client_id")
    outcomes = await store.append(
        [
            draft(second, ann, "b1 again", "c-1"),  # resend of an earlier batch's message
            draft(doomed, ann, "gone", "c-9"),
            draft(first, ann, "a2", "c-2"),
            twice,
            draft(first, bob, "bob's c-1", "c-1"),  # another user's key is another key
            draft(second, bob, "b2", "c-2"),
            draft(first, ann, "a1 again", "c-1"),
            draft(first, ann, "a2 dup", "c-2"),  # duplicate within this batch
            twice,  # the very same draft object again: no client_id, so a new message
            draft(doomed, bob, "gone too"),
            draft(second, bob, "b2 dup", "c-2"),
        ],
        NOW,
    )
    assert isinstance(outcomes[1], NotFound) and isinstance(outcomes[9], NotFound)
    seen = [
        (o.fresh, o.message.room_id, o.message.id, o.message.text)
        for o in outcomes
        if isinstance(o, Appended)
    ]
    assert seen == [
        (False, second, 1, "b1"),
        (True, first, 2, "a2"),
        (True, first, 3, "no client_id"),
        (True, first, 4, "bob's c-1"),
        (True, second, 2, "b2"),
        (False, first, 1, "a1"),
        (False, first, 2, "a2"),
        (True, first, 5, "no client_id"),
        (False, second, 2, "b2"),
    ]
    assert [m.id for m in await store.messages_after(first, 0, 100)] == [1, 2, 3, 4, 5]
    assert [m.id for m in await store.messages_after(second, 0, 100)] == [1, 2]
    assert (await store.last_message_id(first), await store.last_message_id(second)) == (5, 2)
    resent = await store.append(
        [draft(first, ann, "x", "c-2"), draft(second, bob, "y", "c-2")], NOW
    )
    assert [(o.fresh, o.message.id) for o in resent] == [(False, 2), (False, 2)]  # type: ignore[union-attr]


async def test_a_batch_longer_than_sqlites_parameter_limit(store: Store) -> None:
    """Lookups, inserts and counter updates of a big batch span several statements."""
    ann = await make_user(store)
    rooms = [await make_room(store, ann) for _ in range(3)]
    early = await store.append([draft(rooms[1], ann, "early", "k-1999")], NOW)
    drafts = [draft(rooms[i % 3], ann, f"m{i}", f"k-{i}") for i in range(2000)]
    drafts += [draft(rooms[i % 3], ann, f"again {i}", f"k-{i}") for i in range(0, 2000, 7)]
    outcomes = await store.append(drafts, NOW)
    assert all(isinstance(o, Appended) for o in outcomes)
    fresh = [o for o in outcomes if isinstance(o, Appended) and o.fresh]
    assert len(fresh) == 1999  # k-1999 was stored before, in the room of i % 3 == 1
    assert outcomes[1999] == Appended(early[0].message, fresh=False)  # type: ignore[union-attr]
    for index, room in enumerate(rooms):
        ids = [m.id for m in await store.messages_after(room, 0, 10_000)]
        assert ids == list(range(1, len(ids) + 1))
        assert await store.last_message_id(room) == len(ids)
        assert len(ids) == 667 - (index == 2)
    for i, outcome in enumerate(outcomes[2000:]):
        original = outcomes[7 * i]
        assert isinstance(outcome, Appended) and isinstance(original, Appended)
        assert not outcome.fresh and outcome.message == original.message


async def test_concurrent_resends_of_one_draft_store_it_once(database_url: str) -> None:
    """Two instances' writers given the same drafts at once: each is stored once, no hole."""
    stores = [open_store(database_url, pool_size=2) for _ in range(2)]
    try:
        ann = await make_user(stores[0])
        rooms = [await make_room(stores[0], ann) for _ in range(2)]
        results: list[list[Appended]] = []

        async def write(store: Store, reverse: bool) -> None:
            for i in range(20):
                batch = [draft(room, ann, f"m{i}", f"c-{i}") for room in rooms]
                # Opposite orders in the batch: rooms are still locked in id order.
                outcomes = await store.append(batch[::-1] if reverse else batch, NOW)
                results.append([o for o in outcomes if isinstance(o, Appended)])

        async with trio.open_nursery() as nursery:
            for index, store in enumerate(stores):
                nursery.start_soon(write, store, index == 1)
        assert all(len(batch) == 2 for batch in results)
        fresh = [o.message for batch in results for o in batch if o.fresh]
        assert len(fresh) == 40
        for room in rooms:
            stored = await stores[0].messages_after(room, 0, 1000)
            assert [m.id for m in stored] == list(range(1, 21))
            assert sorted(m.client_id or "" for m in stored) == sorted(f"c-{i}" for i in range(20))
    finally:
        for store in stores:
            await store.aclose()
