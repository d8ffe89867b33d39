-- depends: 0004_conversations
-- Message search (GET /search): a full-text index of the messages' current text.
-- Its words are the 'simple' configuration's (no stemming, no stop words) once every ASCII
-- punctuation character is a space: "ann@example.com", "example.com/docs" and "3.14" are
-- then the words FTS5 sees on SQLite (ann, example, com, docs, 3, 14), not the parser's
-- one email, URL or number, and a query finds the same messages on either database.
-- Only messages are in it, not events (kind) or tombstones: an edit or a deletion updates
-- the message's row and the index follows it, with no trigger on the writer's COPY.
-- Searches must say message_search_vector(text) and the same WHERE to use it.
CREATE FUNCTION message_search_vector(text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.to_tsvector(
        'pg_catalog.simple'::pg_catalog.regconfig,
        pg_catalog.translate(
            $1, E'!"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~', '                                '
        )
    );
CREATE INDEX messages_search ON messages USING gin (message_search_vector(text))
    WHERE kind = 'message' AND NOT deleted;
