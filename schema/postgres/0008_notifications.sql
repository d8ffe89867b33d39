-- depends: 0007_admin
-- Notifications (chatd/notifications/, docs/operations.md): the notifications role follows
-- the event stream and records one row per person to tell of a mention or a DM.
--
-- A row names the event that caused it: unique (user_id, event_id, kind), so an event
-- processed twice (a consumer restarted from an older position, a broker redelivery)
-- records nothing twice.
CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('mention', 'dm')),
    room_id     bigint NOT NULL,
    message_id  bigint NOT NULL,
    sender_id   bigint NOT NULL,
    event_id    bigint NOT NULL,
    excerpt     text NOT NULL,
    created_at  timestamptz NOT NULL,
    read_at     timestamptz,
    UNIQUE (user_id, event_id, kind)
);
-- A user's newest first (the list, paged by id), and their unread ones (the count, the bell).
CREATE INDEX notifications_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read_at IS NULL;

-- Where each consumer of the stream is: the last event id it processed, written in the
-- transaction of what processing it produced, so after a crash it resumes exactly there.
-- holder/lease_until: the replica consuming now (one at a time; the others stand by
-- until the lease lapses), and what fences a replica that lost its lease.
CREATE TABLE consumer_positions (
    name         text PRIMARY KEY,
    position     bigint NOT NULL DEFAULT 0,
    holder       text,
    lease_until  timestamptz
);
