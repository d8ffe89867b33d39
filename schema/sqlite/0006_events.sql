-- depends: 0005_search
-- The event stream's transactional outbox (chatd/events/, docs/events.md). Every change
-- that commits writes its event here in the same transaction, so an event exists if and
-- only if its change committed. Rows are inserted and never updated.
--
-- SQLite has one writer at a time: rows commit in row_id order, which is the order the
-- relay numbers them in (AUTOINCREMENT: a row_id is never used again, even once pruned).
-- Each published batch is one row of outbox_batches: events first_id..last_id are the
-- outbox rows after the previous batch's last_row_id, up to and including this batch's.
-- An event's id (1, 2, 3, ... with no hole, what consumers see and replay from) is its
-- place in that order. Pruning deletes whole batches and their rows; the newest batch
-- row always stays. Nothing else may delete or add rows below the newest batch's cursor:
-- ids are counted, not stored.
CREATE TABLE outbox (
    row_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    type         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    room_id      INTEGER,
    actor_id     INTEGER,
    data         TEXT NOT NULL,
    traceparent  TEXT,
    created_at   TEXT NOT NULL
);
CREATE TABLE outbox_batches (
    last_id      INTEGER PRIMARY KEY,
    first_id     INTEGER NOT NULL,
    last_row_id  INTEGER NOT NULL,
    published_at TEXT NOT NULL
);
