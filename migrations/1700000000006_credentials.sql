-- Up Migration

-- Credentials that can be managed: a person or a station can be disabled (kept for the record,
-- refused at every door), a personal token expires and can be revoked (NULL: none), and an account
-- that signs dispositions with its token alone must say it is an integration.
ALTER TABLE users
  ADD COLUMN disabled_at timestamptz,
  ADD COLUMN integration boolean NOT NULL DEFAULT false,
  ADD COLUMN token_expires_at timestamptz;
ALTER TABLE users ALTER COLUMN token_id DROP NOT NULL, ALTER COLUMN token_hash DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_token_whole CHECK ((token_id IS NULL) = (token_hash IS NULL));
-- Accounts without a password could only ever sign with their token: they were integrations.
UPDATE users SET integration = true WHERE password_hash IS NULL;
UPDATE users SET token_expires_at = now() + interval '365 days';
ALTER TABLE stations ADD COLUMN disabled_at timestamptz;

-- Failed sign-ins and signatures, counted in the database so that every API process sees them and
-- a restart forgets nothing.
CREATE TABLE failed_attempts (
  key         text PRIMARY KEY,
  count       integer NOT NULL,
  reset_at    timestamptz NOT NULL
);

-- Down Migration
DROP TABLE failed_attempts;
ALTER TABLE stations DROP COLUMN disabled_at;
ALTER TABLE users DROP CONSTRAINT users_token_whole;
DELETE FROM users WHERE token_id IS NULL;
ALTER TABLE users ALTER COLUMN token_id SET NOT NULL, ALTER COLUMN token_hash SET NOT NULL;
ALTER TABLE users DROP COLUMN token_expires_at, DROP COLUMN integration, DROP COLUMN disabled_at;
