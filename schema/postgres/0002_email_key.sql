-- depends: 0001_init
-- Emails are kept as typed; uniqueness and login use this case-folded key.
ALTER TABLE users ADD COLUMN email_key TEXT;
UPDATE users SET email_key = lower(email);
ALTER TABLE users ALTER COLUMN email_key SET NOT NULL;
CREATE UNIQUE INDEX users_email_key_unique ON users (email_key);
