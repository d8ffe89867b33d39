-- depends: 0004_conversations
-- Message search (GET /search): an FTS5 index of the messages' current text, its words as
-- the unicode61 tokenizer sees them (runs of letters and digits, case folded, accents kept).
-- Only messages are in it, not events (kind) or tombstones. Its content is this view of
-- exactly those rows, so 'rebuild' and 'integrity-check' agree with what the triggers keep.
-- The triggers fire for every way a row changes: the writer's inserts, an edit or a
-- deletion (an UPDATE of text and deleted), and room deletions (a DELETE, cascaded or not).
CREATE VIEW searchable_messages AS
    SELECT rowid AS message_rowid, text FROM messages WHERE kind = 'message' AND NOT deleted;

CREATE VIRTUAL TABLE message_search USING fts5 (
    text,
    content = 'searchable_messages',
    content_rowid = 'message_rowid',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER message_search_insert AFTER INSERT ON messages
    WHEN new.kind = 'message' AND NOT new.deleted
BEGIN
    INSERT INTO message_search (rowid, text) VALUES (new.rowid, new.text);
END;

-- An external-content index forgets a row by being told the exact text it indexed.
CREATE TRIGGER message_search_delete AFTER DELETE ON messages
    WHEN old.kind = 'message' AND NOT old.deleted
BEGIN
    INSERT INTO message_search (message_search, rowid, text)
        VALUES ('delete', old.rowid, old.text);
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF text, kind, deleted ON messages
BEGIN
    INSERT INTO message_search (message_search, rowid, text)
        SELECT 'delete', old.rowid, old.text WHERE old.kind = 'message' AND NOT old.deleted;
    INSERT INTO message_search (rowid, text)
        SELECT new.rowid, new.text WHERE new.kind = 'message' AND NOT new.deleted;
END;

-- The messages sent before this version.
INSERT INTO message_search (message_search) VALUES ('rebuild');
