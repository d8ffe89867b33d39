-- depends: 0005_search
-- The event stream's transactional outbox (chatd/events/, docs/events.md). Every change
-- that commits writes its event here in the same transaction, so an event exists if and
-- only if its change committed. The relay numbers rows as it publishes them (position:
-- 1, 2, 3, ... with no hole, the event id consumers see and replay from) and marks them.
--
-- Rows are numbered in (txid, row_id) order, and only below the oldest transaction still
-- running: a row_id is taken when the row is inserted, not when it commits, so two
-- transactions can commit their rows out of row_id order; but no transaction that has yet
-- to commit can hold a txid below that horizon, so the order of what gets numbered never
-- changes behind the relay, and a relay that fails before it marks numbers the same rows
-- the same way on its next try.
CREATE TABLE outbox (
    row_id       bigserial PRIMARY KEY,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    position     bigint UNIQUE,
    type         text NOT NULL,
    version      integer NOT NULL,
    room_id      bigint,
    actor_id     bigint,
    data         text NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL,
    published_at timestamptz
);
CREATE INDEX outbox_unnumbered ON outbox (txid, row_id) WHERE position IS NULL;
