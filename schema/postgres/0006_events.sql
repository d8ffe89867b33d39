-- depends: 0005_search
-- The event stream's transactional outbox (chatd/events/, docs/events.md). Every change
-- that commits writes its event here in the same transaction, so an event exists if and
-- only if its change committed. Rows are inserted and never updated.
--
-- The relay numbers rows as it publishes them, in (txid, row_id) order, and only below
-- the oldest transaction still running: a row_id is taken when the row is inserted, not
-- when it commits, so two transactions can commit their rows out of row_id order; but no
-- transaction that has yet to commit can hold a txid below that horizon, so the order of
-- what gets numbered never changes behind the relay.
--
-- Each published batch is one row of outbox_batches: events first_id..last_id are the
-- outbox rows after the previous batch's (last_txid, last_row_id), up to and including
-- this batch's, in (txid, row_id) order. An event's id (1, 2, 3, ... with no hole, what
-- consumers see and replay from) is its place in that order; a relay that fails before
-- it inserts the batch row numbers the same rows the same way on its next try. Pruning
-- deletes whole batches and their rows; the newest batch row always stays. Nothing else
-- may delete or add rows below the newest batch's cursor: ids are counted, not stored.
CREATE TABLE outbox (
    row_id       bigserial NOT NULL,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type         text NOT NULL,
    version      integer NOT NULL,
    room_id      bigint,
    actor_id     bigint,
    data         text NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (txid, row_id)
);
CREATE TABLE outbox_batches (
    last_id      bigint PRIMARY KEY,
    first_id     bigint NOT NULL,
    last_txid    xid8 NOT NULL,
    last_row_id  bigint NOT NULL,
    published_at timestamptz NOT NULL
);
