-- Up Migration

-- The printed name an electronic signature shows (21 CFR 11.50); the username when not set.
ALTER TABLE users ADD COLUMN full_name text;

-- Browser sessions of the review workbench. Only a hash of the cookie's secret is stored.
CREATE TABLE sessions (
  token_hash  bytea PRIMARY KEY,
  username    text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  csrf_token  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- A disposition is an electronic signature: who (username, printed name), when, and its meaning.
ALTER TABLE dispositions
  ADD COLUMN signer_name text,
  ADD COLUMN meaning text,
  ADD COLUMN signed_with text CHECK (signed_with IN ('password', 'token'));

ALTER TABLE quality_plans ADD COLUMN reason text;

-- Append-only audit trail; each entry carries the hash of the one before it (see audit-chain.ts).
CREATE TABLE audit_trail (
  seq        bigint PRIMARY KEY CHECK (seq > 0),
  at         timestamptz NOT NULL,
  actor      text NOT NULL,
  action     text NOT NULL,
  entity     text NOT NULL,
  reason     text,
  details    jsonb NOT NULL,
  prev_hash  text NOT NULL,
  hash       text NOT NULL UNIQUE
);

-- Ordinary roles cannot rewrite history; `visq audit verify` catches whoever bypasses this.
CREATE FUNCTION audit_trail_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_trail_append_only BEFORE UPDATE OR DELETE ON audit_trail
  FOR EACH ROW EXECUTE FUNCTION audit_trail_append_only();

-- Live review queue: every API process LISTENs and forwards these to its browsers (server-sent events).
CREATE FUNCTION notify_review_change() RETURNS trigger AS $$
BEGIN
  IF TG_TABLE_NAME = 'dispositions' THEN
    PERFORM pg_notify('visq_review', json_build_object('id', NEW.inspection_id, 'change', 'disposed')::text);
  ELSIF NEW.needs_review AND NEW.status = 'done' AND OLD.status IS DISTINCT FROM 'done' THEN
    PERFORM pg_notify('visq_review', json_build_object('id', NEW.id, 'change', 'flagged')::text);
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER inspections_review_notify AFTER UPDATE ON inspections
  FOR EACH ROW EXECUTE FUNCTION notify_review_change();
CREATE TRIGGER dispositions_review_notify AFTER INSERT ON dispositions
  FOR EACH ROW EXECUTE FUNCTION notify_review_change();

-- Down Migration
DROP TRIGGER dispositions_review_notify ON dispositions;
DROP TRIGGER inspections_review_notify ON inspections;
DROP FUNCTION notify_review_change;
DROP TABLE audit_trail;
DROP FUNCTION audit_trail_append_only;
ALTER TABLE quality_plans DROP COLUMN reason;
ALTER TABLE dispositions DROP COLUMN signer_name, DROP COLUMN meaning, DROP COLUMN signed_with;
DROP TABLE sessions;
ALTER TABLE users DROP COLUMN full_name;
