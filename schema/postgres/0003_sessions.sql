-- depends: 0002_email_key
-- A password change refuses the access tokens issued before it (chatd/auth/cutoffs.py)
-- and revokes every refresh token of the user; instances poll recent changes by time.
ALTER TABLE users ADD COLUMN tokens_valid_after TIMESTAMPTZ;
CREATE INDEX users_tokens_valid_after ON users (tokens_valid_after)
    WHERE tokens_valid_after IS NOT NULL;
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
