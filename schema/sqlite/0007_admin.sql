-- depends: 0006_events
-- Administration (chatd/admin/, docs/admin.md): who is an administrator, closed rooms, and
-- the audit log of every administrative action.

-- Checked in the store on every admin request (not carried in tokens), so a revoked
-- administrator loses access at once. (No CHECK on an added column: SQLite verifies one
-- with a query whose rows yoyo prints.)
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;

-- A closed room refuses new connections and new messages; its history stays readable.
ALTER TABLE rooms ADD COLUMN closed_at TEXT;

-- One row per action, written in the transaction of the change it records. actor_id is
-- NULL for `chatd admin create-user` (the command line, not a user); no foreign keys, so
-- the record outlives the users and rooms it names.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor_id    INTEGER,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   INTEGER,
    detail      TEXT NOT NULL DEFAULT '{}',
    instance    TEXT NOT NULL DEFAULT ''
);
-- Read newest first, a page at a time (id < before): the primary key serves it; this one
-- serves "what did this administrator do".
CREATE INDEX audit_log_actor ON audit_log (actor_id, id) WHERE actor_id IS NOT NULL;
