-- Up Migration

-- What traces a part (station, line, serial, lot, work order, operator, capture time, plan) is
-- fixed when the upload is accepted; what decides it (status, verdict, review flag, reason,
-- characteristics, models) is fixed once it is decided. Every other column a later migration adds
-- is fixed from the start unless it is named here. An accepted part is never deleted.
CREATE OR REPLACE FUNCTION inspections_immutable_once_decided() RETURNS trigger AS $$
DECLARE
  decision_columns constant text[] := ARRAY['status', 'verdict', 'needs_review', 'reason', 'decided_at', 'characteristics', 'models'];
BEGIN
  IF OLD.status = 'done' AND to_jsonb(NEW) IS DISTINCT FROM to_jsonb(OLD) THEN
    RAISE EXCEPTION 'inspection % is decided and cannot be changed', OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF (to_jsonb(NEW) - decision_columns) IS DISTINCT FROM (to_jsonb(OLD) - decision_columns) THEN
    RAISE EXCEPTION 'inspection % traces an accepted part: its trace fields cannot be changed', OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION inspections_no_delete_once_decided() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'inspection % is an accepted part and cannot be deleted', OLD.id USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER inspections_no_truncate BEFORE TRUNCATE ON inspections FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- A part's image hashes and the overlays of its decision are written once.
CREATE TRIGGER inspection_images_append_only BEFORE UPDATE OR DELETE ON inspection_images FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER inspection_images_no_truncate BEFORE TRUNCATE ON inspection_images FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER inspection_artifacts_append_only BEFORE UPDATE OR DELETE ON inspection_artifacts FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER inspection_artifacts_no_truncate BEFORE TRUNCATE ON inspection_artifacts FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- The outbox is the decision record: each part's first verdict message carries everything that
-- traced and decided it, as it was sent. Its messages form a hash chain (chain_pos 1, 2, …; each
-- chain_hash covers the message and the hash before it), so a changed or deleted message shows in
-- `visq audit verify`, which also compares every decided part with its first message. Only
-- sent_at may change.
ALTER TABLE outbox ADD COLUMN chain_pos bigint UNIQUE, ADD COLUMN chain_hash text;

CREATE FUNCTION outbox_chain_hash(prev text, pos bigint, m outbox) RETURNS text AS $$
  SELECT encode(sha256(convert_to(prev || '|' || pos || '|' || m.message_id || '|' || m.inspection_id || '|' || m.station_id || '|' || m.payload::text, 'UTF8')), 'hex')
$$ LANGUAGE sql IMMUTABLE;

DO $$
DECLARE
  m outbox;
  prev text := repeat('0', 64);
  pos bigint := 0;
BEGIN
  FOR m IN SELECT * FROM outbox ORDER BY seq LOOP
    pos := pos + 1;
    prev := outbox_chain_hash(prev, pos, m);
    UPDATE outbox SET chain_pos = pos, chain_hash = prev WHERE seq = m.seq;
  END LOOP;
END $$;
ALTER TABLE outbox ALTER COLUMN chain_pos SET NOT NULL, ALTER COLUMN chain_hash SET NOT NULL;

-- Writers of messages already take this lock for `seq` (commit order), so the chain grows one
-- message at a time; the unique chain_pos refuses a fork should a writer ever get around it.
CREATE FUNCTION outbox_chain_append() RETURNS trigger AS $$
DECLARE
  last outbox;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('visq:outbox_order'));
  SELECT * INTO last FROM outbox ORDER BY chain_pos DESC LIMIT 1;
  NEW.chain_pos := coalesce(last.chain_pos, 0) + 1;
  NEW.chain_hash := outbox_chain_hash(coalesce(last.chain_hash, repeat('0', 64)), NEW.chain_pos, NEW);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_chain BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_chain_append();

CREATE FUNCTION outbox_only_sent_at_changes() RETURNS trigger AS $$
BEGIN
  IF (to_jsonb(NEW) - 'sent_at') IS DISTINCT FROM (to_jsonb(OLD) - 'sent_at') THEN
    RAISE EXCEPTION 'outbox message % is a record: only its sent_at may change', OLD.seq USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_sent_only BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_only_sent_at_changes();
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER outbox_no_truncate BEFORE TRUNCATE ON outbox FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- `visq audit verify` reads each account's latest entries.
CREATE INDEX audit_trail_entity ON audit_trail (entity, seq);

-- Down Migration
DROP INDEX audit_trail_entity;
DROP TRIGGER outbox_no_truncate ON outbox;
DROP TRIGGER outbox_no_delete ON outbox;
DROP TRIGGER outbox_sent_only ON outbox;
DROP FUNCTION outbox_only_sent_at_changes;
DROP TRIGGER outbox_chain ON outbox;
DROP FUNCTION outbox_chain_append;
ALTER TABLE outbox DROP COLUMN chain_pos, DROP COLUMN chain_hash;
DROP FUNCTION outbox_chain_hash;
DROP TRIGGER inspection_artifacts_no_truncate ON inspection_artifacts;
DROP TRIGGER inspection_artifacts_append_only ON inspection_artifacts;
DROP TRIGGER inspection_images_no_truncate ON inspection_images;
DROP TRIGGER inspection_images_append_only ON inspection_images;
DROP TRIGGER inspections_no_truncate ON inspections;
