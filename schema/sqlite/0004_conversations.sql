-- depends: 0003_sessions
-- Conversations (issue 10): room kinds and roles, DMs, invitations, edits, deletions and
-- reactions as events in a room's sequence, read watermarks and mentions.

-- SQLite cannot change a column's CHECK or NOT NULL: rooms is rebuilt, the documented way
-- (yoyo's connection leaves foreign keys off, so dropping the old table cascades nothing).
-- Room ids are never reused (AUTOINCREMENT): the counter is carried over.
CREATE TEMP TABLE rooms_counter AS SELECT seq FROM sqlite_sequence WHERE name = 'rooms';

-- A room is a 'room' (public, private or invite) or a 'dm', which has no owner; dm_key, the
-- sorted member ids, makes a DM unique per set of people. last_seq counts every event of
-- the room; message_count only its messages (unread counts).
CREATE TABLE rooms_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    visibility    TEXT NOT NULL CHECK (visibility IN ('public', 'private', 'invite')),
    owner_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    kind          TEXT NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm')),
    dm_key        TEXT,
    message_count INTEGER NOT NULL DEFAULT 0
);
INSERT INTO rooms_new (id, name, visibility, owner_id, created_at, last_seq, message_count)
    SELECT id, name, visibility, owner_id, created_at, last_seq, last_seq FROM rooms;
DROP TABLE rooms;
ALTER TABLE rooms_new RENAME TO rooms;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM rooms_counter), 0))
    WHERE name = 'rooms';
DROP TABLE rooms_counter;
CREATE UNIQUE INDEX rooms_dm_key ON rooms (dm_key) WHERE dm_key IS NOT NULL;

-- The owner's row says 'owner' too (kept with rooms.owner_id in one transaction).
-- last_read_id is the member's watermark; read_count the room's message_count there.
-- (No CHECK on added columns here: SQLite verifies one with a query whose rows yoyo prints.)
ALTER TABLE room_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
ALTER TABLE room_members ADD COLUMN last_read_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE room_members ADD COLUMN read_count INTEGER NOT NULL DEFAULT 0;
UPDATE room_members SET role = 'owner'
    WHERE user_id = (SELECT owner_id FROM rooms WHERE rooms.id = room_members.room_id);
-- What members had before this version counts as read: no wall of old unread on upgrade.
UPDATE room_members SET
    last_read_id = (SELECT last_seq FROM rooms WHERE rooms.id = room_members.room_id),
    read_count = (SELECT message_count FROM rooms WHERE rooms.id = room_members.room_id);

-- Rows of kind 'edited', 'deleted', 'reaction_added' and 'reaction_removed' are events about
-- the message target_id; they take ids of the sequence so that ?since= replays them.
-- message_no: the room's message_count up to and including this row.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN target_id INTEGER;
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN message_no INTEGER;
ALTER TABLE messages ADD COLUMN mentions TEXT;  -- user ids, comma-separated
ALTER TABLE messages ADD COLUMN reaction_count INTEGER;  -- reaction events: the new count
UPDATE messages SET message_no = seq;

CREATE TABLE reactions (
    room_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (room_id, message_id, emoji, user_id),
    FOREIGN KEY (room_id, message_id) REFERENCES messages (room_id, seq) ON DELETE CASCADE
);

-- Who a message mentions: a member's mention count is a range scan past their watermark.
CREATE TABLE mentions (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, message_id),
    FOREIGN KEY (room_id, message_id) REFERENCES messages (room_id, seq) ON DELETE CASCADE
);

CREATE TABLE room_invites (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_invites_user ON room_invites (user_id);
