-- depends: 0003_sessions
-- Conversations (issue 10): room kinds and roles, DMs, invitations, edits, deletions and
-- reactions as events in a room's sequence, read watermarks and mentions.

-- A room is a 'room' (public, private or invite) or a 'dm', which has no owner; dm_key, the
-- sorted member ids, makes a DM unique per set of people.
ALTER TABLE rooms DROP CONSTRAINT rooms_visibility_check;
ALTER TABLE rooms ADD CONSTRAINT rooms_visibility_check
    CHECK (visibility IN ('public', 'private', 'invite'));
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'room' CHECK (kind IN ('room', 'dm'));
ALTER TABLE rooms ALTER COLUMN owner_id DROP NOT NULL;
ALTER TABLE rooms ADD COLUMN dm_key TEXT;
CREATE UNIQUE INDEX rooms_dm_key ON rooms (dm_key) WHERE dm_key IS NOT NULL;
-- last_seq counts every event of the room; message_count only its messages (unread counts).
ALTER TABLE rooms ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
UPDATE rooms SET message_count = last_seq;

-- The owner's row says 'owner' too (kept with rooms.owner_id in one transaction).
-- last_read_id is the member's watermark; read_count the room's message_count there.
ALTER TABLE room_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
    CHECK (role IN ('owner', 'admin', 'member'));
ALTER TABLE room_members ADD COLUMN last_read_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE room_members ADD COLUMN read_count BIGINT NOT NULL DEFAULT 0;
UPDATE room_members SET role = 'owner' FROM rooms
    WHERE rooms.id = room_members.room_id AND rooms.owner_id = room_members.user_id;
-- What members had before this version counts as read: no wall of old unread on upgrade.
UPDATE room_members SET last_read_id = rooms.last_seq, read_count = rooms.message_count
    FROM rooms WHERE rooms.id = room_members.room_id;

-- Rows of kind 'edited', 'deleted', 'reaction_added' and 'reaction_removed' are events about
-- the message target_id; they take ids of the sequence so that ?since= replays them.
-- message_no: the room's message_count up to and including this row.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message'
    CHECK (kind IN ('message', 'edited', 'deleted', 'reaction_added', 'reaction_removed'));
ALTER TABLE messages ADD COLUMN target_id BIGINT;
ALTER TABLE messages ADD COLUMN edited_at TIMESTAMPTZ;
ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN message_no BIGINT;
ALTER TABLE messages ADD COLUMN mentions TEXT;  -- user ids, comma-separated
ALTER TABLE messages ADD COLUMN reaction_count INTEGER;  -- reaction events: the new count
UPDATE messages SET message_no = seq;

CREATE TABLE reactions (
    room_id    BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    emoji      TEXT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, message_id, emoji, user_id),
    FOREIGN KEY (room_id, message_id) REFERENCES messages (room_id, seq) ON DELETE CASCADE
);

-- Who a message mentions: a member's mention count is a range scan past their watermark.
CREATE TABLE mentions (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    BIGINT NOT NULL,
    message_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, message_id),
    FOREIGN KEY (room_id, message_id) REFERENCES messages (room_id, seq) ON DELETE CASCADE
);

CREATE TABLE room_invites (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_invites_user ON room_invites (user_id);

-- Finding people by handle (the start of their email) and resolving @mentions: a prefix
-- LIKE uses this index whatever the database's collation.
CREATE INDEX users_email_key_prefix ON users (email_key text_pattern_ops);
