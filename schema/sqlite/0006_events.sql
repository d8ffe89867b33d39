-- depends: 0005_search
-- The event stream's transactional outbox (chatd/events/, docs/events.md). Every change
-- that commits writes its event here in the same transaction, so an event exists if and
-- only if its change committed. The relay numbers rows as it publishes them (position:
-- 1, 2, 3, ... with no hole, the event id consumers see and replay from) and marks them.
-- SQLite has one writer at a time: rows commit in row_id order, which is the order the
-- relay numbers them in.
CREATE TABLE outbox (
    row_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    position     INTEGER UNIQUE,
    type         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    room_id      INTEGER,
    actor_id     INTEGER,
    data         TEXT NOT NULL,
    traceparent  TEXT,
    created_at   TEXT NOT NULL,
    published_at TEXT
);
CREATE INDEX outbox_unnumbered ON outbox (row_id) WHERE position IS NULL;
