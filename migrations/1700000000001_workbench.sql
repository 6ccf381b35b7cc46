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

-- Records made before the audit trail existed have no entries; `visq audit verify` starts here.
CREATE TABLE audit_trail_start (started_at timestamptz NOT NULL DEFAULT now());
INSERT INTO audit_trail_start DEFAULT VALUES;

-- The trail and the signed records it vouches for are append-only for ordinary roles; `visq audit
-- verify` shows what someone who goes around these triggers changed (see the README on anchoring).
CREATE FUNCTION append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_trail_append_only BEFORE UPDATE OR DELETE ON audit_trail FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_trail_no_truncate BEFORE TRUNCATE ON audit_trail FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER dispositions_append_only BEFORE UPDATE OR DELETE ON dispositions FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER dispositions_no_truncate BEFORE TRUNCATE ON dispositions FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER quality_plans_append_only BEFORE UPDATE OR DELETE ON quality_plans FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER quality_plans_no_truncate BEFORE TRUNCATE ON quality_plans FOR EACH STATEMENT EXECUTE FUNCTION append_only();

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
DROP TRIGGER quality_plans_no_truncate ON quality_plans;
DROP TRIGGER quality_plans_append_only ON quality_plans;
DROP TRIGGER dispositions_no_truncate ON dispositions;
DROP TRIGGER dispositions_append_only ON dispositions;
DROP TABLE audit_trail;
DROP FUNCTION append_only;
DROP TABLE audit_trail_start;
ALTER TABLE quality_plans DROP COLUMN reason;
ALTER TABLE dispositions DROP COLUMN signer_name, DROP COLUMN meaning, DROP COLUMN signed_with;
DROP TABLE sessions;
ALTER TABLE users DROP COLUMN full_name;
